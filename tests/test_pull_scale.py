"""Pull at scale against the moto server: no writes when nothing changed, no per-user queries,
removal only after a complete listing, interrupted pulls, local bookkeeping kept.

Timings at scale are benchmarks (benchmarks/), not tests: these check behaviour and query shapes.
"""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from directory import gateway
from directory.models import AuditEvent, CognitoUser, GroupMembership, SyncRun, UserPool
from directory.sync.pull import pull_pool
from tests.cognito_helpers import create_pool, create_user, inject, list_all_users

pytestmark = pytest.mark.django_db

WRITE = re.compile(r"\s*(INSERT|UPDATE|DELETE|COPY)\b", re.I)


def _populate(cognito, n: int, *, name: str = "scale") -> str:
    pool_id = create_pool(cognito, name=name)
    cognito.create_group(UserPoolId=pool_id, GroupName="staff", Precedence=1)
    for i in range(n):
        create_user(cognito, pool_id, f"user{i:05d}", email=f"user{i}@example.com", name=f"User {i}")
    for i in range(0, n, 7):
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=f"user{i:05d}", GroupName="staff")
    return pool_id


def _pull(pool: UserPool) -> SyncRun:
    run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    return run


def _writes_to(queries, *tables: str) -> list[str]:
    return [
        q["sql"]
        for q in queries.captured_queries
        if WRITE.match(q["sql"]) and any(f'"{table}"' in q["sql"] for table in tables)
    ]


def _mirror_matches_remote(cognito, pool: UserPool) -> None:
    remote = {u["Username"]: u for u in list_all_users(cognito, pool.pool_id)}
    local = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    assert set(local) == set(remote)
    for username, record in remote.items():
        attrs = {a["Name"]: a["Value"] for a in record["Attributes"]}
        assert local[username].attributes == attrs
        assert local[username].enabled == record["Enabled"]


def test_unchanged_resync_writes_no_user_membership_or_audit_rows(cognito):
    pool_id = _populate(cognito, 150)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    _pull(pool)
    events = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as queries:
        run = _pull(pool)
    assert _writes_to(queries, "directory_cognitouser", "directory_auditevent", "directory_groupmembership") == []
    assert AuditEvent.objects.count() == events
    assert (run.unchanged, run.created, run.updated, run.removed) == (150, 0, 0, 0)
    assert run.summary["memberships"] == {"created": 0, "updated": 0, "removed": 0, "unchanged": len(range(0, 150, 7))}


def test_query_count_does_not_grow_with_users(cognito, settings):
    settings.COGNITO_SYNC_BATCH_SIZE = 1000
    small = UserPool.objects.create(pool_id=_populate(cognito, 120, name="small"), region="us-east-1")
    large = UserPool.objects.create(pool_id=_populate(cognito, 600, name="large"), region="us-east-1")
    counts = {}
    for label, pool in (("small", small), ("large", large)):
        with CaptureQueriesContext(connection) as first:
            _pull(pool)
        with CaptureQueriesContext(connection) as again:
            _pull(pool)
        counts[label] = (len(first.captured_queries), len(again.captured_queries))
    assert CognitoUser.objects.filter(pool=large).count() == 600
    # A re-sync reads each batch once: the same queries for 120 users as for 600.
    assert counts["small"][1] == counts["large"][1], counts
    # A first pull inserts in chunks of SQLite's 999 bound parameters (about 60 rows a
    # statement); 480 more users cost a handful of statements, not one or more per user.
    assert counts["large"][0] - counts["small"][0] <= 20, counts


def test_listing_that_fails_half_way_removes_nothing(cognito, monkeypatch):
    pool_id = _populate(cognito, 200)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    _pull(pool)
    cognito.admin_delete_user(UserPoolId=pool_id, Username="user00001")
    cognito.admin_delete_user(UserPoolId=pool_id, Username="user00199")
    cognito.admin_remove_user_from_group(UserPoolId=pool_id, Username="user00007", GroupName="staff")
    client = gateway.get_client("us-east-1")
    # Not retryable: the listing stops at its third page.
    with inject(client, "ListUsers", lambda n: n >= 3, code="InternalErrorException"):
        monkeypatch.setattr("botocore.endpoint.time.sleep", lambda s: None)
        run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.FAILED
    assert run.removed == 0
    assert CognitoUser.objects.filter(pool=pool, username__in=["user00001", "user00199"]).count() == 2
    assert GroupMembership.objects.filter(user__username="user00007").exists()
    assert not AuditEvent.objects.filter(correlation_id=str(run.correlation_id), action="deleted").exists()

    run = _pull(pool)
    assert run.removed == 2 and run.summary["memberships"]["removed"] == 1
    _mirror_matches_remote(cognito, pool)


class WorkerKilled(BaseException):
    """Stands for the worker process dying mid-listing (not an Exception: nothing handles it)."""


# A pull outside a transaction on PostgreSQL writes its batches on a second thread (BatchWriter);
# inside a test's transaction, or on SQLite, in place. CI runs on PostgreSQL, so both paths run there.
threaded_on_postgresql = pytest.param(
    True,
    marks=[
        pytest.mark.django_db(transaction=True),
        pytest.mark.skipif(connection.vendor != "postgresql", reason="the threaded writer is PostgreSQL's (CI)"),
    ],
    id="threaded-writer",
)


@pytest.mark.parametrize("threaded", [pytest.param(False, id="in-place"), threaded_on_postgresql])
def test_interrupted_sync_leaves_a_consistent_mirror_and_the_next_run_completes_it(cognito, settings, threaded):
    settings.COGNITO_SYNC_BATCH_SIZE = 60  # one page a batch, so some batches commit before the kill
    pool_id = _populate(cognito, 300)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    _pull(pool)
    # Remote changes spread over the listing: pages 1, 2, 4 and 5.
    for i in (5, 70, 200, 290):
        cognito.admin_update_user_attributes(
            UserPoolId=pool_id, Username=f"user{i:05d}", UserAttributes=[{"Name": "name", "Value": f"Renamed {i}"}]
        )
    cognito.admin_delete_user(UserPoolId=pool_id, Username="user00100")
    for i in range(300, 310):
        create_user(cognito, pool_id, f"user{i:05d}", email=f"user{i}@example.com", name=f"User {i}")

    client = gateway.get_client("us-east-1")
    calls = {"n": 0}

    def kill_on_third_page(request, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise WorkerKilled

    event = "before-send.cognito-identity-provider.ListUsers"
    client.meta.events.register_first(event, kill_on_third_page)
    try:
        with pytest.raises(WorkerKilled):
            pull_pool(pool=pool)
    finally:
        client.meta.events.unregister(event, kill_on_third_page)

    run = SyncRun.objects.filter(pool=pool).latest("started_at")
    local = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    # Pages 1 and 2 were applied whole, with their audit events; nothing after them; nothing removed.
    assert local["user00005"].name == "Renamed 5" and local["user00070"].name == "Renamed 70"
    assert local["user00200"].name == "User 200" and local["user00290"].name == "User 290"
    assert "user00100" in local and "user00305" not in local
    events = AuditEvent.objects.filter(correlation_id=str(run.correlation_id), object_type="user")
    assert sorted(events.values_list("object_id", "action")) == [("user00005", "updated"), ("user00070", "updated")]
    # A killed worker records nothing more: its run stays "running" with the progress of the
    # batches it committed (the sync lease, not the pull, retires such runs).
    assert run.status == SyncRun.Status.RUNNING and (run.pages, run.updated) == (2, 2)

    run = _pull(pool)
    assert (run.created, run.updated, run.removed) == (10, 2, 1)
    _mirror_matches_remote(cognito, pool)
    assert _pull(pool).unchanged == 309


def test_local_bookkeeping_survives_a_pull(cognito):
    pool_id = _populate(cognito, 3)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    _pull(pool)
    expires = timezone.now() + dt.timedelta(days=3)
    CognitoUser.objects.filter(pool=pool, username="user00001").update(is_test_user=True, test_user_expires_at=expires)
    cognito.admin_update_user_attributes(
        UserPoolId=pool_id, Username="user00001", UserAttributes=[{"Name": "name", "Value": "Changed"}]
    )
    cognito.admin_disable_user(UserPoolId=pool_id, Username="user00001")
    run = _pull(pool)
    assert run.updated == 1
    user = CognitoUser.objects.get(pool=pool, username="user00001")
    assert (user.name, user.enabled) == ("Changed", False)
    assert user.is_test_user is True and user.test_user_expires_at == expires


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the threaded writer is PostgreSQL's (CI)")
def test_threaded_writer_mirrors_creates_updates_and_removals(cognito, settings):
    settings.COGNITO_SYNC_BATCH_SIZE = 60
    pool_id = _populate(cognito, 250)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    writers: set[str] = set()

    def watch(run, ctx):
        writers.update(t.name for t in threading.enumerate() if t.name.startswith("pull-writer"))

    run = pull_pool(pool=pool, progress=watch)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert writers, "the batches were not written on the writer thread"
    assert (run.created, run.pages) == (250, 5)
    _mirror_matches_remote(cognito, pool)
    # The first pull is the baseline: one `imported` event for the users, none per user.
    events = AuditEvent.objects.filter(correlation_id=str(run.correlation_id), object_type="user")
    assert list(events.values_list("action", flat=True)) == ["imported"]
    assert events.get().detail["count"] == 250

    for i in (3, 130, 249):
        cognito.admin_update_user_attributes(
            UserPoolId=pool_id, Username=f"user{i:05d}", UserAttributes=[{"Name": "name", "Value": f"Renamed {i}"}]
        )
    cognito.admin_delete_user(UserPoolId=pool_id, Username="user00100")
    for i in (250, 251):
        create_user(cognito, pool_id, f"user{i:05d}", email=f"user{i}@example.com", name=f"User {i}")
    run = pull_pool(pool=pool, progress=watch)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.created, run.updated, run.removed, run.unchanged) == (2, 3, 1, 246)
    _mirror_matches_remote(cognito, pool)
    renamed = AuditEvent.objects.get(correlation_id=str(run.correlation_id), action="updated", object_id="user00130")
    assert renamed.changes["name"] == ["User 130", "Renamed 130"]
    created = AuditEvent.objects.filter(correlation_id=str(run.correlation_id), object_type="user", action="created")
    assert sorted(created.values_list("object_id", flat=True)) == ["user00250", "user00251"]
    assert created.get(object_id="user00251").changes["email"] == [None, "user251@example.com"]
    assert _pull(pool).unchanged == 251


def test_new_row_an_operator_created_meanwhile_is_updated_not_a_failed_batch():
    """The batch's SELECT missed a user created since (so the pull takes it as new): the
    upsert updates that row, keeps its local bookkeeping, and writes the other new user."""
    from directory.mapping import user_fields, user_hash
    from directory.sync.writer import upsert_users

    pool = UserPool.objects.create(pool_id="us-east-1_race", region="us-east-1")
    CognitoUser.objects.create(pool=pool, username="raced", email="old@example.com", is_test_user=True)
    raced = user_fields({"Username": "raced", "Attributes": [{"Name": "email", "Value": "new@example.com"}]})
    fresh = user_fields({"Username": "fresh", "Attributes": [{"Name": "email", "Value": "fresh@example.com"}]})
    upsert_users(pool, [(raced, user_hash(raced), True), (fresh, user_hash(fresh), True)], batch_size=500)

    rows = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    assert set(rows) == {"raced", "fresh"}
    assert rows["raced"].email == "new@example.com" and rows["raced"].is_test_user is True
    assert rows["raced"].content_hash == user_hash(raced)
    assert rows["fresh"].email == "fresh@example.com" and rows["fresh"].is_test_user is False
