"""The pull's fast paths give what the general ones give: the same content hashes (rows
stored before keep matching), the same audit changes, the same scrubbed JSON, and COPY
text that PostgreSQL reads back as the values written."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

import pytest
from django.db import connection
from hypothesis import given, settings
from hypothesis import strategies as st

from directory import audit, pgcopy
from directory.mapping import (
    attributes_dict,
    content_hash,
    created_changes,
    diff,
    holds_nul,
    jsonable,
    to_datetime,
    user_created_changes,
    user_diff,
    user_fields,
    user_fields_and_nul,
    user_hash,
)
from directory.models import AuditEvent, CognitoUser, UserPool
from directory.sync.pull import pull_pool
from directory.sync.writer import current_rows

from .cognito_helpers import MemoryPages

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the COPY paths are PostgreSQL's; CI runs the suite on PostgreSQL"
)

# Any text Cognito could hold, control characters, backslashes, tabs and non-BMP included.
TEXT = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=30)
MOMENT = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2100, 1, 1), timezones=st.sampled_from([dt.UTC])
)


@st.composite
def records(draw):
    attributes = [{"Name": "sub", "Value": draw(TEXT)}]
    names = st.sampled_from(["email", "name", "phone_number", "custom:team", "locale"])
    for name in draw(st.lists(names, unique=True)):
        attributes.append({"Name": name, "Value": draw(TEXT)})
    if draw(st.booleans()):
        attributes.append({"Name": "email_verified", "Value": draw(st.sampled_from(["true", "false"]))})
    record = {
        "Username": draw(TEXT.filter(bool)),
        "Attributes": attributes,
        "Enabled": draw(st.booleans()),
        "UserStatus": draw(st.sampled_from(["CONFIRMED", "UNCONFIRMED", "FORCE_CHANGE_PASSWORD"])),
        "UserCreateDate": draw(MOMENT),
        "UserLastModifiedDate": draw(MOMENT),
    }
    if draw(st.booleans()):
        record["MFAOptions"] = [{"DeliveryMedium": "SMS", "AttributeName": "phone_number"}]
    return record


@settings(max_examples=300, deadline=None)
@given(records())
def test_user_hash_is_the_canonical_content_hash(record):
    fields = user_fields(record)
    assert user_hash(fields) == content_hash(fields)


def test_user_hash_of_other_zones_and_odd_values_falls_back_to_the_same_hash():
    paris = dt.datetime(2024, 6, 1, 14, 0, 0, 123456, tzinfo=zoneinfo.ZoneInfo("Europe/Paris"))
    record = {
        "Username": "u",
        "Attributes": [{"Name": "name", "Value": "Zoë"}],
        "MFAOptions": [{"DeliveryMedium": "SMS", "Big": 2**70}],  # orjson refuses ints past 64 bits
        "UserCreateDate": paris,
        "UserLastModifiedDate": None,
    }
    fields = user_fields(record)
    assert fields["remote_created_at"] == paris and fields["remote_created_at"].tzinfo is dt.UTC
    assert user_hash(fields) == content_hash(fields)
    fields["remote_created_at"] = paris  # not through to_datetime: the general path still agrees
    assert user_hash(fields) == content_hash(fields)
    assert to_datetime(dt.datetime(2024, 1, 1)) == dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


@settings(max_examples=300, deadline=None)
@given(records(), records())
def test_user_changes_are_the_general_diffs(before_record, after_record):
    before, after = user_fields(before_record), user_fields(after_record)
    assert jsonable(user_created_changes(after)) == created_changes(after)
    assert list(user_created_changes(after)) == list(created_changes(after))
    assert jsonable(user_diff(before, after)) == diff(before, after)
    assert list(user_diff(before, after)) == list(diff(before, after))


@settings(max_examples=300, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**60), 2**60) | TEXT,
        lambda children: st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["Password", "Session", "ok", "TokenValidityUnits", "AccessToken", "name"]) | TEXT,
            children,
            max_size=3,
        ),
        max_leaves=12,
    ).filter(lambda v: isinstance(v, dict))
)
def test_scrubbed_json_is_the_general_scrub(value):
    # What `audit.build` stores: secrets dropped at every depth, except inside TokenValidityUnits.
    built = audit.build(action="x", object_type="t", object_id="i", source="worker", changes=value)
    assert json.loads(audit._scrubbed_json(value)) == built.changes


def test_scrubbed_json_drops_nested_secrets_and_keeps_their_look_alikes():
    value = {
        "config": [None, {"ClientSecret": "s3cret", "keep": {"Password": "p", "x": 1}}],
        "TokenValidityUnits": [None, {"AccessToken": "hours"}],
        "note": [None, 'text with "Password": inside'],
        "when": [None, dt.datetime(2024, 1, 1, 0, 0, 0, 5, tzinfo=dt.UTC)],
    }
    stored = json.loads(audit._scrubbed_json(value))
    assert "s3cret" not in json.dumps(stored) and '"p"' not in json.dumps(stored)
    assert stored["config"] == [None, {"keep": {"x": 1}}]
    assert stored["TokenValidityUnits"] == [None, {"AccessToken": "hours"}]
    assert stored["note"] == [None, 'text with "Password": inside']
    assert stored["when"] == [None, "2024-01-01T00:00:00.000005+00:00"]


def test_copy_text_fields():
    values = ["a\tb\\c\nd\re", None, True, False, 7, dt.datetime(2024, 1, 1, tzinfo=dt.UTC)]
    assert "\t".join(map(pgcopy.field, values)) == "a\\tb\\\\c\\nd\\re\t\\N\tt\tf\t7\t2024-01-01T00:00:00+00:00"
    with pytest.raises(ValueError, match="naive"):
        pgcopy.field(dt.datetime(2024, 1, 1))
    with pytest.raises(TypeError):
        pgcopy.field(1.5)


_Pages = MemoryPages


HOSTILE = "tab\there, back\\slash, new\nline, cr\r, quote \" and 'single', Zoë 😀, \\N, \x01"


@pytest.mark.django_db(transaction=True)
@on_postgresql
def test_copy_paths_store_hostile_text_exactly_and_audit_it():
    # Pulled before (so not a baseline): the new user gets its own `created` event.
    pool = UserPool.objects.create(
        pool_id="us-east-1_fast", region="us-east-1", name="fast", last_synced_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    moment = dt.datetime(2024, 1, 1, 0, 0, 0, 123000, tzinfo=dt.UTC)
    record = {
        "Username": "u\t1",
        "Attributes": [
            {"Name": "sub", "Value": "sub-1"},
            {"Name": "name", "Value": HOSTILE},
            {"Name": "custom:note", "Value": HOSTILE},
        ],
        "Enabled": True,
        "UserStatus": "CONFIRMED",
        "UserCreateDate": moment,
        "UserLastModifiedDate": moment,
    }
    run = pull_pool(pool=pool, gateway=_Pages([record]))
    assert run.created == 1, run.error
    user = CognitoUser.objects.get(pool=pool)
    assert user.username == "u\t1" and user.name == HOSTILE and user.attributes["custom:note"] == HOSTILE
    assert user.remote_created_at == moment
    assert user.content_hash == user_hash(user_fields(record))
    event = AuditEvent.objects.get(object_id="u\t1", action="created")
    assert event.changes["name"] == [None, HOSTILE]
    assert event.changes["remote_created_at"] == [None, "2024-01-01T00:00:00.123000+00:00"]

    # A change of the hostile text is read back through the fast loaders and audited.
    record["Attributes"][1]["Value"] = HOSTILE + "!"
    run = pull_pool(pool=pool, gateway=_Pages([record]))
    assert run.updated == 1, run.error
    event = AuditEvent.objects.get(object_id="u\t1", action="updated")
    assert event.changes == {"name": [HOSTILE, HOSTILE + "!"], "attributes.name": [HOSTILE, HOSTILE + "!"]}
    assert pull_pool(pool=pool, gateway=_Pages([record])).unchanged == 1


@pytest.mark.django_db
def test_current_rows_are_what_django_reads():
    pool = UserPool.objects.create(pool_id="us-east-1_rows", region="us-east-1", name="rows")
    fields = user_fields(
        {
            "Username": "alice",
            "Attributes": [{"Name": "email", "Value": "a@example.com"}, {"Name": "custom:n", "Value": "Zoë"}],
            "UserCreateDate": dt.datetime(2024, 1, 1, 0, 0, 0, 5, tzinfo=dt.UTC),
            "MFAOptions": [{"DeliveryMedium": "SMS", "AttributeName": "phone_number"}],
        }
    )
    user = CognitoUser.objects.create(pool=pool, content_hash="x", **fields)
    rows = current_rows([user.pk])
    assert rows == {"alice": fields}
    assert user_diff(rows["alice"], fields) == {}


@pytest.mark.django_db
def test_gateway_parses_cognito_datetimes_in_utc(cognito):
    from directory.gateway import CognitoGateway, reset_clients
    from tests.cognito_helpers import create_pool, create_user

    pool_id = create_pool(cognito, name="utc")
    create_user(cognito, pool_id, "alice", email="alice@example.com", name="Alice")
    reset_clients()
    (record,) = [user for page in CognitoGateway("us-east-1").list_users(pool_id) for user in page]
    assert record["UserCreateDate"].tzinfo is dt.UTC and record["UserLastModifiedDate"].tzinfo is dt.UTC
    fields = user_fields(record)
    assert fields["remote_created_at"] is record["UserCreateDate"]  # nothing left to convert


def _numbered(i: int, *, team: str = "a") -> dict:
    moment = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    return {
        "Username": f"user{i:04d}",
        "Attributes": [{"Name": "sub", "Value": f"sub-{i}"}, {"Name": "custom:team", "Value": team}],
        "Enabled": True,
        "UserStatus": "CONFIRMED",
        "UserCreateDate": moment,
        "UserLastModifiedDate": moment,
    }


class _PagedWithHook(_Pages):
    """Pages of a few users each; `hook(page_number)` runs before a page is handed over."""

    def __init__(self, pages, hook=None):
        super().__init__([])
        self.pages, self.hook = pages, hook

    def list_users(self, pool_id, **kwargs):
        for number, page in enumerate(self.pages):
            if self.hook is not None:
                self.hook(number)
            yield page


@pytest.mark.django_db(transaction=True)
@on_postgresql
def test_a_first_import_with_two_writers_in_flight_stores_each_user_once(settings):
    # Batches of 50 on two writer threads; the pool is empty, so no batch looks its users up. A
    # user Cognito lists twice (in pages far apart) and one an operator creates meanwhile both fail
    # their batch's COPY, which then takes the upsert path: one row each, the pull succeeds.
    settings.COGNITO_SYNC_BATCH_SIZE = 50
    settings.COGNITO_SYNC_WRITERS = 2
    pool = UserPool.objects.create(pool_id="us-east-1_two", region="us-east-1", name="two")
    users = [_numbered(i) for i in range(600)]
    pages = [users[i:i + 25] for i in range(0, 600, 25)]
    pages[20] = [*pages[20], users[3]]  # listed again, twenty pages later

    def operator_creates(number: int) -> None:
        if number == 10:  # before the page that holds user0255 is handed over
            CognitoUser.objects.create(pool=pool, username="user0255", email="", is_test_user=True)
            connection.close()  # the listing thread's own connection

    run = pull_pool(pool=pool, gateway=_PagedWithHook(pages, operator_creates))
    assert run.status == "succeeded", run.error
    stored = CognitoUser.objects.filter(pool=pool)
    assert stored.count() == 600
    assert set(stored.values_list("username", flat=True)) == {u["Username"] for u in users}
    raced = stored.get(username="user0255")
    assert raced.is_test_user is True and raced.attributes["custom:team"] == "a"  # updated, bookkeeping kept

    # The next pull (not empty at start) finds every user unchanged, then a change and a removal.
    assert pull_pool(pool=pool, gateway=_PagedWithHook([users[i:i + 25] for i in range(0, 600, 25)])).unchanged == 600
    changed = [_numbered(i, team="b" if i == 7 else "a") for i in range(599)]
    changed[7]["UserLastModifiedDate"] = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
    run = pull_pool(pool=pool, gateway=_PagedWithHook([changed[i:i + 25] for i in range(0, 599, 25)]))
    assert (run.updated, run.removed, run.unchanged) == (1, 1, 598), run.summary
    assert stored.get(username="user0007").attributes["custom:team"] == "b"
    assert not stored.filter(username="user0599").exists()


@pytest.mark.django_db(transaction=True)
def test_batches_of_mostly_changed_users_read_their_rows_with_their_hashes(settings):
    # After a batch whose users mostly changed, the next batch reads its rows with its hashes
    # (`stored_rows`): the same updates and the same audit before-values as the two-query path.
    settings.COGNITO_SYNC_BATCH_SIZE = 50
    pool = UserPool.objects.create(
        pool_id="us-east-1_most", region="us-east-1", name="most", last_synced_at=dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    )
    users = [_numbered(i) for i in range(200)]
    assert pull_pool(pool=pool, gateway=_PagedWithHook([users[i:i + 25] for i in range(0, 200, 25)])).created == 200
    later = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    # Every user but each tenth changed: every batch is mostly changed.
    changed = [_numbered(i, team="a" if i % 10 == 0 else f"t{i}") for i in range(200)]
    for record in changed:
        if record["Attributes"][1]["Value"] != "a":
            record["UserLastModifiedDate"] = later
    run = pull_pool(pool=pool, gateway=_PagedWithHook([changed[i:i + 25] for i in range(0, 200, 25)]))
    assert (run.updated, run.unchanged) == (180, 20), run.summary
    events = {e.object_id: e.changes for e in AuditEvent.objects.filter(pool_id=pool.pool_id, action="updated")}
    assert len(events) == 180
    assert events["user0123"] == {
        "attributes.custom:team": ["a", "t123"],
        "remote_modified_at": ["2024-01-01T00:00:00+00:00", "2024-03-01T00:00:00+00:00"],
    }
    assert "user0120" not in events
    stored = dict(CognitoUser.objects.filter(pool=pool).values_list("username", "attributes"))
    assert stored["user0199"]["custom:team"] == "t199" and stored["user0190"]["custom:team"] == "a"


@given(st.lists(st.tuples(st.sampled_from(["sub", "email", "name", "custom:x", "phone_number", "email_verified"]),
                          st.text(max_size=8)), max_size=6))
def test_user_fields_and_nul_maps_as_the_general_path(pairs):
    # NUL characters included: the one-pass mapping gives the general path's fields and flag.
    record = {"Username": "u", "Attributes": [{"Name": n, "Value": v} for n, v in pairs]}
    fields, nul = user_fields_and_nul(record)
    assert nul == holds_nul(record)
    assert fields["attributes"] == attributes_dict(record["Attributes"])
    assert all("\x00" not in v for v in fields["attributes"].values())
    assert fields["email_verified"] == (fields["attributes"].get("email_verified", "false").lower() == "true")
    assert fields["sub"] == fields["attributes"].get("sub", "")
