"""Users: attributes, enable / disable, delete, password reset, sign-up confirmation, verification
and group membership, each requested through the outbox."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..mirror import set_user_attribute
from ..models import BulkJob, CognitoGroup, CognitoUser, GroupMembership, PendingChange, UserStatus
from ..outbox import has_active_change, request_change
from ..validation import validate_user_attributes

Operation = PendingChange.Operation


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
        set_user_attribute(user, field.split(".", 1)[1], value)
    user.save()
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=Operation.USER_UPDATE_ATTRIBUTES,
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
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=Operation.USER_SET_ENABLED,
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
    if has_active_change(pool=user.pool, object_type="user", object_key=user.username, operation=Operation.USER_DELETE):
        return None
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=Operation.USER_DELETE,
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
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=Operation.USER_RESET_PASSWORD,
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
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=Operation.USER_CONFIRM_SIGN_UP,
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
    set_user_attribute(user, f"{attribute}_verified", "true")
    user.save()
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=Operation.USER_UPDATE_ATTRIBUTES,
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
    return request_change(
        pool=user.pool,
        object_type="user",
        object_key=user.username,
        operation=Operation.USER_ADD_TO_GROUP if member else Operation.USER_REMOVE_FROM_GROUP,
        before={field: not member},
        after={field: member},
        actor=actor,
        base_version=user.content_hash,
        source=source,
        job=job,
        payload={"group": group.name},
        object_repr=user.email,
    )
