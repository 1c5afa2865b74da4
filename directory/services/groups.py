"""Cognito groups: create, update and delete through the outbox."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..models import CognitoGroup, PendingChange, UserPool
from ..outbox import has_active_change, request_change
from ..validation import validate_group

Operation = PendingChange.Operation
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
    return request_change(
        pool=pool,
        object_type="group",
        object_key=name,
        operation=Operation.GROUP_CREATE,
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
    return request_change(
        pool=group.pool,
        object_type="group",
        object_key=group.name,
        operation=Operation.GROUP_UPDATE,
        before=before,
        after=after,
        actor=actor,
        base_version=group.content_hash,
        source=source,
    )


@transaction.atomic
def cognito_group_delete(*, group: CognitoGroup, actor: str, source: str = audit.Source.ADMIN) -> PendingChange | None:
    """Delete a group (DeleteGroup); its memberships go with it. Idempotent."""
    if has_active_change(pool=group.pool, object_type="group", object_key=group.name, operation=Operation.GROUP_DELETE):
        return None
    return request_change(
        pool=group.pool,
        object_type="group",
        object_key=group.name,
        operation=Operation.GROUP_DELETE,
        before={"exists": True},
        after={"exists": False},
        actor=actor,
        base_version=group.content_hash,
        source=source,
        payload={"members": group.memberships.count()},
    )
