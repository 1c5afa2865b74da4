"""The outbox's own administration: send a failed or conflicting change again, or discard one."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..mirror import revert_mirror
from ..models import PendingChange
from ..outbox import enqueue_change


@transaction.atomic
def pending_change_retry(*, change: PendingChange, actor: str) -> PendingChange:
    """Send a failed or conflicting change again, based on what Cognito holds now. Audited."""
    if change.status not in {PendingChange.Status.FAILED, PendingChange.Status.CONFLICT}:
        raise ValidationError(
            {"status": [f"Only failed or conflicting changes can be retried (this one is {change.status})."]}
        )
    previous = change.status
    if change.status == PendingChange.Status.CONFLICT and change.remote_values:
        change.before = {k: change.remote_values.get(k) for k in change.fields}
    change.status = PendingChange.Status.PENDING
    change.last_error = ""
    change.save()
    audit.record(
        action=audit.Action.RETRIED,
        object_type=change.object_type,
        object_id=change.object_key,
        pool_id=change.pool.pool_id,
        changes={"status": [previous, "pending"]},
        detail={"change": change.pk, "operation": change.operation},
        source=audit.Source.ADMIN,
        actor=actor,
        outcome=audit.Outcome.PENDING,
        correlation_id=str(change.correlation_id),
    )
    transaction.on_commit(lambda: enqueue_change(change.pk))
    return change


@transaction.atomic
def pending_change_discard(*, change: PendingChange, actor: str) -> PendingChange:
    """Give up a change that has not been applied; the mirror goes back to its `before`
    values (the next pull brings whatever Cognito holds). Audited."""
    change = PendingChange.objects.select_for_update().get(pk=change.pk)
    if change.status in {PendingChange.Status.APPLIED, PendingChange.Status.DISCARDED, PendingChange.Status.APPLYING}:
        raise ValidationError({"status": [f"A change that is {change.status} cannot be discarded."]})
    previous = change.status
    change.status = PendingChange.Status.DISCARDED
    change.save()
    if previous == PendingChange.Status.PENDING:
        # Failed and conflicting changes already left the mirror at Cognito's values.
        revert_mirror(change)
    audit.record(
        action=audit.Action.DISCARDED,
        object_type=change.object_type,
        object_id=change.object_key,
        pool_id=change.pool.pool_id,
        changes={"status": [previous, "discarded"]},
        detail={"change": change.pk, "operation": change.operation},
        source=audit.Source.ADMIN,
        actor=actor,
        correlation_id=str(change.correlation_id),
    )
    return change
