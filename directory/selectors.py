"""Read-only queries the admin shows: resends asked for, e-mails sent today, the latest code delivery,
the audit chain's latest verification."""

from __future__ import annotations

from datetime import UTC, timedelta

from django.db.models import Q, QuerySet
from django.utils import timezone

from .models import AuditEvent, AuditVerification, CognitoUser, PendingChange, UserPool

Action = AuditEvent.Action
RESEND_OPERATION = PendingChange.Operation.USER_RESEND_CODE
TEST_USER_OPERATION = PendingChange.Operation.USER_CREATE_TEST_USER


def resend_events(pool: UserPool) -> QuerySet[AuditEvent]:
    """A pool's audit events of resends: sent in a request, or queued for the worker."""
    return AuditEvent.objects.filter(pool_id=pool.pool_id, object_type="user").filter(
        Q(action=Action.RESEND_CODE) | Q(action=Action.REQUESTED, detail__operation=RESEND_OPERATION)
    )


def resend_code_recent(*, user: CognitoUser) -> int:
    """Resends asked for this user in the last hour (sent here or queued), from the audit log."""
    since = timezone.now() - timedelta(hours=1)
    return resend_events(user.pool).filter(object_id=user.username, created_at__gte=since).count()


def uses_cognito_default_email(pool: UserPool) -> bool:
    return (pool.email_configuration or {}).get("EmailSendingAccount") in (None, "", "COGNITO_DEFAULT")


def messages_sent_today(pool: UserPool) -> int:
    """E-mails this project made Cognito send for the pool today (UTC): resends and invitations, from the audit log."""
    start = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    email = "EMAIL"
    return (
        AuditEvent.objects.filter(pool_id=pool.pool_id, object_type="user", created_at__gte=start, outcome="ok")
        .filter(
            Q(action=Action.RESEND_CODE, detail__delivery__DeliveryMedium=email)
            | Q(action=Action.APPLIED, detail__operation=RESEND_OPERATION, detail__delivery__DeliveryMedium=email)
            # Test users created here with an e-mailed invitation (services/test_users.py).
            | Q(action=Action.CREATED, detail__operation=TEST_USER_OPERATION, detail__delivery=email)
        )
        .count()
    )


def default_email_warning(pool: UserPool) -> str | None:
    """A warning for pools that send through Cognito's default e-mail (a few dozen messages a day per account)."""
    if not uses_cognito_default_email(pool):
        return None
    return (
        f"{pool.name or pool.pool_id} sends e-mail through Cognito's default e-mail (EmailSendingAccount "
        f"COGNITO_DEFAULT), which allows only a few dozen messages a day per account: "
        f"{messages_sent_today(pool)} already sent today for this pool from here."
    )


def latest_code_delivery(*, user: CognitoUser) -> AuditEvent | None:
    """The newest audit event of a resend for this user that reached Cognito (sent or failed)."""
    return (
        AuditEvent.objects.filter(pool_id=user.pool.pool_id, object_type="user", object_id=user.username)
        .filter(
            Q(action=Action.RESEND_CODE)
            | Q(action__in=[Action.APPLIED, Action.FAILED], detail__operation=RESEND_OPERATION)
        )
        .order_by("-created_at", "-id")
        .first()
    )


def audit_chain_alarm() -> AuditVerification | None:
    """The latest verification of the audit chain if it found the chain broken, else None."""
    latest = AuditVerification.objects.order_by("-id").first()
    return latest if latest is not None and not latest.ok else None
