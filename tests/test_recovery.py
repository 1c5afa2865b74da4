"""Recovery from a killed worker in seconds: a pull whose worker died is started again by the
sweeper as soon as its lease expires; the timings are chosen together (settings)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from directory.models import CognitoUser, SyncRun, UserPool
from directory.sync import lease
from directory.sync.pull import pull_pool
from directory.tasks import sweep_outbox
from tests.cognito_helpers import create_pool, create_user

pytestmark = pytest.mark.django_db


def test_a_pull_whose_worker_died_is_started_again_by_the_sweeper(cognito):
    pool_id = create_pool(cognito, name="orphaned")
    for i in range(5):
        create_user(cognito, pool_id, f"user{i}", email=f"user{i}@example.com", name=f"User {i}")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    create_user(cognito, pool_id, "late", email="late@example.com", name="Late")
    # What a worker killed mid-pull leaves behind: a running run, and a lease nobody renews.
    dead = SyncRun.objects.create(pool=pool, source="worker", status=SyncRun.Status.RUNNING)
    UserPool.objects.filter(pk=pool.pk).update(
        sync_lock_token="the-dead-worker", sync_lock_expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert lease.lost_pulls() == [pool.pk]

    assert sweep_outbox() == 1  # beat's sweep starts the pull again (run inline here)
    dead.refresh_from_db()
    assert dead.status == SyncRun.Status.FAILED and lease.WORKER_LOST in dead.error
    latest = SyncRun.objects.filter(pool=pool).latest("pk")
    assert latest.status == SyncRun.Status.SUCCEEDED
    assert CognitoUser.objects.filter(pool=pool, username="late").exists()
    assert lease.lost_pulls() == []


def test_a_live_pull_is_not_taken_for_lost(cognito):
    pool = UserPool.objects.create(pool_id="us-east-1_alive0001", region="us-east-1")
    SyncRun.objects.create(pool=pool, source="worker", status=SyncRun.Status.RUNNING)
    UserPool.objects.filter(pk=pool.pk).update(
        sync_lock_token="a-live-worker", sync_lock_expires_at=timezone.now() + timedelta(seconds=10)
    )
    assert lease.lost_pulls() == []


def test_the_timings_recover_a_killed_worker_within_30_seconds():
    """A lease expires COGNITO_SYNC_LEASE_SECONDS after its last renewal and an untouched change is
    stale after COGNITO_APPLYING_STALE_SECONDS; the sweeper runs every COGNITO_OUTBOX_SWEEP_SECONDS."""
    sweep = settings.CELERY_BEAT_SCHEDULE["sweep-outbox"]["schedule"].total_seconds()
    if settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        assert settings.COGNITO_SYNC_LEASE_SECONDS + sweep <= 30
    assert settings.COGNITO_APPLYING_STALE_SECONDS + sweep <= 30
