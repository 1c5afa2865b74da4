"""Per-pool sync schedules: which pools are due, and the operator's interval edit (audited)."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_celery_beat.models import PeriodicTask, PeriodicTasks

from .. import audit
from ..models import UserPool

# A week: a longer interval is more likely a typo than a wish (0 switches schedules off).
MAX_INTERVAL_MINUTES = 7 * 24 * 60


def interval_minutes(pool: UserPool) -> int:
    """The pool's effective interval: its own, else COGNITO_SYNC_INTERVAL_MINUTES; 0 means off."""
    if pool.sync_interval_minutes is not None:
        return int(pool.sync_interval_minutes)
    return int(settings.COGNITO_SYNC_INTERVAL_MINUTES)


def next_due(pool: UserPool) -> datetime | None:
    """When the next scheduled pull is due (now or in the past: due); None when off."""
    minutes = interval_minutes(pool)
    if minutes <= 0:
        return None
    if pool.last_synced_at is None:
        return timezone.now()
    return pool.last_synced_at + timedelta(minutes=minutes)


def is_due(pool: UserPool, now: datetime | None = None) -> bool:
    if interval_minutes(pool) <= 0:
        return False
    if pool.last_synced_at is None:
        return True
    due = next_due(pool)
    return due is not None and due <= (now or timezone.now())


def due_pool_pks(now: datetime | None = None) -> list[int]:
    """Pools whose interval has passed since their last successful pull (or never pulled); never
    a pool marked gone from Cognito."""
    now = now or timezone.now()
    rows = (
        UserPool.objects.filter(deleted_at__isnull=True)  # gone from Cognito: nothing to pull
        .order_by("pk")
        .only("pk", "sync_interval_minutes", "last_synced_at")
    )
    return [pool.pk for pool in rows if is_due(pool, now)]


@transaction.atomic
def user_pool_set_sync_interval(*, pool: UserPool, minutes: int | None, actor: str) -> bool:
    """Set how often beat pulls the pool: minutes, None for the settings' default, 0 for never.

    Local only (nothing is sent to Cognito); audited as `schedule_changed`. Idempotent:
    returns False, writing nothing, when the interval is already that."""
    if minutes is not None and not 0 <= minutes <= MAX_INTERVAL_MINUTES:
        raise ValidationError(
            {"sync_interval_minutes": f"Enter 0 (off) to {MAX_INTERVAL_MINUTES} minutes, or leave it blank."}
        )
    before = UserPool.objects.select_for_update().values_list("sync_interval_minutes", flat=True).get(pk=pool.pk)
    if before == minutes:
        return False
    # update(), not save(): a whole-row save could overwrite a running sync's lease.
    UserPool.objects.filter(pk=pool.pk).update(sync_interval_minutes=minutes)
    pool.sync_interval_minutes = minutes
    audit.record(
        action=audit.Action.SCHEDULE_CHANGED,
        object_type="pool",
        object_id=pool.pool_id,
        object_repr=pool.name,
        pool_id=pool.pool_id,
        changes={"sync_interval_minutes": [before, minutes]},
        detail={"default_minutes": settings.COGNITO_SYNC_INTERVAL_MINUTES},
        source=audit.Source.ADMIN,
        actor=actor,
    )
    return True


def describe(pool: UserPool) -> str:
    """The schedule in words, for the admin."""
    minutes = interval_minutes(pool)
    if minutes <= 0:
        return "off (manual syncs only)"
    origin = "default" if pool.sync_interval_minutes is None else "this pool"
    text = f"every {minutes} minute{'s' if minutes != 1 else ''} ({origin})"
    due = next_due(pool)
    if pool.last_synced_at is None:
        return f"{text}; never synced, due now"
    assert due is not None
    return f"{text}; next due {due:%Y-%m-%d %H:%M} UTC"


@transaction.atomic
def periodic_tasks_set_enabled(*, task_ids: list[int], enabled: bool, actor: str) -> int:
    """Switch beat's periodic tasks (sweep-outbox, the pulls' fan-out, ...) on or off. Local only;
    one `schedule_changed` event per task that changed. Idempotent: returns how many changed."""
    changed = 0
    for task in PeriodicTask.objects.select_for_update().filter(pk__in=task_ids).order_by("pk"):
        if task.enabled == enabled:
            continue
        task.enabled = enabled
        if not enabled:
            task.last_run_at = None
        task.save(update_fields=["enabled", "last_run_at"])
        changed += 1
        audit.record(
            action=audit.Action.SCHEDULE_CHANGED,
            object_type="periodic_task",
            object_id=str(task.pk),
            object_repr=task.name,
            changes={"enabled": [not enabled, enabled]},
            detail={"task": task.task},
            source=audit.Source.ADMIN,
            actor=actor,
        )
    if changed:
        PeriodicTasks.update_changed()
    return changed
