"""The outbox: requesting a change (a PendingChange, its `requested` audit event, the enqueue
once the transaction commits), and the only place that hands work to Celery.

A broker that is down when a change is made loses nothing: the row stays `pending` and the
beat sweeper (`tasks.sweep_outbox`) sends it again, using `changes_to_resend` and
`bulk_jobs_to_resend` below.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from types import ModuleType
from typing import Any

from celery import current_task
from celery.utils.nodenames import worker_direct
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import audit
from .models import BulkJob, PendingChange, UserPool

logger = logging.getLogger(__name__)

# Changes and bulk jobs younger than this are left to the message that was sent for them.
RESEND_AFTER_SECONDS = 30


def stale_applying_seconds() -> int:
    """An `applying` change nobody has touched for this long lost its worker (a live worker's
    heartbeat touches it every quarter of this)."""
    return int(getattr(settings, "COGNITO_APPLYING_STALE_SECONDS", 15))
# Seconds a pull waits for the workers to answer a ping before it hands partitions to them.
PING_SECONDS = 0.5


def _tasks() -> ModuleType:
    """The Celery tasks module. Imported when first needed: tasks call services, which call this
    module, so a top-level import would be a cycle. This is the one upward edge (outbox -> tasks)."""
    from . import tasks  # noqa: PLC0415 - the one allowed upward import, see the docstring

    return tasks


def _send(task_name: str, what: str, pk: int) -> None:
    try:
        getattr(_tasks(), task_name).delay(pk)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper retries
        logger.warning("could not enqueue %s %s (%s); the outbox sweeper will retry it", what, pk, exc)


def enqueue_change(change_pk: int) -> None:
    """Hand a change to the workers. If the broker is down the change stays `pending` in
    the outbox and the beat sweeper sends it again later: nothing is lost."""
    _send("apply_change", "change", change_pk)


def enqueue_bulk_job(job_pk: int) -> None:
    """Hand a queued bulk job to the workers (the sweeper resends it if this is lost)."""
    _send("run_bulk_job", "bulk job", job_pk)


def enqueue_sync(pool_pk: int, **options: Any) -> None:
    """Ask the workers to pull a pool now (options as `tasks.sync_pool` takes them). Raises when
    the broker refuses the message: a pull that is not queued is not retried by anything."""
    _tasks().sync_pool.delay(pool_pk, **options)


def start_pull_helpers(run_pk: int, kind: str, *, pool: UserPool, partitions: int) -> int:
    """Ask each other Celery worker that is up to list partitions of a running pull alongside
    this worker's threads (`tasks.pull_partitions` on the worker's own queue); return how many
    were asked. None are when COGNITO_SYNC_FANOUT is off, the pool is smaller than
    COGNITO_SYNC_FANOUT_MIN_USERS, there is one partition, tasks run eagerly, or the broker
    cannot reach a worker by name (the embedded filesystem broker). A helper that never
    comes costs nothing: the pull's own worker lists whatever nobody claimed."""
    if not getattr(settings, "COGNITO_SYNC_FANOUT", True) or partitions < 2:
        return 0
    if pool.estimated_number_of_users < getattr(settings, "COGNITO_SYNC_FANOUT_MIN_USERS", 100_000):
        return 0
    task = _tasks().pull_partitions
    conf = task.app.conf
    if conf.task_always_eager or not conf.worker_direct or str(conf.broker_url).startswith(("filesystem", "memory")):
        return 0
    try:
        replies = task.app.control.ping(timeout=PING_SECONDS) or []
    except Exception as exc:  # noqa: BLE001 - no helpers, the pull goes on alone
        logger.warning("could not ask the workers to help the pull of %s (%s)", pool.pool_id, exc)
        return 0
    own = current_task.request.hostname if current_task else None
    others = sorted({name for reply in replies for name in reply} - {own})
    sent = 0
    for hostname in others[: partitions - 1]:
        try:
            task.apply_async((run_pk, kind), queue=worker_direct(hostname))
        except Exception as exc:  # noqa: BLE001 - one helper fewer
            logger.warning("could not ask %s to help the pull of %s (%s)", hostname, pool.pool_id, exc)
            continue
        sent += 1
    if sent:
        logger.info("pull of %s: %s partitions handed to %s other worker(s) too", pool.pool_id, kind, sent)
    return sent


def request_change(
    *,
    pool: UserPool,
    object_type: str,
    object_key: str,
    operation: str,
    before: dict[str, Any],
    after: dict[str, Any],
    actor: str,
    payload: dict[str, Any] | None = None,
    base_version: str = "",
    source: str = audit.Source.ADMIN,
    job: BulkJob | None = None,
    object_repr: str = "",
) -> PendingChange:
    """Write the outbox row and its `requested` audit event (in the caller's transaction) and
    enqueue it once that transaction commits. `before`/`after` are keyed by the fields the
    change touches; the push compares them with what Cognito holds."""
    change = PendingChange.objects.create(
        pool=pool,
        object_type=object_type,
        object_key=object_key,
        operation=operation,
        payload={"after": after, **(payload or {})},
        before=before,
        fields=list(after),
        base_version=base_version,
        actor=actor,
        job=job,
    )
    audit.record(
        action=audit.Action.REQUESTED,
        object_type=object_type,
        object_id=object_key,
        object_repr=object_repr or object_key,
        pool_id=pool.pool_id,
        changes={k: [before.get(k), after.get(k)] for k in after},
        detail={"operation": operation, "change": change.pk},
        outcome=audit.Outcome.PENDING,
        source=source,
        actor=actor,
        correlation_id=str(change.correlation_id),
    )
    transaction.on_commit(lambda: enqueue_change(change.pk))
    return change


def has_active_change(*, pool: UserPool, object_type: str, object_key: str, operation: str | None = None) -> bool:
    """Whether a change of this object (of this operation) is still on its way to Cognito."""
    qs = PendingChange.objects.filter(
        pool=pool, object_type=object_type, object_key=object_key, status__in=PendingChange.ACTIVE
    )
    if operation:
        qs = qs.filter(operation=operation)
    return qs.exists()


def changes_to_resend(
    *, older_than_seconds: int = RESEND_AFTER_SECONDS, stale_applying: int | None = None
) -> list[int]:
    """Changes the sweeper must send again: pending ones whose message may be lost, and
    `applying` ones whose worker died long ago (the apply is idempotent)."""
    now = timezone.now()
    untouched = stale_applying if stale_applying is not None else stale_applying_seconds()
    stale = PendingChange.objects.filter(
        status=PendingChange.Status.APPLYING, updated_at__lt=now - timedelta(seconds=untouched)
    )
    lost = list(stale.values_list("pk", flat=True)[:5000])
    # Sent again at once: their worker is gone, no message of theirs is on its way.
    PendingChange.objects.filter(pk__in=lost, status=PendingChange.Status.APPLYING).update(
        status=PendingChange.Status.PENDING
    )
    waiting = list(
        PendingChange.objects.filter(
            status=PendingChange.Status.PENDING,
            updated_at__lt=now - timedelta(seconds=older_than_seconds),
        )
        .exclude(pk__in=lost)
        .order_by("created_at")
        .values_list("pk", flat=True)[:5000]
    )
    return lost + waiting


def bulk_jobs_to_resend(*, older_than_seconds: int = RESEND_AFTER_SECONDS) -> list[int]:
    """Bulk jobs still queued a while after they were made (a lost message, a broker that was down)."""
    return list(
        BulkJob.objects.filter(
            status=BulkJob.Status.QUEUED, created_at__lt=timezone.now() - timedelta(seconds=older_than_seconds)
        ).values_list("pk", flat=True)
    )
