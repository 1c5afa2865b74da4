"""The attribute search's texts (PostgreSQL): written with every write of a user but a pull's, which
queues them for the catch-up; the search finds queued users all the same; a catch-up never leaves a
user with an older text than its row."""

from __future__ import annotations

import datetime as dt
import threading
import time
from http import HTTPStatus

import pytest
from django.db import connection, connections, transaction
from django.urls import reverse

from directory import search_index
from directory.models import CognitoUser, SearchBacklog, UserPool, UserSearchText
from directory.sync.lease import sync_pool
from directory.sync.pull import pull_pool

from .cognito_helpers import MemoryPages
from .conftest import IN_CI
from .factories import CognitoUserFactory, UserPoolFactory

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql" and not IN_CI,
    reason="the search texts are PostgreSQL's (a trigger, pg_trgm); CI runs this on PostgreSQL",
)
URL = reverse("admin:directory_cognitouser_changelist")
MOMENT = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def record(username: str, team: str, *, when: dt.datetime = MOMENT) -> dict:
    return {
        "Username": username,
        "Attributes": [{"Name": "sub", "Value": f"sub-{username}"}, {"Name": "email", "Value": f"{username}@x.test"},
                       {"Name": "custom:team", "Value": team}],
        "Enabled": True,
        "UserStatus": "CONFIRMED",
        "UserCreateDate": MOMENT,
        "UserLastModifiedDate": when,
    }


def text_of(user: CognitoUser) -> str | None:
    row = UserSearchText.objects.filter(pk=user.pk).first()
    return None if row is None else row.text


def found(client, pool, criterion: str) -> list[str]:
    response = client.get(URL, {"attr": criterion, "pool__id__exact": pool.pk})
    assert response.status_code == HTTPStatus.OK
    return sorted(u.username for u in response.context["cl"].result_list)


def test_a_write_outside_a_pull_is_searchable_when_it_commits(admin_client, db):
    assert connection.vendor == "postgresql", "CI runs this suite on PostgreSQL"
    pool = UserPoolFactory()
    user = CognitoUserFactory(pool=pool, username="dora", attributes={"sub": "s-1", "custom:team": "Red Rockets"})
    # One value a line; neither the keys nor `sub` are in it.
    assert text_of(user) == "\nRed Rockets\n"
    assert found(admin_client, pool, "custom:team__co__rocket") == ["dora"]

    user.attributes = {"sub": "s-1", "custom:team": "Blue Birds", "locale": "fr"}
    user.save()
    assert text_of(user) == "\nfr\nBlue Birds\n"  # in jsonb's key order: shorter keys first
    assert found(admin_client, pool, "custom:team__co__rocket") == []
    assert found(admin_client, pool, "custom:team__sw__blue") == ["dora"]
    # Starts-with looks at the one attribute: "fr" starts `locale`, not `custom:team`.
    assert found(admin_client, pool, "custom:team__sw__fr") == []

    CognitoUser.objects.filter(pk=user.pk).update(enabled=False)  # an UPDATE that leaves the text alone
    assert text_of(user) == "\nfr\nBlue Birds\n"
    pk = user.pk
    user.delete()
    assert not UserSearchText.objects.filter(pk=pk).exists()
    assert not SearchBacklog.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_pull_queues_its_users_and_the_search_finds_them_before_and_after_the_catch_up(admin_client):
    pool = UserPool.objects.create(pool_id="us-east-1_search", region="us-east-1", name="search")
    users = [record(f"u{i}", f"team {i}") for i in range(5)]

    # The pull alone (its batches on the writer thread): every user queued, no text written yet.
    run = pull_pool(pool=pool, gateway=MemoryPages(users))
    assert run.created == 5, run.error
    assert search_index.backlog_size() == 5
    assert UserSearchText.objects.count() == 0
    # Queued users are checked directly: nothing the mirror holds is missed meanwhile.
    assert found(admin_client, pool, "custom:team__eq__team 3") == ["u3"]
    assert found(admin_client, pool, "custom:team__sw__TEAM 4") == ["u4"]
    assert found(admin_client, pool, "custom:team__co__eam 1") == ["u1"]

    assert search_index.catch_up() == 5
    assert search_index.backlog_size() == 0
    assert text_of(CognitoUser.objects.get(username="u2")) == "\nu2@x.test\nteam 2\n"
    assert found(admin_client, pool, "custom:team__co__eam 1") == ["u1"]

    # A pull under the lease catches up itself: changed texts follow, a removed user's text goes.
    later = MOMENT + dt.timedelta(days=1)
    users = [record("u0", "team zero", when=later), *users[1:4]]
    run = sync_pool(pool=pool, gateway=MemoryPages(users))
    assert (run.updated, run.removed) == (1, 1), run.error
    assert search_index.backlog_size() == 0
    assert text_of(CognitoUser.objects.get(username="u0")) == "\nu0@x.test\nteam zero\n"
    assert UserSearchText.objects.count() == 4
    assert found(admin_client, pool, "custom:team__co__zero") == ["u0"]
    assert found(admin_client, pool, "custom:team__co__eam 4") == []


@pytest.mark.django_db(transaction=True)
def test_a_catch_up_waits_for_a_write_in_flight_and_keeps_the_newer_text():
    pool = UserPoolFactory()
    user = CognitoUserFactory(pool=pool, username="eve", attributes={"custom:team": "old"})
    SearchBacklog.objects.create(pool_id=pool.pk, usernames=[user.username])  # as a pull would have left it
    writing, caught_up = threading.Event(), threading.Event()
    outcome: dict[str, object] = {}

    def catch_up() -> None:
        writing.wait(10)
        try:
            outcome["taken"] = search_index.catch_up()
        finally:
            connections["default"].close()
            caught_up.set()

    helper = threading.Thread(target=catch_up)
    helper.start()
    with transaction.atomic():
        # An operator's edit: its trigger writes the new text and holds the search lock (shared)...
        CognitoUser.objects.filter(pk=user.pk).update(attributes={"custom:team": "new"})
        writing.set()
        # ...so the catch-up, which read nothing yet, waits for this transaction to commit.
        assert not caught_up.wait(1.0)
    assert caught_up.wait(10)
    helper.join()
    assert outcome["taken"] == 1
    assert text_of(user) == "\nnew\n"


@pytest.mark.django_db(transaction=True)
def test_a_failed_catch_up_leaves_the_queue_for_the_next(monkeypatch, caplog):
    pool = UserPoolFactory()
    user = CognitoUserFactory(pool=pool, username="fay", attributes={"custom:team": "x"})
    UserSearchText.objects.filter(pk=user.pk).delete()
    SearchBacklog.objects.create(pool_id=pool.pk, usernames=[user.username])
    monkeypatch.setattr(search_index, "LOCK_KEY", "not a number")
    search_index.catch_up_quietly()
    assert "the catch-up failed" in caplog.text
    assert search_index.backlog_size() == 1
    monkeypatch.undo()
    started = time.monotonic()
    assert search_index.catch_up() == 1
    assert time.monotonic() - started < 5
    assert text_of(user) == "\nx\n"


def test_a_common_pattern_is_checked_on_the_users_alone(admin_client, db, monkeypatch):
    # A pattern PostgreSQL expects in many texts skips the trigram index (the list's order serves
    # it better): the same users are found, queued ones included, and the texts are not read.
    from directory import selectors

    pool = UserPoolFactory()
    CognitoUserFactory(pool=pool, username="gil", attributes={"custom:team": "Rockets"})
    queued = CognitoUserFactory(pool=pool, username="hal", attributes={"custom:team": "rocketry"})
    UserSearchText.objects.filter(pk=queued.pk).delete()
    SearchBacklog.objects.create(pool_id=pool.pk, usernames=["hal"])
    monkeypatch.setattr(selectors, "COMMON_TEXT_MATCHES", -1)
    assert found(admin_client, pool, "custom:team__co__rocket") == ["gil", "hal"]
    criteria, _ = selectors.parse_attribute_criteria(["custom:team__co__rocket"])
    plan = str(selectors.users_matching_attributes(CognitoUser.objects.filter(pool=pool), criteria).query)
    assert "directory_usersearch" not in plan
    monkeypatch.undo()
    assert found(admin_client, pool, "custom:team__co__rocket") == ["gil", "hal"]
    plan = str(selectors.users_matching_attributes(CognitoUser.objects.filter(pool=pool), criteria).query)
    assert "directory_usersearch" in plan and "directory_searchbacklog" in plan
