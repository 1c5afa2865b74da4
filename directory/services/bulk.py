"""Bulk actions on a selection of users: one BulkJob per pool, expanded into pending changes by a
worker (never inside the request), one per-user service call each."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..models import BulkJob, CognitoGroup, CognitoUser, PendingChange
from ..outbox import enqueue_bulk_job
from .resend import cognito_user_resend_code_request
from .users import (
    cognito_user_confirm_sign_up,
    cognito_user_delete,
    cognito_user_mark_verified,
    cognito_user_reset_password,
    cognito_user_set_enabled,
    cognito_user_set_group,
)

Operation = BulkJob.Operation
# (user, actor, job, params) -> the change requested, or None when there was nothing to do.
PerUser = Callable[[CognitoUser, str, BulkJob, dict[str, Any]], PendingChange | None]


def _group(params: dict[str, Any]) -> CognitoGroup:
    return CognitoGroup.objects.get(pk=params["group"])


BULK_OPERATIONS: dict[str, PerUser] = {
    Operation.ENABLE: lambda user, actor, job, _: cognito_user_set_enabled(
        user=user, enabled=True, actor=actor, job=job
    ),
    Operation.DISABLE: lambda user, actor, job, _: cognito_user_set_enabled(
        user=user, enabled=False, actor=actor, job=job
    ),
    Operation.RESET_PASSWORD: lambda user, actor, job, _: cognito_user_reset_password(user=user, actor=actor, job=job),
    Operation.CONFIRM_SIGN_UP: lambda user, actor, job, _: cognito_user_confirm_sign_up(
        user=user, actor=actor, job=job
    ),
    Operation.MARK_EMAIL_VERIFIED: lambda user, actor, job, _: cognito_user_mark_verified(
        user=user, attribute="email", actor=actor, job=job
    ),
    Operation.DELETE: lambda user, actor, job, _: cognito_user_delete(user=user, actor=actor, job=job),
    Operation.ADD_TO_GROUP: lambda user, actor, job, params: cognito_user_set_group(
        user=user, group=_group(params), member=True, actor=actor, job=job
    ),
    Operation.REMOVE_FROM_GROUP: lambda user, actor, job, params: cognito_user_set_group(
        user=user, group=_group(params), member=False, actor=actor, job=job
    ),
    Operation.RESEND_CODE: lambda user, actor, job, _: cognito_user_resend_code_request(
        user=user, actor=actor, job=job
    ),
}


def bulk_job_start(
    *, users: list[CognitoUser] | Any, operation: str, actor: str, params: dict[str, Any] | None = None
) -> list[BulkJob]:
    """Queue a bulk action on a selection of users: one BulkJob per pool, expanded into pending
    changes by a worker (never inside the request)."""
    if operation not in BULK_OPERATIONS:
        raise ValidationError({"operation": [f"Unknown bulk operation {operation}."]})
    by_pool: dict[int, list[int]] = {}
    for pool_id, user_id in (
        users.values_list("pool_id", "id") if hasattr(users, "values_list") else ((u.pool_id, u.pk) for u in users)
    ):
        by_pool.setdefault(pool_id, []).append(user_id)
    jobs = []

    with transaction.atomic():
        for pool_id, ids in by_pool.items():
            job = BulkJob.objects.create(
                pool_id=pool_id, operation=operation, params=params or {}, user_ids=ids, total=len(ids), actor=actor
            )
            audit.record(
                action=audit.Action.BULK_REQUESTED,
                object_type="bulk_job",
                object_id=str(job.pk),
                pool_id=job.pool.pool_id,
                detail={"operation": operation, "users": len(ids), **(params or {})},
                source=audit.Source.ADMIN,
                actor=actor,
                outcome=audit.Outcome.PENDING,
            )
            jobs.append(job)
            transaction.on_commit(lambda pk=job.pk: enqueue_bulk_job(pk))
    return jobs


def bulk_job_run(*, job: BulkJob) -> BulkJob:
    """Expand a bulk job into pending changes, recording progress; safe to run twice (each
    per-user service skips what is already requested or already true)."""
    BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.QUEUED).update(status=BulkJob.Status.RUNNING)
    operation = BULK_OPERATIONS[job.operation]
    ids = job.user_ids[job.processed :]
    errors: list[str] = []
    for start in range(0, len(ids), 100):
        chunk = ids[start : start + 100]
        skipped = 0
        for user in CognitoUser.objects.filter(pk__in=chunk).select_related("pool"):
            try:
                if operation(user, job.actor, job, job.params) is None:
                    skipped += 1
            except ValidationError as exc:
                skipped += 1
                errors.append(f"{user.username}: {'; '.join(exc.messages)}")
        BulkJob.objects.filter(pk=job.pk).update(
            processed=job.processed + start + len(chunk), skipped=job.skipped + skipped
        )
        job.skipped += skipped
    BulkJob.objects.filter(pk=job.pk).update(
        status=BulkJob.Status.DONE, finished_at=timezone.now(), processed=job.total, error="\n".join(errors[:200])
    )
    job.refresh_from_db()
    return job
