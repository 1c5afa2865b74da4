"""End-to-end pull against the moto *server*: field-for-field mirror, idempotence, changes, failures."""

from __future__ import annotations

import re

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from directory import gateway
from directory.models import AppClient, AuditEvent, CognitoGroup, CognitoUser, GroupMembership, SyncRun, UserPool
from directory.sync import partitions
from directory.sync.discovery import discover_pools
from directory.sync.partitions import IdBitmap
from directory.sync.pull import pull_pool
from tests.cognito_helpers import UNICODE_NAMES, create_pool, create_user, inject, list_all_users

pytestmark = pytest.mark.django_db

FLOWS = ["ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
N_USERS = 2400


def _populate(cognito, n_users: int = N_USERS) -> dict:
    pool_id = create_pool(cognito, name="shop")
    spa = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="spa", GenerateSecret=False, ExplicitAuthFlows=FLOWS
    )["UserPoolClient"]
    server = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="server",
        GenerateSecret=True,
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    cognito.create_group(UserPoolId=pool_id, GroupName="admins", Description="Administrators", Precedence=1)
    cognito.create_group(UserPoolId=pool_id, GroupName="customers", Description="Shoppers", Precedence=10)
    for i in range(n_users):
        name = UNICODE_NAMES[i % len(UNICODE_NAMES)] + f" {i}"
        extra = {"phone_number": f"+1555{i:07d}"} if i % 3 == 0 else {}
        create_user(cognito, pool_id, f"user{i:05d}", email=f"user{i}@example.com", name=name, **extra)
    for i in range(0, min(40, n_users)):
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=f"user{i:05d}", GroupName="admins")
    for i in range(0, n_users, 7):
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=f"user{i:05d}", GroupName="customers")
    for i in range(5, min(60, n_users), 11):
        cognito.admin_disable_user(UserPoolId=pool_id, Username=f"user{i:05d}")
    # Self sign-up leaves users UNCONFIRMED.
    for i in range(3):
        cognito.sign_up(
            ClientId=spa["ClientId"],
            Username=f"signup{i}",
            Password="Passw0rd!Passw0rd",
            UserAttributes=[{"Name": "email", "Value": f"s{i}@example.com"}, {"Name": "name", "Value": "Ünconfirmed"}],
        )
    return {"pool_id": pool_id, "spa": spa, "server": server}


@pytest.fixture(scope="module")
def big_remote(moto_server):
    """A populated pool on the moto server, built once for this module's read-only tests."""
    import boto3

    client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=moto_server)
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_server}/moto-api/reset", method="POST")).read()
    return client, _populate(client)


def _mirror(pool_id: str) -> UserPool:
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    pool.refresh_from_db()
    return pool


def _attrs(record: dict) -> dict:
    return {a["Name"]: a["Value"] for a in record["Attributes"]}


def test_full_pull_mirrors_every_field(big_remote):
    cognito, remote = big_remote
    pool = _mirror(remote["pool_id"])

    described = cognito.describe_user_pool(UserPoolId=remote["pool_id"])["UserPool"]
    assert pool.name == "shop"
    assert pool.arn == described["Arn"]
    assert set(pool.required_attributes) == {"email", "name"}
    assert pool.password_policy["MinimumLength"] == 10
    assert pool.auto_verified_attributes == ["email"]
    assert pool.mfa_configuration == "OFF"
    assert pool.last_synced_at is not None

    clients = {c.name: c for c in AppClient.objects.filter(pool=pool)}
    assert set(clients) == {"spa", "server"}
    assert clients["spa"].has_secret is False and clients["spa"].explicit_auth_flows == FLOWS
    assert clients["server"].has_secret is True
    assert clients["server"].client_id == remote["server"]["ClientId"]

    groups = {g.name: g for g in CognitoGroup.objects.filter(pool=pool)}
    assert groups["admins"].description == "Administrators" and groups["admins"].precedence == 1
    assert groups["customers"].precedence == 10

    remote_users = list_all_users(cognito, remote["pool_id"])
    assert len(remote_users) == N_USERS + 3
    local = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    assert len(local) == len(remote_users)
    for record in remote_users:
        user = local[record["Username"]]
        attrs = _attrs(record)
        assert user.attributes == attrs
        assert user.sub == attrs["sub"]
        assert user.email == attrs["email"]
        assert user.name == attrs["name"]
        assert user.phone_number == attrs.get("phone_number", "")
        assert user.email_verified == (attrs.get("email_verified") == "true")
        assert user.status == record["UserStatus"]
        assert user.enabled == record["Enabled"]
        assert user.remote_created_at == record["UserCreateDate"]
        assert user.remote_modified_at == record["UserLastModifiedDate"]
    assert local["user00001"].name == "李小龍 1"
    assert local["user00005"].enabled is False
    assert local["signup0"].status == "UNCONFIRMED"
    assert local["user00000"].status == "FORCE_CHANGE_PASSWORD"

    admins = set(GroupMembership.objects.filter(group=groups["admins"]).values_list("user__username", flat=True))
    assert admins == {f"user{i:05d}" for i in range(40)}
    assert GroupMembership.objects.filter(group=groups["customers"]).count() == len(range(0, N_USERS, 7))

    run = SyncRun.objects.get(pool=pool)
    assert run.seen == N_USERS + 3 and run.created == N_USERS + 3
    # Listed in 16 partitions by `sub` prefix, each complete, none overlapping.
    parts = {p.key: p for p in run.partitions.filter(kind="users")}
    assert sorted(parts) == list("0123456789abcdef")
    assert all(p.status == "done" and p.attempts == 1 for p in parts.values())
    assert sum(p.seen for p in parts.values()) == N_USERS + 3 and run.pages == sum(p.pages for p in parts.values())
    for key, part in parts.items():
        in_part = sum(1 for user in local.values() if user.sub.startswith(key))
        assert part.seen == part.created == in_part and part.pages == max(1, -(-in_part // 60))
    memberships = run.partitions.get(kind="memberships", key="customers")
    assert memberships.status == "done" and memberships.created == len(range(0, N_USERS, 7))

    # The first pull is the pool's baseline: no event per object, one `imported` event per kind.
    events = AuditEvent.objects.filter(correlation_id=str(run.correlation_id))
    assert not events.exclude(action__in=["imported", "template_version"]).exists()
    imported = {e.object_type: e for e in events.filter(action="imported")}
    assert set(imported) == {"pool", "app_client", "group", "user", "membership"}
    members = len(range(0, N_USERS, 7)) + 40
    counts = {"pool": 1, "app_client": 2, "group": 2, "user": N_USERS + 3, "membership": members}
    for kind, count in counts.items():
        event = imported[kind]
        assert event.detail == {"count": count, "created": count, "sync_run": run.pk}, kind
        assert (event.object_id, event.pool_id, event.source, event.actor) == (pool.pool_id, pool.pool_id, "worker", "")
    assert imported["user"].object_repr == f"{N_USERS + 3:,} users" and imported["user"].changes == {}
    assert imported["pool"].changes["name"] == [None, "shop"]


def test_second_sync_of_unchanged_pool_writes_nothing(big_remote):
    _, remote = big_remote
    pool = _mirror(remote["pool_id"])
    events_before = AuditEvent.objects.count()
    with CaptureQueriesContext(connection) as queries:
        run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED
    writes = [q["sql"] for q in queries.captured_queries if re.match(r"\s*(INSERT|UPDATE|DELETE)", q["sql"], re.I)]
    offenders = [
        sql
        for sql in writes
        if not re.search(r'"directory_sync(run|partition)"', sql)
        and not re.search(r'UPDATE "directory_userpool" SET "last_synced_at"', sql)
    ]
    assert offenders == []
    assert AuditEvent.objects.count() == events_before
    assert run.unchanged == N_USERS + 3 and run.created == run.updated == run.removed == 0
    assert run.summary["memberships"]["created"] == 0 and run.summary["pool"] == "unchanged"


def test_remote_changes_are_reflected_exactly(cognito):
    remote = _populate(cognito, n_users=150)
    pool_id = remote["pool_id"]
    pool = _mirror(pool_id)
    untouched = {u.username: (u.content_hash, u.pk) for u in CognitoUser.objects.filter(pool=pool)}
    deleted = [f"user{i:05d}" for i in (10, 11, 12)]
    renamed = {f"user{i:05d}": f"changed{i}@example.org" for i in (20, 21, 22, 23)}
    disabled = [f"user{i:05d}" for i in (30, 31)]
    for username in deleted:
        cognito.admin_delete_user(UserPoolId=pool_id, Username=username)
    for username, email in renamed.items():
        cognito.admin_update_user_attributes(
            UserPoolId=pool_id, Username=username, UserAttributes=[{"Name": "email", "Value": email}]
        )
    for username in disabled:
        cognito.admin_disable_user(UserPoolId=pool_id, Username=username)
    cognito.update_user_pool_client(
        UserPoolId=pool_id,
        ClientId=remote["spa"]["ClientId"],
        ExplicitAuthFlows=["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"],
    )
    cognito.admin_remove_user_from_group(UserPoolId=pool_id, Username="user00001", GroupName="admins")

    run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.created, run.updated, run.removed) == (0, len(renamed) + len(disabled), len(deleted))
    assert run.summary["clients"]["updated"] == 1
    assert run.summary["memberships"]["removed"] == 1

    local = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    assert not set(deleted) & set(local)
    for username, email in renamed.items():
        assert local[username].email == email
    for username in disabled:
        assert local[username].enabled is False
    changed = set(renamed) | set(disabled)
    for username, (content_hash, pk) in untouched.items():
        if username in local and username not in changed:
            assert (local[username].content_hash, local[username].pk) == (content_hash, pk)
    spa = AppClient.objects.get(client_id=remote["spa"]["ClientId"])
    assert spa.explicit_auth_flows == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"]

    events = AuditEvent.objects.filter(correlation_id=str(run.correlation_id))
    email_event = events.get(object_type="user", object_id="user00020", action="updated")
    assert email_event.changes["email"] == ["user20@example.com", "changed20@example.org"]
    assert email_event.changes["attributes.email"] == ["user20@example.com", "changed20@example.org"]
    disabled_event = events.get(object_type="user", object_id="user00030", action="updated")
    assert disabled_event.changes["enabled"] == [True, False]
    deleted_event = events.get(object_type="user", object_id="user00010", action="deleted")
    assert deleted_event.changes["email"] == ["user10@example.com", None]
    client_event = events.get(object_type="app_client", action="updated")
    assert client_event.changes["explicit_auth_flows"] == [FLOWS, ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"]]
    assert events.get(action="group_removed", object_id="user00001").changes == {"group": ["admins", None]}
    assert events.filter(object_type="user").count() == len(renamed) + len(disabled) + len(deleted) + 1


def test_no_client_secret_anywhere_in_the_database(cognito):
    remote = _populate(cognito, n_users=5)
    secret = cognito.describe_user_pool_client(UserPoolId=remote["pool_id"], ClientId=remote["server"]["ClientId"])[
        "UserPoolClient"
    ]["ClientSecret"]
    assert secret
    _mirror(remote["pool_id"])
    with connection.cursor() as cursor:
        tables = connection.introspection.table_names(cursor)
        hits = []
        for table in tables:
            cursor.execute(f'SELECT * FROM "{table}"')  # noqa: S608 - table names from introspection
            for row in cursor.fetchall():
                if any(secret in str(value) for value in row):
                    hits.append(table)
    assert hits == []
    assert "ClientSecret" not in AppClient.objects.get(client_id=remote["server"]["ClientId"]).raw


def test_audit_log_refuses_update_and_delete():
    from django.db import IntegrityError, InternalError, transaction

    from directory import audit

    event = audit.record(action="created", object_type="user", object_id="u1", source="sync")
    refused = (IntegrityError, InternalError, Exception)
    # The triggers refuse; connected as the app's own role (CI), its privileges refuse first.
    message = "append-only|permission denied for table directory_auditevent"
    with pytest.raises(refused, match=message), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).update(action="tampered")
    with pytest.raises(refused, match=message), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    with pytest.raises(refused, match=message), transaction.atomic():
        event.action = "tampered"
        event.save()
    assert AuditEvent.objects.get(pk=event.pk).action == "created"


def _snapshot(pool: UserPool) -> dict:
    return {
        "pool": UserPool.objects.filter(pk=pool.pk).values().get(),
        "users": sorted(CognitoUser.objects.filter(pool=pool).values_list("username", "content_hash", "enabled")),
        "clients": sorted(AppClient.objects.filter(pool=pool).values_list("client_id", "content_hash")),
        "groups": sorted(CognitoGroup.objects.filter(pool=pool).values_list("name", "content_hash")),
        "memberships": GroupMembership.objects.filter(group__pool=pool).count(),
        "audit": AuditEvent.objects.exclude(action="sync_failed").count(),
    }


@pytest.fixture
def mirrored_then_changed(cognito):
    remote = _populate(cognito, n_users=200)
    pool = _mirror(remote["pool_id"])
    # Remote changes that a successful pull would apply — a failed one must not.
    cognito.admin_delete_user(UserPoolId=remote["pool_id"], Username="user00003")
    cognito.admin_disable_user(UserPoolId=remote["pool_id"], Username="user00150")
    for i in range(190, 200):
        cognito.admin_update_user_attributes(
            UserPoolId=remote["pool_id"], Username=f"user{i:05d}", UserAttributes=[{"Name": "name", "Value": "New"}]
        )
    return pool, remote


def _assert_failed_and_untouched(pool, before, pattern):
    run = SyncRun.objects.filter(pool=pool).latest("started_at")
    assert run.status == SyncRun.Status.FAILED
    assert re.search(pattern, run.error), run.error
    assert _snapshot(pool) == before
    failure = AuditEvent.objects.get(action="sync_failed", correlation_id=str(run.correlation_id))
    assert failure.outcome == "failed" and failure.object_id == pool.pool_id


def test_unreachable_cognito_fails_cleanly(mirrored_then_changed, monkeypatch):
    pool, _ = mirrored_then_changed
    before = _snapshot(pool)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://127.0.0.1:9")
    monkeypatch.setattr("time.sleep", lambda s: None)
    gateway.reset_clients()
    try:
        with pytest.raises(CommandError, match="1 of 1 pool sync"):
            call_command("cognito_sync", pool.pool_id, verbosity=0)
    finally:
        monkeypatch.undo()
        gateway.reset_clients()
    _assert_failed_and_untouched(pool, before, "Could not connect")


def test_throttled_past_retries_mid_listing_keeps_applied_batches_and_removes_nothing(
    mirrored_then_changed, monkeypatch, settings
):
    # Contract (since pulls commit batch by batch): batches applied before a failure stay,
    # each with its audit event; nothing is removed, because the listing never completed;
    # the next pull completes the mirror.
    settings.COGNITO_SYNC_BATCH_SIZE = 60  # one page a batch
    pool, _ = mirrored_then_changed
    synced_at = pool.last_synced_at
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda s: None)
    client = gateway.get_client("us-east-1")
    # Pages 1-3 are served and applied; from the 4th call on, Cognito throttles.
    with inject(client, "ListUsers", lambda n: n >= 4) as calls:
        with pytest.raises(CommandError):
            call_command("cognito_sync", pool.pool_id, verbosity=0)
    # botocore's standard mode: 1 try + 5 retries, for each of the listing's 3 attempts.
    assert calls["failed"] == 6 * partitions.ATTEMPTS
    run = SyncRun.objects.filter(pool=pool).latest("started_at")
    assert run.status == SyncRun.Status.FAILED and "TooManyRequestsException" in run.error
    assert "user listings failed after 3 attempts (the whole pool)" in run.error
    listing = run.partitions.get(kind="users")
    assert (listing.key, listing.status, listing.attempts) == ("", "failed", partitions.ATTEMPTS)
    assert (run.pages, run.updated, run.removed) == (3, 1, 0)
    local = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    assert local["user00150"].enabled is False  # page 3: applied
    assert "user00003" in local  # deleted remotely, but the listing did not complete
    assert all(local[f"user{i:05d}"].name != "New" for i in range(190, 200))  # page 4: never fetched
    events = AuditEvent.objects.filter(correlation_id=str(run.correlation_id))
    assert events.get(object_id="user00150", action="updated").changes["enabled"] == [True, False]
    assert events.get(action="sync_failed").outcome == "failed"
    assert not events.filter(action="deleted").exists()
    pool.refresh_from_db()
    assert pool.last_synced_at == synced_at

    run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    assert (run.created, run.updated, run.removed) == (0, 10, 1)
    local = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}
    assert "user00003" not in local and local["user00150"].enabled is False
    assert all(local[f"user{i:05d}"].name == "New" for i in range(190, 200))


def test_pool_deleted_in_cognito_fails_cleanly(mirrored_then_changed, cognito):
    pool, remote = mirrored_then_changed
    before = _snapshot(pool)
    cognito.delete_user_pool(UserPoolId=remote["pool_id"])
    with pytest.raises(CommandError):
        call_command("cognito_sync", pool.pool_id, verbosity=0)
    _assert_failed_and_untouched(pool, before, "ResourceNotFoundException")


def test_discover_registers_and_pulls_every_pool(cognito):
    a = create_pool(cognito, name="alpha")
    b = create_pool(cognito, name="beta", email_username=True)
    create_user(cognito, a, "ann", email="ann@example.com", name="Ann")
    call_command("cognito_discover", verbosity=0)
    assert set(UserPool.objects.values_list("pool_id", flat=True)) == {a, b}
    beta = UserPool.objects.get(pool_id=b)
    assert beta.name == "beta" and beta.username_attributes == ["email"] and beta.last_synced_at
    assert CognitoUser.objects.get(pool__pool_id=a).email == "ann@example.com"
    # Each pool's first pull is its baseline: `imported` events, no `created` ones.
    assert AuditEvent.objects.filter(object_type="pool", action="imported").count() == 2
    assert AuditEvent.objects.get(object_type="user", action="imported", pool_id=a).detail["count"] == 1
    assert not AuditEvent.objects.filter(action="created").exists()
    # Idempotent: discovering again creates nothing new.
    assert len(discover_pools()) == 2 and UserPool.objects.count() == 2


def test_sync_command_summary_and_unknown_pool(cognito, capsys):
    pool_id = create_pool(cognito, name="gamma")
    create_user(cognito, pool_id, "bob", email="bob@example.com", name="Bob")
    UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    call_command("cognito_sync", "--all")
    out = capsys.readouterr().out
    assert f"{pool_id} gamma: ok" in out and "users seen 1 (+1" in out
    with pytest.raises(CommandError, match="unknown pool id"):
        call_command("cognito_sync", "us-east-1_missing")
    with pytest.raises(CommandError, match="--all"):
        call_command("cognito_sync")


def test_sync_task_runs_through_celery(cognito):
    from directory.tasks import sync_all_pools

    pool_id = create_pool(cognito, name="delta")
    create_user(cognito, pool_id, "cat", email="cat@example.com", name="Cat")
    UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert sync_all_pools.delay() is not None
    run = SyncRun.objects.get(pool__pool_id=pool_id)
    assert run.status == "succeeded" and run.source == "worker"
    assert CognitoUser.objects.filter(pool__pool_id=pool_id, username="cat").exists()


def test_id_bitmap():
    bits = IdBitmap()
    for value in (0, 7, 8, 1_000_003):
        bits.add(value)
    assert all(v in bits for v in (0, 7, 8, 1_000_003))
    assert not any(v in bits for v in (1, 9, 1_000_002, 5_000_000))
