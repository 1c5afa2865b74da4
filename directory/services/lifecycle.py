"""Deleting a user pool or an app client in Cognito, after the operator confirmed it: the call is made
inside the request (the operator sees Cognito's answer), the mirror follows once Cognito confirmed,
and the audit history stays (AuditEvent names objects by their remote ids, and a deleted pool's row
is kept, marked gone)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from .. import audit, mirror
from ..gateway import CognitoError, CognitoGateway, CognitoNotFound
from ..models import AppClient, CognitoGroup, CognitoUser, PendingChange, UserPool

PROTECTION_ACTIVE = "ACTIVE"
# Cognito's error codes, in words an operator can act on.
_DELETE_ERRORS = {
    "InvalidParameterException": "Cognito refused the deletion",
    "NotAuthorizedException": "The AWS credentials this admin runs with may not delete it",
    "AccessDeniedException": "The AWS credentials this admin runs with may not delete it",
    "TooManyRequestsException": "Cognito is throttling requests; try again in a moment",
    "LocalBudgetExhausted": "The shared request budget is exhausted; try again in a moment",
    "ConcurrentModificationException": "Someone else is changing it right now; try again in a moment",
}


class DeletionRefused(Exception):
    """The deletion was not made; `message` says why, in words (nothing was deleted in Cognito)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def deletion_error(exc: CognitoError, what: str) -> str:
    """A sentence for a Cognito error answered to a deletion."""
    if exc.code == "InvalidParameterException" and "protection" in exc.message.lower():
        return (
            f"{what} has deletion protection turned on in Cognito: turn it off in its settings first. "
            f"Nothing was deleted. ({exc.message})"
        )
    hint = _DELETE_ERRORS.get(exc.code)
    if hint:
        return f"{what} was not deleted. {hint}: {exc.message}"
    if exc.code in {"EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError"} or not exc.code:
        return f"{what} was not deleted: Cognito could not be reached ({exc.message})."
    return f"{what} was not deleted: {exc}"


@dataclass(frozen=True)
class PoolDeletionPreview:
    """What deleting a pool takes with it, and whether Cognito would allow it now."""

    users: int
    groups: int
    app_clients: list[AppClient]
    # Read from Cognito now (DescribeUserPool); None when Cognito could not be read.
    protection: str | None
    estimated_users: int | None
    problem: str = ""

    @property
    def protected(self) -> bool:
        return self.protection == PROTECTION_ACTIVE


def pool_deletion_preview(*, pool: UserPool) -> PoolDeletionPreview:
    """The mirror's counts and Cognito's deletion protection as it is now. Sends one DescribeUserPool;
    changes nothing."""
    clients = list(AppClient.objects.filter(pool=pool).order_by("name"))
    users = CognitoUser.objects.filter(pool=pool).count()
    groups = CognitoGroup.objects.filter(pool=pool).count()
    try:
        described = CognitoGateway(pool.region, purpose="interactive").describe_user_pool(pool.pool_id)
    except CognitoNotFound:
        return PoolDeletionPreview(users, groups, clients, None, None, "Cognito has no such pool any more.")
    except CognitoError as exc:
        return PoolDeletionPreview(users, groups, clients, None, None, f"Cognito could not be read: {exc}")
    return PoolDeletionPreview(
        users,
        groups,
        clients,
        described.get("DeletionProtection") or "INACTIVE",
        described.get("EstimatedNumberOfUsers"),
    )


def user_pool_delete(*, pool: UserPool, confirm_name: str, actor: str) -> dict[str, Any]:
    """Delete a pool in Cognito (DeleteUserPool), then mark its mirror row gone and remove its users,
    groups and clients from the mirror; audited `deleted` by the operator with what went.

    Refused (DeletionRefused, nothing sent) when `confirm_name` is not the pool's name, when the pool
    is already gone, or when DescribeUserPool says deletion protection is ACTIVE now, whatever the
    mirror says. A pool Cognito no longer has is marked gone (idempotent). Returns what was removed."""
    if confirm_name != pool.name:
        raise DeletionRefused(f"Type the pool's name, {pool.name}, exactly to confirm.")
    if pool.is_gone:
        raise DeletionRefused(f"{pool.name} is already gone from Cognito.")
    gateway = CognitoGateway(pool.region, purpose="interactive")
    already_gone = False
    try:
        described = gateway.describe_user_pool(pool.pool_id)
        if (described.get("DeletionProtection") or "") == PROTECTION_ACTIVE:
            raise DeletionRefused(
                f"{pool.name} has deletion protection ACTIVE in Cognito: turn it off on the pool's "
                f"settings page first (Deletion protection: INACTIVE). Nothing was deleted."
            )
        gateway.delete_user_pool(pool.pool_id)
    except CognitoNotFound:
        already_gone = True
    except CognitoError as exc:
        raise DeletionRefused(deletion_error(exc, f"Pool {pool.name}")) from exc
    with transaction.atomic():
        removed = mirror.pool_mark_gone(pool, reason=f"Deleted here by {actor}", when=timezone.now())
        audit.record(
            action=audit.Action.DELETED,
            object_type="pool",
            object_id=pool.pool_id,
            object_repr=pool.name,
            pool_id=pool.pool_id,
            detail={"api": "DeleteUserPool", "removed": removed, "already_gone": already_gone},
            source=audit.Source.ADMIN,
            actor=actor,
        )
    return removed


def app_client_delete(*, client: AppClient, actor: str) -> None:
    """Delete an app client in Cognito (DeleteUserPoolClient), then its mirror row; audited `deleted`
    by the operator. Apps that sign in through it stop working. A client Cognito no longer has is
    removed from the mirror all the same (idempotent). Refused (DeletionRefused) on a Cognito error."""
    pool = client.pool
    already_gone = False
    try:
        CognitoGateway(pool.region, purpose="interactive").delete_user_pool_client(pool.pool_id, client.client_id)
    except CognitoNotFound:
        already_gone = True
    except CognitoError as exc:
        raise DeletionRefused(deletion_error(exc, f"App client {client.name}")) from exc
    with transaction.atomic():
        failed = PendingChange.objects.filter(
            pool=pool, object_type="app_client", object_key=client.client_id, status__in=PendingChange.ACTIVE
        ).update(status=PendingChange.Status.FAILED, last_error="The app client was deleted.")
        AppClient.objects.filter(pk=client.pk).delete()
        audit.record(
            action=audit.Action.DELETED,
            object_type="app_client",
            object_id=client.client_id,
            object_repr=client.name,
            pool_id=pool.pool_id,
            detail={
                "api": "DeleteUserPoolClient",
                "had_secret": client.has_secret,
                "pending_changes_failed": failed,
                "already_gone": already_gone,
            },
            source=audit.Source.ADMIN,
            actor=actor,
        )
