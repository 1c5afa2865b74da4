"""Every write an operator can make: validate, write the mirror, the outbox row and the audit
event in one transaction, then enqueue the push once the transaction has committed."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from . import audit
from .gateway import CognitoError, CognitoGateway, secret_hash
from .mapping import USER_TYPED_ATTRIBUTES
from .models import (
    AppClient,
    AuditEvent,
    BulkJob,
    CognitoGroup,
    CognitoUser,
    GroupMembership,
    PendingChange,
    UserPool,
    UserStatus,
)
from .sync.push import POOL_SETTING_FIELDS
from .validation import validate_group, validate_urls, validate_user_attributes

logger = logging.getLogger(__name__)

_BOOL_ATTRS = {"email_verified", "phone_number_verified"}


def enqueue_change(change_pk: int) -> None:
    """Hand a change to the workers. If the broker is down the change stays `pending` in
    the outbox and the beat sweeper sends it again later: nothing is lost."""
    from .tasks import apply_change

    try:
        apply_change.delay(change_pk)
    except Exception as exc:  # noqa: BLE001 - any broker failure: the sweeper retries
        logger.warning("could not enqueue change %s (%s); the outbox sweeper will retry it", change_pk, exc)


def _request(
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
        action="requested",
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
    qs = PendingChange.objects.filter(
        pool=pool, object_type=object_type, object_key=object_key, status__in=PendingChange.ACTIVE
    )
    if operation:
        qs = qs.filter(operation=operation)
    return qs.exists()


def _user_field_value(user: CognitoUser, field: str) -> Any:
    if field.startswith("attributes."):
        return user.attributes.get(field.split(".", 1)[1])
    if field.startswith("groups."):
        return user.memberships.filter(group__name=field.split(".", 1)[1]).exists()
    if field == "exists":
        return True
    return getattr(user, field)


def _set_user_attribute(user: CognitoUser, name: str, value: str | None) -> None:
    attributes = dict(user.attributes)
    if value is None:
        attributes.pop(name, None)
    else:
        attributes[name] = value
    user.attributes = attributes
    if name in USER_TYPED_ATTRIBUTES:
        setattr(user, USER_TYPED_ATTRIBUTES[name], value or "")
    if name in _BOOL_ATTRS:
        setattr(user, name, value == "true")


# Users -------------------------------------------------------------------------------------------


@transaction.atomic
def cognito_user_update_attributes(
    *, user: CognitoUser, attributes: dict[str, str], actor: str, source: str = audit.Source.ADMIN
) -> PendingChange | None:
    """Change a user's attributes. Sends AdminUpdateUserAttributes (and
    AdminDeleteUserAttributes for values cleared). Idempotent: re-applying sets the same values.
    Returns None when nothing differs from the mirror."""
    cleaned = validate_user_attributes(user.pool, attributes)
    after: dict[str, Any] = {}
    before: dict[str, Any] = {}
    for name, value in cleaned.items():
        new = value if value != "" else None
        if user.attributes.get(name) == new:
            continue
        before[f"attributes.{name}"] = user.attributes.get(name)
        after[f"attributes.{name}"] = new
    if not after:
        return None
    base = user.content_hash
    for field, value in after.items():
        _set_user_attribute(user, field.split(".", 1)[1], value)
    user.save()
    return _request(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation="user.update_attributes",
        before=before,
        after=after,
        actor=actor,
        base_version=base,
        source=source,
        object_repr=user.email,
    )


@transaction.atomic
def cognito_user_set_enabled(
    *, user: CognitoUser, enabled: bool, actor: str, source: str = audit.Source.ADMIN, job: BulkJob | None = None
) -> PendingChange | None:
    """Enable or disable a user. Sends AdminEnableUser / AdminDisableUser. Idempotent."""
    if user.enabled == enabled:
        return None
    base = user.content_hash
    user.enabled = enabled
    user.save(update_fields=["enabled"])
    return _request(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation="user.set_enabled",
        before={"enabled": not enabled},
        after={"enabled": enabled},
        actor=actor,
        base_version=base,
        source=source,
        job=job,
        object_repr=user.email,
    )


@transaction.atomic
def cognito_user_delete(
    *, user: CognitoUser, actor: str, source: str = audit.Source.ADMIN, job: BulkJob | None = None
) -> PendingChange | None:
    """Delete a user in Cognito (AdminDeleteUser). The mirror row goes when Cognito confirms.
    Idempotent: a user already gone counts as deleted."""
    if has_active_change(pool=user.pool, object_type="user", object_key=user.username, operation="user.delete"):
        return None
    return _request(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation="user.delete",
        before={"exists": True},
        after={"exists": False},
        actor=actor,
        base_version=user.content_hash,
        source=source,
        job=job,
        object_repr=user.email,
        payload={"snapshot": {"email": user.email, "sub": user.sub, "status": user.status}},
    )


@transaction.atomic
def cognito_user_reset_password(
    *, user: CognitoUser, actor: str, source: str = audit.Source.ADMIN, job: BulkJob | None = None
) -> PendingChange | None:
    """Reset a user's password (AdminResetUserPassword): Cognito sends a code and the user
    must set a new password. Refused for a user already RESET_REQUIRED (a second reset would
    send another code); the worker's apply is idempotent (it skips a user already reset)."""
    if user.status == UserStatus.RESET_REQUIRED:
        raise ValidationError({"status": [f"{user.username} must already reset the password (RESET_REQUIRED)."]})
    if user.status in {UserStatus.UNCONFIRMED, UserStatus.EXTERNAL_PROVIDER}:
        raise ValidationError(
            {"status": [f"{user.username} is {user.status}: Cognito can only reset confirmed users' passwords."]}
        )
    before = user.status
    return _request(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation="user.reset_password",
        before={"status": before},
        after={"status": UserStatus.RESET_REQUIRED},
        actor=actor,
        base_version=user.content_hash,
        source=source,
        job=job,
        object_repr=user.email,
    )


@transaction.atomic
def cognito_user_confirm_sign_up(
    *, user: CognitoUser, actor: str, source: str = audit.Source.ADMIN, job: BulkJob | None = None
) -> PendingChange | None:
    """Confirm an UNCONFIRMED user's sign-up (AdminConfirmSignUp). Idempotent."""
    if user.status != UserStatus.UNCONFIRMED:
        raise ValidationError(
            {"status": [f"{user.username} is {user.status}; only UNCONFIRMED users can be confirmed."]}
        )
    base = user.content_hash
    user.status = UserStatus.CONFIRMED
    user.save(update_fields=["status"])
    return _request(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation="user.confirm_sign_up",
        before={"status": UserStatus.UNCONFIRMED},
        after={"status": UserStatus.CONFIRMED},
        actor=actor,
        base_version=base,
        source=source,
        job=job,
        object_repr=user.email,
    )


@transaction.atomic
def cognito_user_mark_verified(
    *, user: CognitoUser, attribute: str, actor: str, source: str = audit.Source.ADMIN, job: BulkJob | None = None
) -> PendingChange | None:
    """Mark a user's e-mail or phone verified (AdminUpdateUserAttributes `<attr>_verified=true`)."""
    if attribute not in {"email", "phone_number"}:
        raise ValidationError({"attribute": ["Only email or phone_number can be marked verified."]})
    if not user.attributes.get(attribute):
        raise ValidationError({attribute: [f"{user.username} has no {attribute} to verify."]})
    field = f"attributes.{attribute}_verified"
    if user.attributes.get(f"{attribute}_verified") == "true":
        return None
    before = user.attributes.get(f"{attribute}_verified")
    base = user.content_hash
    _set_user_attribute(user, f"{attribute}_verified", "true")
    user.save()
    return _request(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation="user.update_attributes",
        before={field: before},
        after={field: "true"},
        actor=actor,
        base_version=base,
        source=source,
        job=job,
        object_repr=user.email,
    )


@transaction.atomic
def cognito_user_set_group(
    *,
    user: CognitoUser,
    group: CognitoGroup,
    member: bool,
    actor: str,
    source: str = audit.Source.ADMIN,
    job: BulkJob | None = None,
) -> PendingChange | None:
    """Add a user to a group or remove them (AdminAddUserToGroup / AdminRemoveUserFromGroup). Idempotent."""
    if group.pool_id != user.pool_id:
        raise ValidationError({"group": [f"Group {group.name} belongs to another pool."]})
    current = GroupMembership.objects.filter(group=group, user=user)
    if current.exists() == member:
        return None
    if member:
        GroupMembership.objects.create(group=group, user=user)
    else:
        current.delete()
    field = f"groups.{group.name}"
    return _request(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation="user.add_to_group" if member else "user.remove_from_group",
        before={field: not member},
        after={field: member},
        actor=actor,
        base_version=user.content_hash,
        source=source,
        job=job,
        payload={"group": group.name},
        object_repr=user.email,
    )


# Resend code ---------------------------------------------------------------------------------------
# (AdminCreateUser RESEND for FORCE_CHANGE_PASSWORD users, ResendConfirmationCode for UNCONFIRMED ones.)

# Cognito has its own per-user limit (LimitExceededException); this local one stops an operator
# from burning through it, and through the default e-mail quota, by clicking again and again.
RESEND_LIMIT_PER_HOUR = 5
RESEND_OPERATION = "user.resend_code"
RESEND_REFUSALS = {
    UserStatus.CONFIRMED: "CONFIRMED users have no pending code; use Reset password",
    UserStatus.RESET_REQUIRED: (
        "RESET_REQUIRED users get their code from the forgot-password flow at sign-in; use Reset password to "
        "send a new one"
    ),
    UserStatus.EXTERNAL_PROVIDER: "EXTERNAL_PROVIDER users sign in through their identity provider; Cognito "
    "sends them no code",
}
_RESEND_ERRORS = {
    "LimitExceededException": "Cognito's limit of codes for this user is reached (LimitExceededException); "
    "wait before trying again",
    "CodeDeliveryFailureException": "Cognito could not deliver the message (CodeDeliveryFailureException); "
    "check the user's e-mail / phone and the pool's e-mail and SMS configuration",
    "UnsupportedUserStateException": "Cognito says the user's state does not allow a resend "
    "(UnsupportedUserStateException); sync the pool to see the current status",
    "UserNotFoundException": "the user no longer exists in Cognito; sync the pool",
    "NotAuthorizedException": "Cognito refused the app client (NotAuthorizedException)",
}


@dataclass(frozen=True)
class ResendPlan:
    """Which Cognito call a resend makes for a user, and through what."""

    api: str  # "AdminCreateUser" (MessageAction=RESEND) or "ResendConfirmationCode"
    medium: str = ""  # RESEND: the DesiredDeliveryMedium
    client_id: str = ""  # ResendConfirmationCode: the app client
    client_has_secret: bool = False


def resend_code_plan(*, pool: UserPool, username: str, status: str, email: str, phone_number: str) -> ResendPlan:
    """The call for a user in this state, or a ValidationError that says why there is none."""
    if status == UserStatus.FORCE_CHANGE_PASSWORD:
        if not email and not phone_number:
            raise ValidationError(
                {"status": [f"{username} has no e-mail or phone number to send the invitation to."]}
            )
        return ResendPlan(api="AdminCreateUser", medium="EMAIL" if email else "SMS")
    if status == UserStatus.UNCONFIRMED:
        client = client_for_user_api(pool)
        if client is None:
            raise ValidationError(
                {"status": [f"{username}: the pool has no app client to call ResendConfirmationCode through."]}
            )
        return ResendPlan(api="ResendConfirmationCode", client_id=client.client_id, client_has_secret=client.has_secret)
    reason = RESEND_REFUSALS.get(status, f"{status} users have no pending code or invitation")
    raise ValidationError({"status": [f"{username} is {status}: {reason}."]})


def resend_events(pool: UserPool) -> QuerySet[AuditEvent]:
    """A pool's audit events of resends: sent in a request, or queued for the worker."""
    return AuditEvent.objects.filter(pool_id=pool.pool_id, object_type="user").filter(
        Q(action="resend_code") | Q(action="requested", detail__operation=RESEND_OPERATION)
    )


def resend_code_recent(*, user: CognitoUser) -> int:
    """Resends asked for this user in the last hour (sent here or queued), from the audit log."""
    since = timezone.now() - timedelta(hours=1)
    return resend_events(user.pool).filter(object_id=user.username, created_at__gte=since).count()


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


def uses_cognito_default_email(pool: UserPool) -> bool:
    return (pool.email_configuration or {}).get("EmailSendingAccount") in (None, "", "COGNITO_DEFAULT")


def messages_sent_today(pool: UserPool) -> int:
    """E-mails this project made Cognito send for the pool today (UTC): resends and invitations, from the audit log."""
    start = timezone.now().astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    email = "EMAIL"
    return (
        AuditEvent.objects.filter(pool_id=pool.pool_id, object_type="user", created_at__gte=start, outcome="ok")
        .filter(
            Q(action="resend_code", detail__delivery__DeliveryMedium=email)
            | Q(action="applied", detail__operation=RESEND_OPERATION, detail__delivery__DeliveryMedium=email)
            # Test users created here with an e-mailed invitation (directory/testusers.py).
            | Q(action="created", detail__operation="user.create_test_user", detail__delivery=email)
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


def resend_code_error(exc: CognitoError) -> str:
    """A sentence an operator can act on, for a Cognito error answered to a resend."""
    hint = _RESEND_ERRORS.get(exc.code)
    return f"{hint}: {exc.message}" if hint else str(exc)


def resend_code_send(*, gateway: CognitoGateway, pool: UserPool, username: str, plan: ResendPlan) -> dict[str, Any]:
    """Make the call a plan names; returns what to audit: the API and the delivery details (medium,
    masked destination). A client secret is read from Cognito here, used for the SecretHash and dropped."""
    if plan.api == "AdminCreateUser":
        record = gateway.admin_resend_invitation(pool.pool_id, username, mediums=[plan.medium])
        attrs = {a["Name"]: a["Value"] for a in record.get("Attributes", [])}
        attribute = "email" if plan.medium == "EMAIL" else "phone_number"
        # AdminCreateUser answers no CodeDeliveryDetails: this is what was asked for.
        delivery = {
            "DeliveryMedium": plan.medium,
            "Destination": mask_destination(attrs.get(attribute, ""), plan.medium),
            "AttributeName": attribute,
        }
        return {"api": "AdminCreateUser", "message_action": "RESEND", "delivery": delivery}
    hash_value = None
    if plan.client_has_secret:
        hash_value = secret_hash_for(gateway, pool.pool_id, plan.client_id, username)
    details = gateway.resend_confirmation_code(plan.client_id, username, secret_hash=hash_value)
    del hash_value
    delivery = {k: details[k] for k in ("DeliveryMedium", "Destination", "AttributeName") if k in details}
    return {"api": "ResendConfirmationCode", "client": plan.client_id, "delivery": delivery}


def client_for_user_api(pool: UserPool) -> AppClient | None:
    """The app client to call a client API (ResendConfirmationCode, SignUp) through. Any client of
    the pool may; one without a secret needs no SecretHash, so no secret has to be read at all."""
    return AppClient.objects.filter(pool=pool).order_by("has_secret", "name", "client_id").first()


def secret_hash_for(gateway: CognitoGateway, pool_id: str, client_id: str, username: str) -> str:
    """The SecretHash for a client with a secret. The secret lives only in this frame: read from
    Cognito, hashed, gone when the function returns."""
    secret = gateway.client_secret(pool_id, client_id)
    if secret is None:
        raise CognitoError(f"app client {client_id} has no secret any more; sync the pool", code="NoSecret")
    return secret_hash(secret, username, client_id)


def mask_destination(value: str, medium: str) -> str:
    """Cognito's masked destination: "t***@e***.com", "+*******0100"."""
    if not value:
        return ""
    if medium == "EMAIL":
        local, _, domain = value.partition("@")
        name, dot, tld = domain.rpartition(".")
        if not name:
            name, dot, tld = domain, "", ""
        return f"{local[:1]}***@{name[:1]}***{dot}{tld}"
    return "+" + "*" * max(len(value) - 5, 0) + value[-4:]


def describe_delivery(result: dict[str, Any]) -> str:
    delivery = result.get("delivery") or {}
    medium, destination = delivery.get("DeliveryMedium", "?"), delivery.get("Destination", "")
    return f"{medium} to {destination}" if destination else medium


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
    plan = resend_code_check(user=user)
    gw = gateway or CognitoGateway(user.pool.region, purpose="interactive")
    event = {
        "object_type": "user",
        "object_id": user.username,
        "object_repr": user.email,
        "pool_id": user.pool.pool_id,
        "source": source,
        "actor": actor,
    }
    try:
        result = resend_code_send(gateway=gw, pool=user.pool, username=user.username, plan=plan)
    except CognitoError as exc:
        message = resend_code_error(exc)
        with transaction.atomic():
            audit.record(
                action="resend_code", outcome=audit.Outcome.FAILED,
                detail={"api": plan.api, "error": message, "code": exc.code}, **event,
            )
        raise ValidationError({"status": [f"Resend to {user.username} failed: {message}."]}) from exc
    with transaction.atomic():
        audit.record(action="resend_code", outcome=audit.Outcome.OK, detail=result, **event)
    return result


@transaction.atomic
def cognito_user_resend_code_request(
    *, user: CognitoUser, actor: str, source: str = audit.Source.ADMIN, job: BulkJob | None = None
) -> PendingChange | None:
    """Queue a resend through the outbox (bulk action): the worker re-reads the user's status in
    Cognito, makes the call cognito_user_resend_code would and audits `applied` with the delivery
    details. Refused like cognito_user_resend_code; None when one is already queued for the user."""
    resend_code_check(user=user)
    if has_active_change(pool=user.pool, object_type="user", object_key=user.username, operation=RESEND_OPERATION):
        return None
    return _request(
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


def latest_code_delivery(*, user: CognitoUser) -> AuditEvent | None:
    """The newest audit event of a resend for this user that reached Cognito (sent or failed)."""
    return (
        AuditEvent.objects.filter(pool_id=user.pool.pool_id, object_type="user", object_id=user.username)
        .filter(Q(action="resend_code") | Q(action__in=["applied", "failed"], detail__operation=RESEND_OPERATION))
        .order_by("-created_at", "-id")
        .first()
    )


# Groups ------------------------------------------------------------------------------------------

_GROUP_FIELDS = ("description", "precedence", "role_arn")


@transaction.atomic
def cognito_group_create(
    *,
    pool: UserPool,
    name: str,
    description: str = "",
    precedence: int | None = None,
    role_arn: str = "",
    actor: str,
    source: str = audit.Source.ADMIN,
) -> PendingChange:
    """Create a group (CreateGroup). Idempotent: an identical group already there counts as created."""
    validate_group(name=name, description=description, precedence=precedence, role_arn=role_arn)
    if CognitoGroup.objects.filter(pool=pool, name=name).exists():
        raise ValidationError({"name": [f"This pool already has a group named {name}."]})
    CognitoGroup.objects.create(pool=pool, name=name, description=description, precedence=precedence, role_arn=role_arn)
    after = {"exists": True, "description": description, "precedence": precedence, "role_arn": role_arn}
    return _request(
        pool=pool,
        object_type="group",
        object_key=name,
        operation="group.create",
        before={"exists": False, "description": None, "precedence": None, "role_arn": None},
        after=after,
        actor=actor,
        source=source,
    )


@transaction.atomic
def cognito_group_update(
    *,
    group: CognitoGroup,
    description: str,
    precedence: int | None,
    role_arn: str = "",
    actor: str,
    source: str = audit.Source.ADMIN,
) -> PendingChange | None:
    """Change a group's description, precedence or role (UpdateGroup). Idempotent."""
    validate_group(description=description, precedence=precedence, role_arn=role_arn)
    wanted = {"description": description, "precedence": precedence, "role_arn": role_arn}
    before = {k: getattr(group, k) for k in _GROUP_FIELDS if getattr(group, k) != wanted[k]}
    after = {k: wanted[k] for k in before}
    if not after:
        return None
    for key, value in after.items():
        setattr(group, key, value)
    group.save()
    return _request(
        pool=group.pool,
        object_type="group",
        object_key=group.name,
        operation="group.update",
        before=before,
        after=after,
        actor=actor,
        base_version=group.content_hash,
        source=source,
    )


@transaction.atomic
def cognito_group_delete(*, group: CognitoGroup, actor: str, source: str = audit.Source.ADMIN) -> PendingChange | None:
    """Delete a group (DeleteGroup); its memberships go with it. Idempotent."""
    if has_active_change(pool=group.pool, object_type="group", object_key=group.name, operation="group.delete"):
        return None
    return _request(
        pool=group.pool,
        object_type="group",
        object_key=group.name,
        operation="group.delete",
        before={"exists": True},
        after={"exists": False},
        actor=actor,
        base_version=group.content_hash,
        source=source,
        payload={"members": group.memberships.count()},
    )


# App clients and pools: full-config updates -------------------------------------------------------

# Model field -> UpdateUserPoolClient key, for what operators may change.
CLIENT_EDITABLE = {
    "explicit_auth_flows": "ExplicitAuthFlows",
    "refresh_token_validity": "RefreshTokenValidity",
    "access_token_validity": "AccessTokenValidity",
    "id_token_validity": "IdTokenValidity",
    "token_validity_units": "TokenValidityUnits",
    "callback_urls": "CallbackURLs",
    "logout_urls": "LogoutURLs",
    "allowed_oauth_flows": "AllowedOAuthFlows",
    "allowed_oauth_scopes": "AllowedOAuthScopes",
    "allowed_oauth_flows_user_pool_client": "AllowedOAuthFlowsUserPoolClient",
    "prevent_user_existence_errors": "PreventUserExistenceErrors",
}


def _unit_minutes(unit: str) -> int:
    return {"seconds": 1 / 60, "minutes": 1, "hours": 60, "days": 1440}.get(unit or "", 1)  # type: ignore[return-value]


def validate_client_changes(client: AppClient, changes: dict[str, Any]) -> None:
    from .gateway import service_enum

    errors: dict[str, list[str]] = {}
    unknown = set(changes) - set(CLIENT_EDITABLE)
    for name in unknown:
        errors[name] = [f"{name} cannot be changed here."]
    flows = changes.get("explicit_auth_flows")
    if flows is not None:
        allowed = service_enum("ExplicitAuthFlowsType")
        bad = [f for f in flows if f not in allowed]
        if bad:
            errors["explicit_auth_flows"] = [
                f"Unknown auth flow(s) {', '.join(bad)}; Cognito accepts {', '.join(sorted(allowed))}."
            ]
    oauth = changes.get("allowed_oauth_flows")
    if oauth is not None:
        allowed = service_enum("OAuthFlowType")
        bad = [f for f in oauth if f not in allowed]
        if bad:
            errors["allowed_oauth_flows"] = [
                f"Unknown OAuth flow(s) {', '.join(bad)}; allowed: {', '.join(sorted(allowed))}."
            ]
    pue = changes.get("prevent_user_existence_errors")
    if pue not in (None, "") and pue not in service_enum("PreventUserExistenceErrorTypes"):
        errors["prevent_user_existence_errors"] = ["Must be ENABLED or LEGACY."]
    units = {**client.token_validity_units, **(changes.get("token_validity_units") or {})}
    # Cognito's ranges: access and ID tokens 5 minutes to 1 day; refresh 60 minutes to 10 years.
    ranges = {
        "access_token_validity": ("AccessToken", 5, 1440, "hours"),
        "id_token_validity": ("IdToken", 5, 1440, "hours"),
        "refresh_token_validity": ("RefreshToken", 60, 3650 * 1440, "days"),
    }
    for field, (unit_key, low, high, default_unit) in ranges.items():
        value = changes.get(field)
        if value is None:
            continue
        unit = units.get(unit_key) or default_unit
        minutes = int(value) * _unit_minutes(unit)
        if not low <= minutes <= high:
            errors[field] = [
                f"{field} {value} {unit} is outside Cognito's range ({low} minutes to {high // 1440} days)."
            ]
    for field in ("callback_urls", "logout_urls"):
        if changes.get(field):
            try:
                validate_urls(field, changes[field])
            except ValidationError as exc:
                errors.update(exc.message_dict)
    if errors:
        raise ValidationError(errors)


@transaction.atomic
def app_client_update(
    *, client: AppClient, changes: dict[str, Any], actor: str, source: str = audit.Source.ADMIN
) -> PendingChange | None:
    """Change an app client's settings: a full-config UpdateUserPoolClient built from a fresh
    DescribeUserPoolClient, so every other setting stays as it is. Idempotent."""
    validate_client_changes(client, changes)
    before = {CLIENT_EDITABLE[k]: getattr(client, k) for k, v in changes.items() if getattr(client, k) != v}
    after = {CLIENT_EDITABLE[k]: v for k, v in changes.items() if getattr(client, k) != v}
    if not after:
        return None
    for field, value in changes.items():
        setattr(client, field, value)
    client.save()
    return _request(
        pool=client.pool,
        object_type="app_client",
        object_key=client.client_id,
        operation="client.update",
        before=before,
        after=after,
        actor=actor,
        base_version=client.content_hash,
        source=source,
        object_repr=client.name,
    )


POOL_EDITABLE = {
    "password_policy",
    "mfa_configuration",
    "allow_admin_create_user_only",
    "temporary_password_validity_days",
    "deletion_protection",
}


def validate_pool_changes(pool: UserPool, changes: dict[str, Any]) -> None:
    errors: dict[str, list[str]] = {}
    for name in set(changes) - POOL_EDITABLE:
        errors[name] = [f"{name} cannot be changed after the pool is created (or not here)."]
    policy = changes.get("password_policy")
    if policy is not None:
        length = policy.get("MinimumLength")
        if length is not None and not 6 <= int(length) <= 99:
            errors["password_policy"] = [f"Minimum length must be between 6 and 99 (got {length})."]
    days = changes.get("temporary_password_validity_days")
    if days is not None and not 0 <= int(days) <= 365:
        errors["temporary_password_validity_days"] = ["Temporary passwords are valid for 0 to 365 days."]
    mfa = changes.get("mfa_configuration")
    if mfa is not None and mfa not in {"OFF", "ON", "OPTIONAL"}:
        errors["mfa_configuration"] = ["MFA must be OFF, ON or OPTIONAL."]
    protection = changes.get("deletion_protection")
    if protection is not None and protection not in {"ACTIVE", "INACTIVE"}:
        errors["deletion_protection"] = ["Deletion protection must be ACTIVE or INACTIVE."]
    if errors:
        raise ValidationError(errors)


def pool_changes_to_request(pool: UserPool, changes: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) in UpdateUserPool terms, for the keys that actually change."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    policy = dict(pool.password_policy)
    new_policy = dict(policy)
    if "password_policy" in changes:
        new_policy.update(changes["password_policy"])
    if "temporary_password_validity_days" in changes:
        new_policy["TemporaryPasswordValidityDays"] = changes["temporary_password_validity_days"]
    if new_policy != policy:
        before["Policies.PasswordPolicy"], after["Policies.PasswordPolicy"] = policy, new_policy
    if "mfa_configuration" in changes and changes["mfa_configuration"] != pool.mfa_configuration:
        before["MfaConfiguration"], after["MfaConfiguration"] = pool.mfa_configuration, changes["mfa_configuration"]
    if (
        "allow_admin_create_user_only" in changes
        and bool(changes["allow_admin_create_user_only"]) != pool.allow_admin_create_user_only
    ):
        key = "AdminCreateUserConfig.AllowAdminCreateUserOnly"
        before[key], after[key] = pool.allow_admin_create_user_only, bool(changes["allow_admin_create_user_only"])
    if "deletion_protection" in changes and changes["deletion_protection"] != pool.deletion_protection:
        before["DeletionProtection"] = pool.deletion_protection or "INACTIVE"
        after["DeletionProtection"] = changes["deletion_protection"]
    return before, after


@transaction.atomic
def user_pool_update(
    *, pool: UserPool, changes: dict[str, Any], actor: str, source: str = audit.Source.ADMIN
) -> PendingChange | None:
    """Change pool settings that Cognito allows after creation: a full-config UpdateUserPool
    built from a fresh DescribeUserPool, so Lambda triggers, templates and the rest stay. Idempotent."""
    validate_pool_changes(pool, changes)
    before, after = pool_changes_to_request(pool, changes)
    if not after:
        return None
    if "Policies.PasswordPolicy" in after:
        pool.password_policy = after["Policies.PasswordPolicy"]
        pool.temporary_password_validity_days = pool.password_policy.get("TemporaryPasswordValidityDays")
    if "MfaConfiguration" in after:
        pool.mfa_configuration = after["MfaConfiguration"]
    if "AdminCreateUserConfig.AllowAdminCreateUserOnly" in after:
        pool.allow_admin_create_user_only = after["AdminCreateUserConfig.AllowAdminCreateUserOnly"]
    if "DeletionProtection" in after:
        pool.deletion_protection = after["DeletionProtection"]
    # Only the settings: a full save would write back a stale sync lease or last_synced_at.
    pool.save(update_fields=POOL_SETTING_FIELDS)
    return _request(
        pool=pool,
        object_type="pool",
        object_key=pool.pool_id,
        operation="pool.update",
        before=before,
        after=after,
        actor=actor,
        base_version=pool.content_hash,
        source=source,
        object_repr=pool.name,
    )


# Outbox administration -----------------------------------------------------------------------------


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
        action="retried",
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
        from .sync.push import revert_mirror

        revert_mirror(change)
    audit.record(
        action="discarded",
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


# Bulk jobs ---------------------------------------------------------------------------------------------

BULK_OPERATIONS = {
    "enable": lambda user, actor, job, params: cognito_user_set_enabled(user=user, enabled=True, actor=actor, job=job),
    "disable": lambda user, actor, job, params: cognito_user_set_enabled(
        user=user, enabled=False, actor=actor, job=job
    ),
    "reset_password": lambda user, actor, job, params: cognito_user_reset_password(user=user, actor=actor, job=job),
    "confirm_sign_up": lambda user, actor, job, params: cognito_user_confirm_sign_up(user=user, actor=actor, job=job),
    "mark_email_verified": lambda user, actor, job, params: cognito_user_mark_verified(
        user=user, attribute="email", actor=actor, job=job
    ),
    "delete": lambda user, actor, job, params: cognito_user_delete(user=user, actor=actor, job=job),
    "add_to_group": lambda user, actor, job, params: cognito_user_set_group(
        user=user, group=CognitoGroup.objects.get(pk=params["group"]), member=True, actor=actor, job=job
    ),
    "remove_from_group": lambda user, actor, job, params: cognito_user_set_group(
        user=user, group=CognitoGroup.objects.get(pk=params["group"]), member=False, actor=actor, job=job
    ),
    "resend_code": lambda user, actor, job, params: cognito_user_resend_code_request(user=user, actor=actor, job=job),
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
    from .tasks import run_bulk_job

    with transaction.atomic():
        for pool_id, ids in by_pool.items():
            job = BulkJob.objects.create(
                pool_id=pool_id, operation=operation, params=params or {}, user_ids=ids, total=len(ids), actor=actor
            )
            audit.record(
                action="bulk_requested",
                object_type="bulk_job",
                object_id=str(job.pk),
                pool_id=job.pool.pool_id,
                detail={"operation": operation, "users": len(ids), **(params or {})},
                source=audit.Source.ADMIN,
                actor=actor,
                outcome=audit.Outcome.PENDING,
            )
            jobs.append(job)
            transaction.on_commit(lambda pk=job.pk: _safe_delay(run_bulk_job, pk))
    return jobs


def _safe_delay(task, *args) -> None:
    try:
        task.delay(*args)
    except Exception as exc:  # noqa: BLE001
        logger.warning("could not enqueue %s%s (%s); the sweeper will retry", task.name, args, exc)


def bulk_job_run(*, job: BulkJob) -> BulkJob:
    """Expand a bulk job into pending changes, recording progress; safe to run twice (each
    per-user service skips what is already requested or already true)."""
    from django.utils import timezone

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
