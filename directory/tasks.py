"""Thin Celery tasks: primary keys in, one service call, safe to run twice. Messages are sent
through `outbox`, never with `.delay()` elsewhere."""

from __future__ import annotations

import logging

from celery import shared_task

from . import audit_chain, outbox, search_index
from .gateway import CognitoThrottled, CognitoUnavailable
from .models import BulkJob, UserPool
from .services.backup import BACKUP_OPERATION, user_backup_run
from .services.bulk import bulk_job_run
from .services.restore import RESTORE_OPERATION, user_restore_run
from .services.test_users import test_users_expire
from .services.test_users_bulk import test_users_bulk_run
from .sync import discovery, lease, pull, schedule
from .sync.push import apply_change as push_change

logger = logging.getLogger(__name__)


@shared_task(name="directory.tasks.sync_pool")
def sync_pool(pool_pk: int, source: str = "worker", actor: str = "", scheduled: bool = False) -> int | None:
    """Pull one pool from Cognito into the mirror under its sync lease; returns the SyncRun's
    pk. A run that finds another one going is recorded as `skipped`. A scheduled run that
    is no longer due (an earlier message of the same schedule ran first) does nothing."""
    pool = UserPool.objects.filter(pk=pool_pk).first()
    if pool is None or pool.is_gone:
        logger.info("sync_pool: pool %s is gone", pool_pk)
        return None
    if scheduled and not schedule.is_due(pool):
        logger.info("sync_pool: %s is no longer due", pool.pool_id)
        return None
    run = lease.sync_pool(pool=pool, source=source, actor=actor)
    return run.pk


@shared_task(name="directory.tasks.discover_pools")
def discover_pools() -> str:
    """Beat (every COGNITO_DISCOVERY_INTERVAL_MINUTES): ListUserPools in every region of
    COGNITO_REGIONS; new pools are registered and pulled, pools Cognito no longer has are marked
    gone. Returns the summary ("N pools found, M new, K gone")."""
    result = discovery.discover()
    logger.info("discovery: %s", result.summary())
    return result.summary()


@shared_task(name="directory.tasks.catch_up_search")
def catch_up_search() -> int:
    """Beat (every minute): write the search texts of the users pulls have queued; a pull already
    does so when it ends, so this only finds work after a worker died or a catch-up failed.
    Returns how many queue entries it took."""
    return search_index.catch_up()


@shared_task(name="directory.tasks.pull_partitions")
def pull_partitions(run_pk: int, kind: str) -> int:
    """Help another worker's running pull: claim and list its partitions of `kind` (users or
    memberships) until none is left; returns how many this worker listed. Does nothing once
    the pull is over, so a late or repeated message is harmless."""
    return pull.help_pull(run_pk=run_pk, kind=kind)


@shared_task(name="directory.tasks.sync_all_pools")
def sync_all_pools() -> int:
    """Beat's fan-out (every minute): one `sync_pool` task per pool whose interval has passed
    since its last pull, or that was never pulled; pools with interval 0 are left alone."""
    pks = schedule.due_pool_pks()
    for pk in pks:
        outbox.enqueue_sync(pk, scheduled=True)
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
    change = push_change(change_pk)
    return change.status if change else None


@shared_task(name="directory.tasks.sweep_outbox")
def sweep_outbox() -> int:
    """Re-enqueue changes still pending and bulk jobs still queued (a lost message, a broker that
    was down when they were made), changes whose worker died mid-apply, and pulls whose worker
    died mid-pull."""
    pks = outbox.changes_to_resend()
    for pk in pks:
        outbox.enqueue_change(pk)
    jobs = outbox.bulk_jobs_to_resend()
    for pk in jobs:
        outbox.enqueue_bulk_job(pk)
    pools = lease.lost_pulls()
    for pk in pools:
        logger.warning("the pull of pool %s lost its worker: starting it again", pk)
        outbox.enqueue_sync(pk)
    return len(pks) + len(jobs) + len(pools)


@shared_task(name="directory.tasks.run_bulk_job")
def run_bulk_job(job_pk: int) -> int | None:
    """Expand a bulk action into pending changes, with progress on the BulkJob."""
    job = BulkJob.objects.filter(pk=job_pk).exclude(status=BulkJob.Status.DONE).first()
    if job is None:
        return None
    if job.operation == BulkJob.Operation.CREATE_TEST_USERS:
        # Creates users itself (rows, not a selection); the sweeper resends it like any queued job.
        return test_users_bulk_run(job=job).processed
    if job.operation in BACKUP_RUNNERS:
        # Backups and restores do the work themselves too (a file, not a selection).
        return BACKUP_RUNNERS[job.operation](job=job).processed
    return bulk_job_run(job=job).processed


@shared_task(name="directory.tasks.expire_test_users")
def expire_test_users() -> int:
    """Request the deletion of test users whose expiry has passed (beat, every few minutes)."""
    return test_users_expire()


@shared_task(name="directory.tasks.verify_audit_log")
def verify_audit_log() -> bool:
    """Walk the audit log's hash chain and store the outcome (beat, every
    COGNITO_AUDIT_VERIFY_MINUTES); the admin warns while the latest one found it broken."""
    return audit_chain.verify_and_record(source="beat").ok


# Backup and restore jobs run through run_bulk_job (the outbox enqueues and the sweeper resends every
# queued BulkJob by that task).
BACKUP_RUNNERS = {BACKUP_OPERATION: user_backup_run, RESTORE_OPERATION: user_restore_run}
