"""Pool settings that Cognito allows after creation: validate and request a full-config UpdateUserPool
(built by the push from a fresh DescribeUserPool, so every other setting stays)."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..mirror import save_pool_settings, set_pool_values
from ..models import PendingChange, UserPool
from ..outbox import request_change
from ..settings_catalog import PASSWORD_POLICY, POOL_EDITABLE, POOL_SETTINGS, TEMPORARY_PASSWORD_DAYS


def validate_pool_changes(pool: UserPool, changes: dict[str, Any]) -> None:
    """Refuse (ValidationError naming the field) what Cognito would refuse, and what is not editable."""
    errors: dict[str, list[str]] = {}
    for name in set(changes) - POOL_EDITABLE:
        errors[name] = [f"{name} cannot be changed after the pool is created (or not here)."]
    policy = changes.get("password_policy")
    if policy is not None:
        length = policy.get("MinimumLength")
        if length is not None and not 6 <= int(length) <= 99:
            errors["password_policy"] = [f"Minimum length must be between 6 and 99 (got {length})."]
    days = changes.get(TEMPORARY_PASSWORD_DAYS)
    if days is not None and not 0 <= int(days) <= 365:
        errors[TEMPORARY_PASSWORD_DAYS] = ["Temporary passwords are valid for 0 to 365 days."]
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
    if PASSWORD_POLICY.name in changes:
        new_policy.update(changes[PASSWORD_POLICY.name])
    if TEMPORARY_PASSWORD_DAYS in changes:
        new_policy["TemporaryPasswordValidityDays"] = changes[TEMPORARY_PASSWORD_DAYS]
    if new_policy != policy:
        before[PASSWORD_POLICY.api_path], after[PASSWORD_POLICY.api_path] = policy, new_policy
    for setting in POOL_SETTINGS:
        if setting is PASSWORD_POLICY or setting.name not in changes:
            continue
        wanted = setting.coerce(changes[setting.name])
        current = getattr(pool, setting.name)
        if current in (None, "") and setting.absent is not None:
            current = setting.absent
        if wanted != current:
            before[setting.api_path], after[setting.api_path] = current, wanted
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
    set_pool_values(pool, after)
    save_pool_settings(pool)
    return request_change(
        pool=pool,
        object_type="pool",
        object_key=pool.pool_id,
        operation=PendingChange.Operation.POOL_UPDATE,
        before=before,
        after=after,
        actor=actor,
        base_version=pool.content_hash,
        source=source,
        object_repr=pool.name,
    )
