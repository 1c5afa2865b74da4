"""A pull's partitions handed to other Celery workers: real workers in subprocesses on the test's
PostgreSQL database and a private Redis broker (which also holds the shared request budget), the
emulator answering 100 ms late as Cognito does, the pulling process listing partitions too.

- two other workers are up: each is asked to help, and the partitions end up listed by more than
  one process, merged into one run whose counts, mirror and baseline are those of the whole pool;
- a helper is SIGKILLed while it holds partitions: once their claims expire the pull's own
  process lists them again (attempt 2) and the pull succeeds.
"""

from __future__ import annotations

import os
import threading

import pytest
from django.db import connection, connections

import emulator
from directory import gateway
from directory.models import AuditEvent, CognitoUser, GroupMembership, SyncPartition, SyncRun, UserPool
from directory.sync import lease
from emulator import target
from emulator.protocol import cognito_backend
from tests import procs
from tests.cognito_helpers import create_pool, list_all_users

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(240),
    pytest.mark.skipif(connection.vendor != "postgresql", reason="workers share the test database: PostgreSQL (CI)"),
]

USERS = 1500


def _pool(cognito, n: int) -> str:
    """A pool of `n` users put straight into moto's backend (this process hosts the server), two groups."""
    from moto.cognitoidp.models import CognitoIdpUser

    pool_id = create_pool(cognito, name="fanout")
    backend_pool = cognito_backend("us-east-1").user_pools[pool_id]
    for name in ("staff", "beta"):
        cognito.create_group(UserPoolId=pool_id, GroupName=name)
    for i in range(n):
        attributes = [
            {"Name": "email", "Value": f"user{i}@example.com"},
            {"Name": "name", "Value": f"User {i}"},
        ]
        user = CognitoIdpUser(pool_id, f"user{i:05d}", None, "CONFIRMED", attributes)
        backend_pool.users[user.username] = user
        if i % 10 == 0:
            group = backend_pool.groups["staff" if i % 20 else "beta"]
            group.users.add(user)
            user.groups.add(group)
    return pool_id


@pytest.fixture
def fanout(settings, monkeypatch, celery_to, moto_server):
    """This process pulls like a worker would (16 partitions, 2 threads, fan-out from any size),
    through the emulator in latency mode."""
    settings.COGNITO_SYNC_PARTITIONS = "16"
    settings.COGNITO_SYNC_THREADS = 2
    settings.COGNITO_SYNC_FANOUT_MIN_USERS = 0
    slow = emulator.start_server(port=0, latency=100)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", slow.endpoint)
    gateway.reset_clients()
    try:
        yield slow
    finally:
        slow.stop()
        gateway.reset_clients()


def _worker(tmp_path, name: str, broker, endpoint: str, **env: str) -> procs.CeleryWorker:
    return procs.worker_for_test(
        tmp_path, name, settings_dict=connection.settings_dict, cognito_endpoint=endpoint, broker_url=broker.url,
        COGNITO_SYNC_THREADS="2", **env,
    )


def _pid(owner: str) -> int:
    return int(owner.split(":")[1])


def _mirror_matches_remote(cognito, pool: UserPool) -> None:
    remote = {u["Username"] for u in list_all_users(cognito, pool.pool_id)}
    assert set(CognitoUser.objects.filter(pool=pool).values_list("username", flat=True)) == remote


def test_other_workers_list_partitions_of_the_same_pull(transactional_db, cognito, fanout, celery_to, tmp_path):
    pool_id = _pool(cognito, USERS)
    first, second = (_worker(tmp_path, name, celery_to, fanout.endpoint) for name in ("w1", "w2"))
    with first as w1, second as w2:
        pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1", estimated_number_of_users=USERS)
        run = lease.sync_pool(pool=pool)
        logs = w1.log() + w2.log()
        helpers = {w1.proc.pid, w2.proc.pid}
    assert run.status == SyncRun.Status.SUCCEEDED, (run.error, logs)
    users = list(run.partitions.filter(kind="users"))
    assert len(users) == 16 and all((p.status, p.attempts) == ("done", 1) for p in users)
    listed_by = {_pid(p.owner) for p in users}
    # The pull's own process took the first partitions; other workers took some of the rest.
    assert os.getpid() in listed_by and listed_by - {os.getpid()}, (listed_by, logs)
    assert listed_by <= helpers | {os.getpid()}
    assert "helped the sync of" in logs
    # One run, counted whole: the other workers' partitions are in its totals.
    run.refresh_from_db()
    assert (run.seen, run.created) == (USERS, USERS)
    assert sum(p.created for p in users) == USERS and run.pages == sum(p.pages for p in users)
    _mirror_matches_remote(cognito, pool)
    memberships = run.partitions.filter(kind="memberships")
    assert sorted(memberships.values_list("key", "status")) == [("beta", "done"), ("staff", "done")]
    assert GroupMembership.objects.filter(group__pool=pool).count() == USERS // 10
    imported = AuditEvent.objects.get(action="imported", object_type="user", correlation_id=str(run.correlation_id))
    assert imported.detail["count"] == USERS
    assert not AuditEvent.objects.filter(action="created", object_type="user").exists()


def test_a_killed_helpers_partitions_are_listed_again_once_their_claims_expire(
    transactional_db, cognito, fanout, celery_to, tmp_path, settings
):
    settings.COGNITO_SYNC_LEASE_SECONDS = 6  # claims (and the pool's lease) expire 6 s after their last renewal
    pool_id = _pool(cognito, USERS)
    # The helper's Cognito never answers ListUsers: it holds its partitions until it is killed.
    held = procs.HoldAfterForward(hold=10_000, timeout=120)
    stuck = procs.FaultServer({target("ListUsers"): held})
    outcome: dict[str, object] = {}

    def pull() -> None:
        try:
            outcome["run"] = lease.sync_pool(pool=pool)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            outcome["error"] = exc
        finally:
            connections.close_all()

    worker = _worker(tmp_path, "doomed", celery_to, stuck.endpoint, COGNITO_SYNC_LEASE_SECONDS="6")
    try:
        worker.start()
        victim = worker.proc.pid
        pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1", estimated_number_of_users=USERS)
        puller = threading.Thread(target=pull, name="pull")
        puller.start()

        def victims() -> set[str]:
            running = SyncPartition.objects.filter(run__pool=pool, kind="users", status="running")
            return {key for key, owner in running.values_list("key", "owner") if _pid(owner) == victim}

        taken = procs.wait_until(victims, timeout=60, interval=0.1, what="the helper to claim partitions")
        held.in_flight.wait(30)
        worker.kill()
        puller.join(120)
        assert not puller.is_alive(), "the pull did not finish"
    finally:
        held.release.set()
        worker.kill()
        stuck.stop()
    assert "error" not in outcome, outcome
    run = outcome["run"]
    assert run.status == SyncRun.Status.SUCCEEDED, (run.error, worker.log())
    parts = {p.key: p for p in run.partitions.filter(kind="users")}
    for key in taken:
        assert (parts[key].status, parts[key].attempts, _pid(parts[key].owner)) == ("done", 2, os.getpid()), key
    assert all(p.status == "done" for p in parts.values())
    run.refresh_from_db()
    assert run.created == USERS
    _mirror_matches_remote(cognito, UserPool.objects.get(pk=pool.pk))
