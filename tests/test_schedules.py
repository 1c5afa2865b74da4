"""Per-pool schedules and the sync lease: beat's fan-out pulls only pools that are due, the
interval is edited (and audited) in the admin, a pool's sync never runs twice at once (the
second is skipped and recorded), and a worker killed mid-sync leaves a lease that expires so
the next run succeeds and marks the dead one failed."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.conf import settings as django_settings
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from directory import tasks
from directory.models import AuditEvent, CognitoUser, SyncRun, UserPool
from directory.sync import lease, schedule
from emulator import target
from tests import procs
from tests.cognito_helpers import create_pool, create_user
from tests.factories import UserPoolFactory

ROOT = procs.ROOT


# --------------------------------------------------------------------------- due-ness and fan-out


@pytest.mark.django_db
def test_fan_out_enqueues_only_due_pools(settings, monkeypatch):
    settings.COGNITO_SYNC_INTERVAL_MINUTES = 15
    now = timezone.now()
    never = UserPoolFactory(name="never", last_synced_at=None)
    stale = UserPoolFactory(name="stale", last_synced_at=now - timedelta(minutes=16))
    fresh = UserPoolFactory(name="fresh", last_synced_at=now - timedelta(minutes=5))
    off = UserPoolFactory(name="off", last_synced_at=None, sync_interval_minutes=0)
    hourly = UserPoolFactory(name="hourly", last_synced_at=now - timedelta(minutes=30), sync_interval_minutes=60)
    fast = UserPoolFactory(name="fast", last_synced_at=now - timedelta(minutes=6), sync_interval_minutes=5)
    sent: list[tuple] = []
    monkeypatch.setattr(tasks.sync_pool, "delay", lambda *a, **kw: sent.append((a, kw)))

    assert tasks.sync_all_pools() == 3
    assert sorted(a[0] for a, _ in sent) == sorted([never.pk, stale.pk, fast.pk])
    assert all(kw == {"scheduled": True} for _, kw in sent)
    assert {p.pk for p in (fresh, off, hourly)}.isdisjoint(a[0] for a, _ in sent)
    # The default moves with the setting.
    settings.COGNITO_SYNC_INTERVAL_MINUTES = 4
    assert fresh.pk in schedule.due_pool_pks()
    assert schedule.describe(off) == "off (manual syncs only)"
    assert schedule.describe(hourly).startswith("every 60 minutes (this pool); next due ")


def test_beat_checks_every_minute():
    entry = django_settings.CELERY_BEAT_SCHEDULE["sync-all-pools"]
    assert entry["task"] == "directory.tasks.sync_all_pools"
    assert entry["schedule"] <= timedelta(minutes=1)
    assert django_settings.CELERY_BEAT_SCHEDULER == "django_celery_beat.schedulers:DatabaseScheduler"


@pytest.mark.django_db
def test_scheduled_message_for_a_pool_no_longer_due_does_nothing(cognito):
    pool_id = create_pool(cognito, name="twice")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert SyncRun.objects.get(pk=tasks.sync_pool(pool.pk, scheduled=True)).status == "succeeded"
    # A second message of the same schedule (queued while the first waited) finds it fresh.
    assert tasks.sync_pool(pool.pk, scheduled=True) is None
    assert SyncRun.objects.filter(pool=pool).count() == 1
    # A manual sync always runs.
    assert SyncRun.objects.get(pk=tasks.sync_pool(pool.pk, source="admin")).status == "succeeded"


# --------------------------------------------------------------------------- the admin


def _url(view: str, *args) -> str:
    return reverse(f"admin:directory_userpool_{view}", args=args)


@pytest.mark.django_db
def test_interval_is_edited_in_the_admin_and_audited(admin_client, settings):
    settings.COGNITO_SYNC_INTERVAL_MINUTES = 15
    pool = UserPoolFactory(name="shop", last_synced_at=timezone.now())
    page = admin_client.get(_url("change", pool.pk))
    assert page.status_code == HTTPStatus.OK
    assert "every 15 minutes (default)" in page.content.decode()
    assert _url("schedule", pool.pk) in page.content.decode()

    form = admin_client.get(_url("schedule", pool.pk))
    assert form.status_code == HTTPStatus.OK and 'name="sync_interval_minutes"' in form.content.decode()

    response = admin_client.post(_url("schedule", pool.pk), {"sync_interval_minutes": "30"})
    assert response.status_code == HTTPStatus.FOUND and response["Location"] == _url("change", pool.pk)
    pool.refresh_from_db()
    assert pool.sync_interval_minutes == 30
    event = AuditEvent.objects.get(action="schedule_changed")
    assert event.changes == {"sync_interval_minutes": [None, 30]}
    assert (event.actor, event.source, event.object_id) == ("admin", "admin", pool.pool_id)
    assert "every 30 minutes (this pool)" in admin_client.get(_url("change", pool.pk)).content.decode()

    # The same value again changes nothing and writes no event.
    admin_client.post(_url("schedule", pool.pk), {"sync_interval_minutes": "30"})
    assert AuditEvent.objects.filter(action="schedule_changed").count() == 1

    # 0 switches the schedule off; blank goes back to the default.
    admin_client.post(_url("schedule", pool.pk), {"sync_interval_minutes": "0"})
    pool.refresh_from_db()
    assert pool.sync_interval_minutes == 0 and not schedule.is_due(pool)
    admin_client.post(_url("schedule", pool.pk), {"sync_interval_minutes": ""})
    pool.refresh_from_db()
    assert pool.sync_interval_minutes is None
    assert [e.changes["sync_interval_minutes"] for e in AuditEvent.objects.filter(action="schedule_changed")
            .order_by("id")] == [[None, 30], [30, 0], [0, None]]


@pytest.mark.django_db
@pytest.mark.parametrize("value", ["-1", "100000", "soon"])
def test_bad_interval_is_a_form_error(admin_client, value):
    pool = UserPoolFactory(name="shop", sync_interval_minutes=20)
    response = admin_client.post(_url("schedule", pool.pk), {"sync_interval_minutes": value})
    assert response.status_code == HTTPStatus.OK
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["sync_interval_minutes"], errors
    pool.refresh_from_db()
    assert pool.sync_interval_minutes == 20
    assert not AuditEvent.objects.filter(action="schedule_changed").exists()


@pytest.mark.django_db
def test_interval_edit_needs_the_change_permission(client, django_user_model):
    pool = UserPoolFactory(name="shop")
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_userpool"))
    client.force_login(user)
    assert client.get(_url("schedule", pool.pk)).status_code == HTTPStatus.FORBIDDEN
    assert client.post(_url("schedule", pool.pk), {"sync_interval_minutes": "5"}).status_code == HTTPStatus.FORBIDDEN
    pool.refresh_from_db()
    assert pool.sync_interval_minutes is None


# --------------------------------------------------------------------------- the lease


@pytest.fixture
def mirrored_pool(cognito):
    pool_id = create_pool(cognito, name="leased")
    for i in range(3):
        create_user(cognito, pool_id, f"user{i}", email=f"user{i}@example.com", name=f"User {i}")
    return UserPool.objects.create(pool_id=pool_id, region="us-east-1")


@pytest.mark.django_db
def test_second_run_is_skipped_and_recorded_while_one_holds_the_lease(mirrored_pool, capsys):
    pool = mirrored_pool
    held = lease.acquire(pool)  # another worker's pull, in the middle of its run
    running = SyncRun.objects.create(pool=pool, source="worker")

    skipped = SyncRun.objects.get(pk=tasks.sync_pool(pool.pk, source="admin", actor="ops"))
    assert (skipped.status, skipped.source, skipped.actor) == ("skipped", "admin", "ops")
    assert skipped.error.startswith("another sync of this pool is running since ")
    assert skipped.finished_at is not None
    assert not CognitoUser.objects.filter(pool=pool).exists()  # nothing pulled
    # Scheduled runs and the command are skipped the same way.
    tasks.sync_all_pools()
    call_command("cognito_sync", pool.pool_id)
    assert "skipped: another sync of this pool is running" in capsys.readouterr().out
    assert SyncRun.objects.filter(pool=pool, status="skipped").count() == 3
    running.refresh_from_db()
    assert running.status == "running"  # a live lease: the other run is left alone

    held.release()
    run = SyncRun.objects.get(pk=tasks.sync_pool(pool.pk))
    assert run.status == "succeeded"
    assert CognitoUser.objects.filter(pool=pool).count() == 3
    pool.refresh_from_db()
    assert (pool.sync_lock_token, pool.sync_lock_expires_at) == ("", None)  # released


@pytest.mark.django_db
def test_expired_lease_is_taken_over_and_the_stale_run_failed(mirrored_pool):
    pool = mirrored_pool
    started = timezone.now() - timedelta(minutes=10)
    dead = SyncRun.objects.create(pool=pool, source="worker", phase="users")
    SyncRun.objects.filter(pk=dead.pk).update(started_at=started)
    UserPool.objects.filter(pk=pool.pk).update(
        sync_lock_token="dead-worker", sync_lock_expires_at=timezone.now() - timedelta(seconds=1)
    )
    run = SyncRun.objects.get(pk=tasks.sync_pool(pool.pk))
    assert run.status == "succeeded"
    dead.refresh_from_db()
    assert dead.status == "failed" and dead.error == lease.WORKER_LOST and dead.finished_at is not None
    assert CognitoUser.objects.filter(pool=pool).count() == 3


@pytest.mark.django_db
def test_lease_is_renewed_while_the_pull_runs_and_a_lost_lease_abandons_it(mirrored_pool, settings):
    pool = mirrored_pool
    settings.COGNITO_SYNC_LEASE_SECONDS = 4
    phases: list[tuple[str, float]] = []

    def slow(run, ctx):
        # One second a phase: the lease (TTL 4 s) is renewed every second it runs.
        time.sleep(1.0)
        expires = UserPool.objects.values_list("sync_lock_expires_at", flat=True).get(pk=pool.pk)
        phases.append((run.phase, (expires - timezone.now()).total_seconds()))

    run = lease.sync_pool(pool=pool, progress=slow)
    assert run.status == "succeeded"
    # Long after the first 4 s the lease still had most of its TTL left.
    assert len(phases) >= 5 and all(left > 1.5 for _, left in phases[:-1]), phases

    def thief(run, ctx):
        if run.phase == "users":
            UserPool.objects.filter(pk=pool.pk).update(
                sync_lock_token="someone-else", sync_lock_expires_at=timezone.now() + timedelta(minutes=5)
            )
            time.sleep(1.1)  # so that the next page renews, and finds the lease gone

    synced_at = UserPool.objects.get(pk=pool.pk).last_synced_at
    lost = lease.sync_pool(pool=pool, progress=thief)
    assert lost.status == "failed" and "took this pool's lease over" in lost.error
    pool.refresh_from_db()
    assert pool.last_synced_at == synced_at  # the pull stopped before completing
    assert pool.sync_lock_token == "someone-else"  # and the loser did not release the winner's lease


@pytest.mark.slow
@pytest.mark.timeout(120)
@contextlib.contextmanager
def _sync_killed_mid_listing(cognito, tmp_path, name: str, **env: str):
    """A real process runs `cognito_sync` on a 5-user pool and is SIGKILLed while its ListUsers call
    is in flight; yields (pool, the killed run, when it was killed)."""
    hold = procs.HoldAfterForward(hold=1, timeout=60)
    server = procs.FaultServer({target("ListUsers"): hold})
    proc = None
    log = open(tmp_path / "sync.log", "wb")  # noqa: SIM115 - closed in finally
    try:
        pool_id = create_pool(cognito, name=name)
        for i in range(5):
            create_user(cognito, pool_id, f"user{i}", email=f"user{i}@example.com", name=f"User {i}")
        pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
        environment = procs.worker_env(
            database_url=procs.database_url(connection.settings_dict),
            broker_url="filesystem://",
            cognito_endpoint=server.endpoint,
            COGNITO_ADMIN_VAR_DIR=str(tmp_path),
            **env,
        )
        proc = subprocess.Popen([sys.executable, "manage.py", "cognito_sync", pool_id], cwd=ROOT, env=environment,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        if not hold.in_flight.wait(30):
            raise AssertionError((tmp_path / "sync.log").read_text())
        pool.refresh_from_db()
        assert pool.sync_lock_token and pool.sync_lock_expires_at > timezone.now()
        killed = SyncRun.objects.get(pool=pool)
        assert killed.status == "running"
        procs.kill_group(proc)
        killed_at = time.monotonic()
        hold.release.set()
        yield pool, killed, killed_at
    finally:
        hold.release.set()
        if proc is not None:
            with contextlib.suppress(Exception):
                procs.kill_group(proc)
        server.stop()
        log.close()


def test_worker_killed_mid_sync_leaves_a_lease_that_expires(transactional_db, cognito, tmp_path):
    """A real process runs `cognito_sync`, is SIGKILLed while its ListUsers call is in flight;
    until the lease expires, runs are skipped; then the next run takes over and succeeds."""
    killing = _sync_killed_mid_listing(cognito, tmp_path, "crash", COGNITO_SYNC_LEASE_SECONDS="5")
    with killing as (pool, killed, killed_at):
        # The lease outlives its worker until it expires: runs meanwhile are skipped.
        skipped = SyncRun.objects.get(pk=tasks.sync_pool(pool.pk))
        assert skipped.status == "skipped" and "another sync of this pool is running" in skipped.error
        assert not CognitoUser.objects.filter(pool=pool).exists()  # the killed pull left nothing half-done

        procs.wait_until(lambda: timezone.now() > UserPool.objects.get(pk=pool.pk).sync_lock_expires_at,
                         timeout=15, what="the dead worker's lease to expire")
        run = SyncRun.objects.get(pk=tasks.sync_pool(pool.pk))
        assert run.status == "succeeded", run.error
        assert time.monotonic() - killed_at < 15
        assert CognitoUser.objects.filter(pool=pool).count() == 5
        killed.refresh_from_db()
        assert (killed.status, killed.error) == ("failed", lease.WORKER_LOST)
        pool.refresh_from_db()
        assert pool.sync_lock_token == "" and pool.last_synced_at is not None


@pytest.mark.django_db
def test_a_settings_edit_and_its_push_leave_a_running_sync_lease_alone(
    mirrored_pool, django_capture_on_commit_callbacks
):
    from directory.services import pools as pool_services
    from directory.sync.pull import pull_pool as pull

    pool = mirrored_pool
    assert pull(pool=pool).status == "succeeded"
    pool.refresh_from_db()  # the operator's copy, read before a sync takes the lease
    expires = timezone.now() + timedelta(seconds=120)
    synced = timezone.now()
    UserPool.objects.filter(pk=pool.pk).update(
        sync_lock_token="held-by-a-worker", sync_lock_expires_at=expires, last_synced_at=synced
    )
    with django_capture_on_commit_callbacks(execute=True):
        change = pool_services.user_pool_update(pool=pool, changes={"deletion_protection": "ACTIVE"}, actor="dave")
    change.refresh_from_db()
    assert change.status == "applied"
    stored = UserPool.objects.get(pk=pool.pk)
    assert stored.deletion_protection == "ACTIVE"
    assert (stored.sync_lock_token, stored.sync_lock_expires_at, stored.last_synced_at) == (
        "held-by-a-worker", expires, synced
    )
