"""Partitioned pulls against the moto server: listings by `sub` prefix merged into one run, a failed
partition retried alone, the removal sweep only after every partition, a failed or killed pull
resumed where it stopped, memberships listed a group at a time, and the first pull's baseline."""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone

from directory import gateway
from directory.models import AuditEvent, CognitoGroup, CognitoUser, GroupMembership, SyncPartition, SyncRun, UserPool
from directory.sync import partitions
from directory.sync.pull import pull_pool
from tests.cognito_helpers import create_pool, create_user, error_response, list_all_users

pytestmark = pytest.mark.django_db

HEX = list("0123456789abcdef")

# A pull outside a transaction on PostgreSQL writes its batches on a second thread (BatchWriter);
# inside a test's transaction, or on SQLite, in place. CI runs on PostgreSQL, so both paths run there.
WRITERS = [
    pytest.param(False, id="in-place"),
    pytest.param(
        True,
        marks=[
            pytest.mark.django_db(transaction=True),
            pytest.mark.skipif(connection.vendor != "postgresql", reason="the threaded writer is PostgreSQL's (CI)"),
        ],
        id="threaded-writer",
    ),
]


@pytest.fixture(autouse=True)
def _sixteen_partitions(settings):
    # Small pools (listed whole by default) split in 16, so the tests stay quick.
    settings.COGNITO_SYNC_PARTITIONS = "16"


def _populate(cognito, n: int, *, groups: int = 0, name: str = "parts") -> str:
    pool_id = create_pool(cognito, name=name)
    for i in range(n):
        create_user(cognito, pool_id, f"user{i:05d}", email=f"user{i}@example.com", name=f"User {i}")
    for g in range(groups):
        cognito.create_group(UserPoolId=pool_id, GroupName=f"group{g:02d}", Precedence=g)
        for i in range(g, n, 5 + g):
            cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=f"user{i:05d}", GroupName=f"group{g:02d}")
    return pool_id


def _mirror_matches_remote(cognito, pool: UserPool) -> None:
    remote = {u["Username"]: u for u in list_all_users(cognito, pool.pool_id)}
    local = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    assert set(local) == set(remote)
    for username, record in remote.items():
        attrs = {a["Name"]: a["Value"] for a in record["Attributes"]}
        assert local[username].attributes == attrs
        assert local[username].enabled == record["Enabled"]


def _filter_of(request) -> str:
    return json.loads(request.body or b"{}").get("Filter", "")


def _key(filter_text: str) -> str:
    return filter_text.split('"')[1] if filter_text else ""


@contextmanager
def listings(fail: Callable[[str, int], bool] | None = None, error=None) -> Iterator[Counter]:
    """Count the ListUsers requests sent per partition key; answer with an error (not retried by
    botocore) or raise `error` where `fail(key, nth request of that key)` says so."""
    client = gateway.get_client("us-east-1")
    sent: Counter = Counter()
    lock = threading.Lock()

    def hook(request, **kwargs):
        key = _key(_filter_of(request))
        with lock:
            sent[key] += 1
            nth = sent[key]
        if fail is not None and fail(key, nth):
            if error is not None:
                raise error
            return error_response("InternalErrorException", status=400)
        return None

    event = "before-send.cognito-identity-provider.ListUsers"
    client.meta.events.register_first(event, hook)
    try:
        yield sent
    finally:
        client.meta.events.unregister(event, hook)


def _users_parts(run: SyncRun) -> dict[str, SyncPartition]:
    return {p.key: p for p in run.partitions.filter(kind="users")}


# Planning -------------------------------------------------------------------------------------------


def test_partition_plan_follows_the_pool_size_and_the_setting(settings):
    pool = UserPool.objects.create(pool_id="us-east-1_plan", region="us-east-1")
    settings.COGNITO_SYNC_PARTITIONS = "auto"
    for estimate, expected in ((0, 1), (1_999, 1), (2_000, 16), (499_999, 16), (500_000, 256)):
        pool.estimated_number_of_users = estimate
        keys = partitions.user_keys(pool)
        assert len(keys) == expected, estimate
    assert keys[:3] == ["00", "01", "02"] and keys[-1] == "ff"
    settings.COGNITO_SYNC_PARTITIONS = "1"
    assert partitions.user_keys(pool) == [""]
    settings.COGNITO_SYNC_PARTITIONS = "16"
    assert partitions.user_keys(pool) == HEX
    # A stored user whose sub no hex prefix lists: the pool is listed whole, never swept by mistake.
    CognitoUser.objects.create(pool=pool, username="odd", sub="Not-A-UUID")
    assert partitions.user_keys(pool) == [""]
    settings.COGNITO_SYNC_PARTITIONS = "12"
    with pytest.raises(ImproperlyConfigured, match="COGNITO_SYNC_PARTITIONS: '12' is not auto, 1, 16 or 256"):
        partitions.user_keys(pool)
    assert partitions.user_filter("a") == 'sub ^= "a"' and partitions.user_filter("") is None


def test_partitions_list_the_pool_exactly_once_into_one_run(cognito):
    pool_id = _populate(cognito, 240)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    with listings() as sent:
        run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    _mirror_matches_remote(cognito, pool)
    parts = _users_parts(run)
    assert sorted(parts) == HEX and sorted(sent) == HEX
    local = list(CognitoUser.objects.filter(pool=pool).values_list("sub", flat=True))
    for key, part in parts.items():
        members = sum(1 for sub in local if sub.startswith(key))
        # Each listing saw exactly its own users, in as many pages as they fill (at least one).
        assert (part.status, part.attempts, part.seen, part.created) == ("done", 1, members, members)
        assert part.pages == sent[key] == max(1, -(-members // 60))
    # Merged into one SyncRun: its counts are the partitions' sums.
    assert run.seen == run.created == 240 and run.pages == sum(sent.values())
    assert run.summary["users"]["created"] == 240
    # Nothing outlives the run that the next one could mistake for its own.
    assert not SyncPartition.objects.filter(seen_ids__isnull=False).exists()


def test_a_failed_partition_is_retried_alone(cognito):
    pool_id = _populate(cognito, 200)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    with listings(fail=lambda key, nth: key == "5" and nth == 1) as sent:
        run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    parts = _users_parts(run)
    assert parts["5"].attempts == 2 and parts["5"].status == "done"
    assert all(p.attempts == 1 for key, p in parts.items() if key != "5")
    # The other listings were not repeated: one request per page; "5" once more for its failed try.
    assert all(sent[key] == parts[key].pages for key in HEX if key != "5")
    assert sent["5"] == parts["5"].pages + 1
    _mirror_matches_remote(cognito, pool)


@pytest.mark.parametrize("threaded", WRITERS)
def test_sweep_waits_for_every_partition_and_the_next_pull_lists_only_the_unfinished(cognito, threaded):
    pool_id = _populate(cognito, 200)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == SyncRun.Status.SUCCEEDED
    subs = dict(CognitoUser.objects.filter(pool=pool).values_list("username", "sub"))
    # One user gone from each of three partitions, none of them "3"; one renamed in "3".
    gone = []
    for username, sub in sorted(subs.items()):
        if sub[0] != "3" and sub[0] not in {subs[g][0] for g in gone}:
            gone.append(username)
        if len(gone) == 3:
            break
    renamed = next(u for u, sub in sorted(subs.items()) if sub[0] == "3")
    for username in gone:
        cognito.admin_delete_user(UserPoolId=pool_id, Username=username)
    cognito.admin_update_user_attributes(
        UserPoolId=pool_id, Username=renamed, UserAttributes=[{"Name": "name", "Value": "Renamed"}]
    )

    with listings(fail=lambda key, nth: key == "3") as sent:
        failed = pull_pool(pool=pool)
    assert failed.status == SyncRun.Status.FAILED
    assert 'user listings failed after 3 attempts (sub ^= "3")' in failed.error
    parts = _users_parts(failed)
    assert parts["3"].status == "failed" and parts["3"].attempts == partitions.ATTEMPTS == sent["3"]
    assert all(p.status == "done" for key, p in parts.items() if key != "3")
    # Their listings completed, but the pull's did not: nothing was removed.
    assert CognitoUser.objects.filter(pool=pool, username__in=gone).count() == 3
    assert failed.removed == 0 and not AuditEvent.objects.filter(action="deleted").exists()

    with listings() as sent:
        resumed = pull_pool(pool=pool)
    assert resumed.status == SyncRun.Status.SUCCEEDED, resumed.error
    assert resumed.resumed_from_id == failed.pk
    assert set(sent) == {"3"}  # only the unfinished listing was sent again
    parts = _users_parts(resumed)
    assert parts["3"].carried is False and all(p.carried for key, p in parts.items() if key != "3")
    assert (resumed.updated, resumed.removed) == (1, 3)
    deleted = AuditEvent.objects.filter(correlation_id=str(resumed.correlation_id), action="deleted")
    assert sorted(deleted.values_list("object_id", flat=True)) == sorted(gone)
    _mirror_matches_remote(cognito, pool)
    # The next pull starts afresh: the resumed one succeeded.
    with listings() as sent:
        again = pull_pool(pool=pool)
    assert again.resumed_from_id is None and sorted(sent) == HEX and again.unchanged == 197


class WorkerKilled(BaseException):
    """Stands for the worker process dying mid-listing (not an Exception: nothing handles it)."""


@pytest.mark.parametrize("threaded", WRITERS)
def test_a_killed_pull_resumes_the_partitions_it_had_not_finished(cognito, settings, threaded):
    settings.COGNITO_SYNC_THREADS = 1  # one listing at a time, in key order: "0" … "7" finish, "8" dies
    pool_id = _populate(cognito, 200)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == SyncRun.Status.SUCCEEDED
    subs = dict(CognitoUser.objects.filter(pool=pool).values_list("username", "sub"))
    early = next(u for u, sub in sorted(subs.items()) if sub[0] == "2")
    late = next(u for u, sub in sorted(subs.items()) if sub[0] == "c")
    for username in (early, late):
        cognito.admin_delete_user(UserPoolId=pool_id, Username=username)
    for i in range(200, 210):
        create_user(cognito, pool_id, f"user{i:05d}", email=f"user{i}@example.com", name=f"User {i}")

    with listings(fail=lambda key, nth: key == "8", error=WorkerKilled()), pytest.raises(WorkerKilled):
        pull_pool(pool=pool)
    killed = SyncRun.objects.filter(pool=pool).latest("started_at")
    # A killed worker records nothing more: its run stays `running`, its finished partitions done.
    assert killed.status == SyncRun.Status.RUNNING
    parts = _users_parts(killed)
    assert [k for k in HEX if parts[k].status == "done"] == HEX[:8]
    assert parts["8"].status == "running" and all(parts[k].status == "pending" for k in HEX[9:])
    assert CognitoUser.objects.filter(pool=pool, username__in=[early, late]).count() == 2

    with listings() as sent:
        resumed = pull_pool(pool=pool)
    assert resumed.status == SyncRun.Status.SUCCEEDED, resumed.error
    assert resumed.resumed_from_id == killed.pk and sorted(sent) == HEX[8:]
    assert resumed.removed == 2  # the one in a finished partition too: its listing had not seen it
    _mirror_matches_remote(cognito, pool)
    new = CognitoUser.objects.filter(pool=pool, username__gte="user00200")
    assert new.count() == 10
    created = AuditEvent.objects.filter(action="created", object_type="user").values_list("object_id", flat=True)
    assert sorted(created) == sorted(new.values_list("username", flat=True))  # each audited once, by one run


def test_an_unfinished_pull_too_old_to_resume_is_listed_afresh(cognito, settings):
    pool_id = _populate(cognito, 60)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    with listings(fail=lambda key, nth: key == "a"):
        failed = pull_pool(pool=pool)
    assert failed.status == SyncRun.Status.FAILED
    SyncRun.objects.filter(pk=failed.pk).update(finished_at=timezone.now() - timedelta(minutes=61))
    with listings() as sent:
        run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED and run.resumed_from_id is None
    assert sorted(sent) == HEX
    settings.COGNITO_SYNC_RESUME_MINUTES = 0
    with listings(fail=lambda key, nth: key == "b"):
        assert pull_pool(pool=pool).status == SyncRun.Status.FAILED
    with listings() as sent:
        assert pull_pool(pool=pool).resumed_from_id is None
    assert sorted(sent) == HEX


# Memberships -----------------------------------------------------------------------------------------


def test_memberships_are_listed_a_group_at_a_time_and_stale_ones_removed(cognito):
    pool_id = _populate(cognito, 90, groups=6)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    client = gateway.get_client("us-east-1")
    groups_listed: Counter = Counter()

    def count(params, **kwargs):
        groups_listed[params["GroupName"]] += 1

    event = "provide-client-params.cognito-identity-provider.ListUsersInGroup"
    client.meta.events.register(event, count)
    try:
        run = pull_pool(pool=pool)
    finally:
        client.meta.events.unregister(event, count)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    parts = {p.key: p for p in run.partitions.filter(kind="memberships")}
    assert sorted(parts) == sorted(groups_listed) == [f"group{g:02d}" for g in range(6)]
    # Their listing began on threads the users' last partitions left idle, before the users were all
    # stored; their pages were applied only after (every membership below is there).
    users_done = max(p.finished_at for p in run.partitions.filter(kind="users"))
    assert min(p.started_at for p in parts.values()) < users_done
    for g in range(6):
        members = set(range(g, 90, 5 + g))
        group = CognitoGroup.objects.get(pool=pool, name=f"group{g:02d}")
        stored = set(GroupMembership.objects.filter(group=group).values_list("user__username", flat=True))
        assert stored == {f"user{i:05d}" for i in members}
        assert (parts[group.name].status, parts[group.name].created) == ("done", len(members))
    assert run.summary["memberships"]["created"] == sum(len(range(g, 90, 5 + g)) for g in range(6))
    # The baseline: no event per membership.
    assert not AuditEvent.objects.filter(action="group_added").exists()

    cognito.admin_remove_user_from_group(UserPoolId=pool_id, Username="user00002", GroupName="group02")
    cognito.admin_add_user_to_group(UserPoolId=pool_id, Username="user00001", GroupName="group05")
    run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.summary["memberships"]["created"], run.summary["memberships"]["removed"]) == (1, 1)
    events = AuditEvent.objects.filter(correlation_id=str(run.correlation_id))
    assert events.get(action="group_removed").object_id == "user00002"
    assert events.get(action="group_added").changes == {"group": [None, "group05"]}


# The baseline ----------------------------------------------------------------------------------------


def test_first_pull_is_a_baseline_and_later_pulls_audit_each_object(cognito):
    pool_id = _populate(cognito, 120, groups=2)
    cognito.create_user_pool_client(UserPoolId=pool_id, ClientName="spa")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    first = pull_pool(pool=pool, actor="ops")
    assert first.status == SyncRun.Status.SUCCEEDED and first.baseline is True
    events = AuditEvent.objects.filter(correlation_id=str(first.correlation_id))
    assert sorted(events.values_list("action", flat=True)) == ["imported"] * 5
    imported = {e.object_type: e.detail for e in events}
    members = len(range(0, 120, 5)) + len(range(1, 120, 6))
    assert {kind: d["count"] for kind, d in imported.items()} == {
        "pool": 1, "app_client": 1, "group": 2, "user": 120, "membership": members,
    }
    assert all(d["sync_run"] == first.pk and d["created"] == d["count"] for d in imported.values())
    assert set(events.values_list("actor", flat=True)) == {"ops"}

    # Later pulls: each object that appears, changes or disappears has its own event, as always.
    create_user(cognito, pool_id, "newcomer", email="new@example.com", name="New")
    cognito.admin_update_user_attributes(
        UserPoolId=pool_id, Username="user00007", UserAttributes=[{"Name": "name", "Value": "Seven"}]
    )
    cognito.admin_delete_user(UserPoolId=pool_id, Username="user00008")
    cognito.create_group(UserPoolId=pool_id, GroupName="late", Precedence=9)
    second = pull_pool(pool=pool)
    assert second.status == SyncRun.Status.SUCCEEDED and second.baseline is False
    events = AuditEvent.objects.filter(correlation_id=str(second.correlation_id))
    assert not events.filter(action="imported").exists()
    assert events.get(action="created", object_type="user").object_id == "newcomer"
    assert events.get(action="created", object_type="group").object_id == "late"
    assert events.get(action="updated", object_id="user00007").changes["name"] == ["User 7", "Seven"]
    assert events.get(action="deleted", object_id="user00008").changes["email"] == ["user8@example.com", None]


def test_an_interrupted_baseline_is_completed_and_counted_by_the_pull_that_resumes_it(cognito):
    pool_id = _populate(cognito, 150)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    with listings(fail=lambda key, nth: key == "e"):
        failed = pull_pool(pool=pool)
    assert failed.status == SyncRun.Status.FAILED and failed.baseline is True
    stored = CognitoUser.objects.filter(pool=pool).count()
    assert 0 < stored < 150
    failure = AuditEvent.objects.get(action="sync_failed", correlation_id=str(failed.correlation_id))
    assert failure.detail["imported_so_far"]["users"] == stored  # the rows it left are accounted for
    assert not AuditEvent.objects.filter(action__in=["created", "imported"]).exists()

    resumed = pull_pool(pool=pool)
    assert resumed.status == SyncRun.Status.SUCCEEDED and resumed.baseline is True
    users = AuditEvent.objects.get(action="imported", object_type="user")
    assert users.detail == {"count": 150, "created": 150 - stored, "sync_run": resumed.pk, "resumed_from": failed.pk}
    assert users.correlation_id == str(resumed.correlation_id)
    assert not AuditEvent.objects.filter(action="created").exists()
