"""Resend a user's pending code or invitation: inside the request, or queued through the outbox
(bulk action). Which call is made, and how Cognito's refusals read, is in delivery.py."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..delivery import ResendPlan, resend_code_error, resend_code_plan, resend_code_send
from ..gateway import CognitoError, CognitoGateway
from ..models import BulkJob, CognitoUser, PendingChange
from ..outbox import has_active_change, request_change
from ..selectors import resend_code_recent

RESEND_OPERATION = PendingChange.Operation.USER_RESEND_CODE
# Cognito has its own per-user limit (LimitExceededException); this local one stops an operator
# from burning through it, and through the default e-mail quota, by clicking again and again.
RESEND_LIMIT_PER_HOUR = 5


def resend_code_check(*, user: CognitoUser) -> ResendPlan:
    """The plan for this user, refused (ValidationError) for a state without a code or past the local limit."""
    plan = resend_code_plan(
        pool=user.pool, username=user.username, status=user.status, email=user.email, phone_number=user.phone_number
    )
    recent = resend_code_recent(user=user)
    if recent >= RESEND_LIMIT_PER_HOUR:
        raise ValidationError(
            {"status": [f"{user.username}: {recent} codes or invitations were already sent in the last hour "
                        f"(limit {RESEND_LIMIT_PER_HOUR} per user per hour); try again later."]}
        )
    return plan


def cognito_user_resend_code(
    *,
    user: CognitoUser,
    actor: str,
    source: str = audit.Source.ADMIN,
    gateway: CognitoGateway | None = None,
) -> dict[str, Any]:
    """Send a user's pending code again, inside the request: AdminCreateUser MessageAction=RESEND
    (a new temporary password and invitation) for FORCE_CHANGE_PASSWORD, ResendConfirmationCode for
    UNCONFIRMED; refused (ValidationError) for other states and past RESEND_LIMIT_PER_HOUR. Audited
    (`resend_code`, with Cognito's delivery details, or the error). Not idempotent: each call sends."""
    gw = gateway or CognitoGateway(user.pool.region, purpose="interactive")
    event = {
        "object_type": "user",
        "object_id": user.username,
        "object_repr": user.email,
        "pool_id": user.pool.pool_id,
        "source": source,
        "actor": actor,
    }
    failure: ValidationError | None = None
    # One resend of a user at a time: the check, the call and its audit event happen under the
    # user's row lock, so simultaneous clicks cannot all pass the limit before any is recorded.
    with transaction.atomic():
        _lock(user)
        plan = resend_code_check(user=user)
        try:
            result = resend_code_send(gateway=gw, pool=user.pool, username=user.username, plan=plan)
        except CognitoError as exc:
            message = resend_code_error(exc)
            audit.record(
                action=audit.Action.RESEND_CODE, outcome=audit.Outcome.FAILED,
                detail={"api": plan.api, "error": message, "code": exc.code}, **event,
            )
            failure = ValidationError({"status": [f"Resend to {user.username} failed: {message}."]})
            failure.__cause__ = exc
        else:
            audit.record(action=audit.Action.RESEND_CODE, outcome=audit.Outcome.OK, detail=result, **event)
    if failure is not None:
        raise failure  # after the commit: the failed attempt stays in the audit log
    return result


def _lock(user: CognitoUser) -> None:
    """Take the user's row lock for the rest of the transaction. (SQLite has no row locks: there
    every transaction starts IMMEDIATE, holding the database's write lock until it ends.)"""
    CognitoUser.objects.select_for_update().filter(pk=user.pk).exists()


@transaction.atomic
def cognito_user_resend_code_request(
    *, user: CognitoUser, actor: str, source: str = audit.Source.ADMIN, job: BulkJob | None = None
) -> PendingChange | None:
    """Queue a resend through the outbox (bulk action): the worker re-reads the user's status in
    Cognito, makes the call cognito_user_resend_code would and audits `applied` with the delivery
    details. Refused like cognito_user_resend_code; None when one is already queued for the user."""
    _lock(user)
    resend_code_check(user=user)
    if has_active_change(pool=user.pool, object_type="user", object_key=user.username, operation=RESEND_OPERATION):
        return None
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=RESEND_OPERATION,
        before={"code_sent": False},
        after={"code_sent": True},
        actor=actor,
        base_version=user.content_hash,
        source=source,
        job=job,
        object_repr=user.email,
    )
