"""Delivery across processes with real parts: a private redis-server that the tests stop and
start, Celery workers as subprocesses sharing the test database, moto over HTTP.

- the broker is down while an operator makes 50 edits: every save succeeds, nothing is lost,
  the sweeper (in a real worker) sends them once Redis is back, each is applied exactly once;
- a worker is SIGKILLed while its AdminDisableUser call is in flight (already done in
  Cognito): the message comes back (acks_late, short visibility timeout), a new worker
  applies the change without calling Cognito again, and it is audited once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from directory.models import AuditEvent, BulkJob, CognitoUser, PendingChange, UserPool
from directory.services import bulk as bulk_services
from directory.services import users as user_services
from directory.sync.pull import pull_pool
from directory.tasks import sweep_outbox
from emulator import target
from tests import procs
from tests.cognito_helpers import UNICODE_NAMES, create_pool, create_user, list_all_users

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

EDITS = 50
DONE = (PendingChange.Status.APPLIED, PendingChange.Status.FAILED, PendingChange.Status.CONFLICT)


# --------------------------------------------------------------------------- fixtures


def _worker(tmp_path, name: str, *, cognito_endpoint: str, broker_url: str, pool: str = "solo", **env: str):
    return procs.worker_for_test(
        tmp_path, name, settings_dict=connection.settings_dict, cognito_endpoint=cognito_endpoint,
        broker_url=broker_url, pool=pool, **env,
    )


def _mirror(cognito, name: str, users: int) -> tuple[UserPool, list[str]]:
    pool_id = create_pool(cognito, name=name)
    usernames = [f"user{i:02d}" for i in range(users)]
    for i, username in enumerate(usernames):
        create_user(cognito, pool_id, username, email=f"{username}@example.com", name=f"User {i}")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    run = pull_pool(pool=pool)
    assert run.status == "succeeded", run
    assert CognitoUser.objects.filter(pool=pool).count() == users
    return pool, usernames


def _audit_actions(change: PendingChange) -> Counter:
    events = AuditEvent.objects.filter(correlation_id=str(change.correlation_id))
    return Counter(events.values_list("action", flat=True))


def _status_counts() -> Counter:
    return Counter(PendingChange.objects.values_list("status", flat=True))


# --------------------------------------------------------------------------- tests


def test_broker_outage_loses_no_edit(transactional_db, cognito, moto_server, celery_to, tmp_path, caplog):
    broker = celery_to
    pool, usernames = _mirror(cognito, "outage", EDITS)
    users = {u.username: u for u in CognitoUser.objects.filter(pool=pool)}

    broker.stop()
    wanted: dict[str, dict] = {}
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="directory.outbox"):
        for i, username in enumerate(usernames):
            user = users[username]
            if i % 2:
                change = user_services.cognito_user_set_enabled(user=user, enabled=False, actor="ops")
                wanted[username] = {"enabled": False}
            else:
                new_name = f"{UNICODE_NAMES[i % len(UNICODE_NAMES)]} {i}"
                change = user_services.cognito_user_update_attributes(
                    user=user, attributes={"name": new_name}, actor="ops"
                )
                wanted[username] = {"name": new_name}
            assert change is not None and change.pk
    edits_seconds = time.monotonic() - started
    refused = [r for r in caplog.records if "could not enqueue change" in r.getMessage()]
    assert len(refused) == EDITS, [r.getMessage() for r in caplog.records]
    assert edits_seconds < 20, f"50 saves with the broker down took {edits_seconds:.1f}s"

    # Committed, nothing sent: every change waits in the outbox.
    assert _status_counts() == {"pending": EDITS}
    assert AuditEvent.objects.filter(action="requested").count() == EDITS
    remote = {u["Username"]: u for u in list_all_users(cognito, pool.pool_id)}
    assert all(u["Enabled"] for u in remote.values())

    broker.start()
    with _worker(tmp_path, "outage", cognito_endpoint=moto_server, broker_url=broker.url) as worker:
        # The outage lasted longer than the sweeper's threshold (30 s): the beat's sweeper
        # runs in the worker, re-enqueues every pending change, and the worker applies them.
        PendingChange.objects.filter(status="pending").update(updated_at=timezone.now() - timedelta(seconds=60))
        sweep_outbox.delay()
        applied_at = time.monotonic()
        try:
            procs.wait_until(lambda: PendingChange.objects.filter(status__in=DONE).count() == EDITS,
                             timeout=60, interval=0.25, what="all 50 changes to be applied")
        except TimeoutError as exc:
            raise AssertionError(f"{exc}: {_status_counts()}\n{worker.log()}") from None
        apply_seconds = time.monotonic() - applied_at

    assert _status_counts() == {"applied": EDITS}, worker.log()
    remote = {u["Username"]: u for u in list_all_users(cognito, pool.pool_id)}
    for username, want in wanted.items():
        attrs = {a["Name"]: a["Value"] for a in remote[username]["Attributes"]}
        if "enabled" in want:
            assert remote[username]["Enabled"] is False, username
            assert attrs["name"] == users[username].name, username  # untouched
        else:
            assert remote[username]["Enabled"] is True, username
            assert attrs["name"] == want["name"], username
    for change in PendingChange.objects.all():
        assert _audit_actions(change) == {"requested": 1, "applied": 1}, (change.object_key, _audit_actions(change))
        assert change.attempts == 1 and change.last_error == ""
    assert not AuditEvent.objects.filter(action__in=["failed", "conflict"]).exists()
    # The mirror now holds what Cognito holds.
    for user in CognitoUser.objects.filter(pool=pool):
        want = wanted[user.username]
        assert (user.enabled is False) if "enabled" in want else (user.name == want["name"]), user.username
    print(f"\n50 saves with the broker down: {edits_seconds:.2f}s; sweep + apply after restart: {apply_seconds:.2f}s")


@pytest.mark.parametrize(
    "victim",
    [
        # The whole worker (main process and pool) dies: the unacknowledged message comes
        # back when the visibility timeout (5 s here) expires; a new worker takes it.
        "worker",
        # Only the pool process dies: the main process sees WorkerLostError and, with
        # task_reject_on_worker_lost, requeues the message at once (visibility timeout 1 h,
        # so nothing else can bring it back within the test).
        "pool-child",
    ],
)
def test_worker_killed_mid_apply_applies_once(victim, transactional_db, cognito, celery_to, tmp_path):
    broker = celery_to
    hold = procs.HoldAfterForward(hold=1, timeout=60)
    server = procs.FaultServer({target("AdminDisableUser"): hold})
    visibility = "5" if victim == "worker" else "3600"
    workers: list[procs.CeleryWorker] = []
    try:
        pool, _ = _mirror(cognito, "killed", 2)
        user = CognitoUser.objects.get(pool=pool, username="user00")

        def start_worker(name: str) -> procs.CeleryWorker:
            worker = _worker(tmp_path, name, cognito_endpoint=server.endpoint, broker_url=broker.url,
                             pool="prefork", CELERY_VISIBILITY_TIMEOUT=visibility)
            workers.append(worker)
            return worker.start()

        first = start_worker("first")
        change = user_services.cognito_user_set_enabled(user=user, enabled=False, actor="ops")
        if not hold.in_flight.wait(30):
            raise AssertionError(f"AdminDisableUser never reached Cognito: {_status_counts()}\n{first.log()}")
        # Done in Cognito, not yet answered: the worker dies now.
        assert cognito.admin_get_user(UserPoolId=pool.pool_id, Username="user00")["Enabled"] is False
        change.refresh_from_db()
        assert (change.status, change.attempts) == ("applying", 1)
        killed_at = time.monotonic()
        if victim == "worker":
            first.kill()
            hold.release.set()
            survivor = start_worker("second")
        else:
            pool_children = first.pool_children()
            assert len(pool_children) == 1, pool_children
            os.kill(pool_children[0], signal.SIGKILL)
            hold.release.set()
            survivor = first
        try:
            procs.wait_until(lambda: PendingChange.objects.filter(pk=change.pk, status__in=DONE).exists(),
                             timeout=45, interval=0.25, what="the redelivered change to be applied")
        except TimeoutError as exc:
            change.refresh_from_db()
            raise AssertionError(f"{exc}: {change.status} attempts={change.attempts}\n{survivor.log()}") from None
        recovered_seconds = time.monotonic() - killed_at

        change.refresh_from_db()
        assert change.status == "applied", (change.last_error, survivor.log())
        assert change.attempts >= 2
        assert hold.calls == 1, "the second apply called AdminDisableUser again"
        assert cognito.admin_get_user(UserPoolId=pool.pool_id, Username="user00")["Enabled"] is False
        assert _audit_actions(change) == {"requested": 1, "applied": 1}
        applied = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="applied")
        assert applied.detail["sent"] is False and applied.detail["attempts"] == change.attempts
        user.refresh_from_db()
        assert user.enabled is False
        # The other user was never touched.
        assert cognito.admin_get_user(UserPoolId=pool.pool_id, Username="user01")["Enabled"] is True
        if victim == "pool-child":
            assert "WorkerLostError" in first.log(100_000)
        print(f"\n{victim} killed: change applied {recovered_seconds:.2f}s later (attempts={change.attempts})")
    finally:
        hold.release.set()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.kill()
        server.stop()


def test_bulk_action_during_broker_outage_runs_when_broker_returns(
    transactional_db, cognito, moto_server, celery_to, tmp_path
):
    """The admin's "Disable selected users" action is a BulkJob expanded by a worker; queued
    during an outage, the sweeper must send it (or its changes) once the broker is back."""
    broker = celery_to
    pool, _ = _mirror(cognito, "bulk-outage", 10)

    broker.stop()
    jobs = bulk_services.bulk_job_start(users=CognitoUser.objects.filter(pool=pool), operation="disable", actor="ops")
    assert [job.status for job in jobs] == ["queued"]
    broker.start()

    with _worker(tmp_path, "bulk", cognito_endpoint=moto_server, broker_url=broker.url) as worker:
        # Long after the outage: the job is older than any sweep threshold.
        BulkJob.objects.update(created_at=timezone.now() - timedelta(minutes=10))
        sweep_outbox.delay()
        procs.wait_until(lambda: "sweep_outbox" in worker.log(100_000) and " succeeded in " in worker.log(100_000),
                         timeout=30, what="the sweeper to run")
        try:
            procs.wait_until(
                lambda: PendingChange.objects.filter(job=jobs[0], status="applied").count() == 10,
                timeout=15, interval=0.25, what="the bulk job's 10 changes to be applied",
            )
        except TimeoutError as exc:
            job = BulkJob.objects.get(pk=jobs[0].pk)
            raise AssertionError(f"{exc}: job {job.status}, changes {_status_counts()}") from None
    assert not any(u["Enabled"] for u in list_all_users(cognito, pool.pool_id))


def test_worker_killed_mid_apply_is_recovered_within_30_seconds_with_the_brokers_defaults(
    transactional_db, cognito, celery_to, tmp_path
):
    """The killed message would only come back after Redis's 4-hour visibility timeout: the
    sweeper (beat, every 10 s; played here by the test) finds the change nobody touches any more
    and sends it again."""
    broker = celery_to
    hold = procs.HoldAfterForward(hold=1, timeout=60)
    server = procs.FaultServer({target("AdminDisableUser"): hold})
    workers: list[procs.CeleryWorker] = []
    try:
        pool, _ = _mirror(cognito, "killed-defaults", 1)
        user = CognitoUser.objects.get(pool=pool, username="user00")

        def start_worker(name: str) -> procs.CeleryWorker:
            worker = _worker(tmp_path, name, cognito_endpoint=server.endpoint, broker_url=broker.url)
            workers.append(worker)
            return worker.start()

        first = start_worker("first")
        change = user_services.cognito_user_set_enabled(user=user, enabled=False, actor="ops")
        assert hold.in_flight.wait(30), first.log()
        time.sleep(8)  # a live worker keeps touching the change while it waits for Cognito
        change.refresh_from_db()
        assert change.status == "applying"
        assert change.updated_at > timezone.now() - timedelta(seconds=10)
        assert sweep_outbox() == 0  # not taken for lost
        first.kill()
        killed_at = time.monotonic()
        hold.release.set()
        start_worker("second")

        sweep_every = settings.CELERY_BEAT_SCHEDULE["sweep-outbox"]["schedule"].total_seconds()
        swept = {"at": 0.0}

        def recovered() -> bool:
            if time.monotonic() - swept["at"] >= sweep_every:  # beat's sweep, as often as beat runs it
                swept["at"] = time.monotonic()
                sweep_outbox()
            return PendingChange.objects.filter(pk=change.pk, status__in=DONE).exists()

        procs.wait_until(recovered, timeout=45, interval=0.25, what="the change to be sent again")
        recovered_seconds = time.monotonic() - killed_at
        change.refresh_from_db()
        assert change.status == "applied"
        assert hold.calls == 1  # done in Cognito before the kill: not sent twice
        assert recovered_seconds <= 30, recovered_seconds
        print(f"\nworker killed mid-apply: recovered {recovered_seconds:.1f}s later with the broker's defaults")
    finally:
        hold.release.set()
        for worker in workers:
            with contextlib.suppress(Exception):
                worker.kill()
        server.stop()
