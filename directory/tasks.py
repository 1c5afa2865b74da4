"""Thin Celery tasks: primary keys in, one service call, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

from .gateway import CognitoThrottled, CognitoUnavailable
from .models import UserPool

logger = logging.getLogger(__name__)


@shared_task(name="directory.tasks.sync_pool")
def sync_pool(pool_pk: int, source: str = "worker", actor: str = "") -> int | None:
    """Pull one pool from Cognito into the mirror; returns the SyncRun's pk."""
    from .sync.pull import sync_pool as pull

    pool = UserPool.objects.filter(pk=pool_pk).first()
    if pool is None:
        logger.info("sync_pool: pool %s no longer exists", pool_pk)
        return None
    run = pull(pool=pool, source=source, actor=actor)
    return run.pk


@shared_task(name="directory.tasks.sync_all_pools")
def sync_all_pools() -> int:
    """Fan out one `sync_pool` task per known pool."""
    pks = list(UserPool.objects.values_list("pk", flat=True))
    for pk in pks:
        sync_pool.delay(pk)
    return len(pks)


@shared_task(
    bind=True,
    name="directory.tasks.apply_change",
    # Throttling and unreachable Cognito are retried with exponential backoff; anything
    # else is recorded as `failed` by the push itself. A change whose retries run out
    # stays `pending` and the sweeper sends it again.
    autoretry_for=(CognitoThrottled, CognitoUnavailable),
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=8,
)
def apply_change(self, change_pk: int) -> str | None:
    """Apply one outbox row to Cognito (idempotent: a redelivered change is applied once)."""
    from .sync.push import apply_change as push

    change = push(change_pk)
    return change.status if change else None


@shared_task(name="directory.tasks.sweep_outbox")
def sweep_outbox() -> int:
    """Re-enqueue changes still pending and bulk jobs still queued (a lost message, a
    broker that was down when they were made)."""
    from datetime import timedelta

    from django.utils import timezone

    from .models import BulkJob
    from .sync.push import pending_for_sweep

    pks = pending_for_sweep()
    for pk in pks:
        apply_change.delay(pk)
    jobs = list(
        BulkJob.objects.filter(
            status=BulkJob.Status.QUEUED, created_at__lt=timezone.now() - timedelta(seconds=30)
        ).values_list("pk", flat=True)
    )
    for pk in jobs:
        run_bulk_job.delay(pk)
    return len(pks) + len(jobs)


@shared_task(name="directory.tasks.run_bulk_job")
def run_bulk_job(job_pk: int) -> int | None:
    """Expand a bulk action into pending changes, with progress on the BulkJob."""
    from .models import BulkJob
    from .services import bulk_job_run

    job = BulkJob.objects.filter(pk=job_pk).exclude(status=BulkJob.Status.DONE).first()
    if job is None:
        return None
    return bulk_job_run(job=job).processed
