"""Pool settings that Cognito allows after creation (settings_catalog's editable entries): validate, show
in the mirror, and request them through the outbox. The push makes the calls that carry them, a
full-config UpdateUserPool built from a fresh DescribeUserPool among them, so every other setting stays."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..mirror import save_pool_settings, set_pool_values
from ..models import PendingChange, UserPool
from ..outbox import request_change
from ..settings_catalog import (
    EDITABLE,
    POOL_SETTINGS_BY_NAME,
    apply_values,
    changed_units,
    check_values,
    document_from_pool,
    read_values,
)

# Keys older callers use -> the catalogue's: the PasswordPolicy members, and self sign-up's inverse.
_POLICY_MEMBERS = {
    "MinimumLength": "minimum_length",
    "RequireUppercase": "require_uppercase",
    "RequireLowercase": "require_lowercase",
    "RequireNumbers": "require_numbers",
    "RequireSymbols": "require_symbols",
    "TemporaryPasswordValidityDays": "temporary_password_validity_days",
}


def pool_setting_values(pool: UserPool) -> dict[str, Any]:
    """Every catalogue setting's value (as its form field holds it) for the pool, as the mirror has it."""
    return read_values(document_from_pool(pool))


def catalogue_changes(changes: dict[str, Any]) -> dict[str, Any]:
    """`changes` in catalogue names (accepts `password_policy` members and `allow_admin_create_user_only`)."""
    values = {k: v for k, v in changes.items() if k not in ("password_policy", "allow_admin_create_user_only")}
    for member, value in (changes.get("password_policy") or {}).items():
        values[_POLICY_MEMBERS.get(member, f"password_policy.{member}")] = value
    if "allow_admin_create_user_only" in changes:
        values["self_sign_up"] = not changes["allow_admin_create_user_only"]
    return values


def validate_pool_changes(pool: UserPool, changes: dict[str, Any]) -> dict[str, Any]:
    """Refuse (ValidationError naming the field and the rule) what Cognito would refuse and what cannot
    change after creation; returns the cleaned changes in catalogue names. Sends nothing."""
    values = catalogue_changes(changes)
    errors: dict[str, list[str]] = {}
    editable = {s.name for s in EDITABLE}
    cleaned: dict[str, Any] = {}
    for name, value in values.items():
        setting = POOL_SETTINGS_BY_NAME.get(name)
        if setting is None or name not in editable:
            reason = setting.locked_reason if setting is not None else "it is not a setting of this page"
            errors[name] = [f"{name} cannot be changed after the pool is created ({reason})."]
            continue
        try:
            cleaned[name] = setting.field().clean(value)
        except ValidationError as exc:
            errors[name] = [f"{setting.label}: {message}" for message in exc.messages]
    current = pool_setting_values(pool)
    merged = {**current, **cleaned}
    before = check_values(current)
    for name, problems in check_values(merged).items():
        # A rule already broken before this change (Cognito holds it so) does not block other edits.
        if name in cleaned or problems != before.get(name):
            errors.setdefault(name, []).extend(problems)
    if errors:
        raise ValidationError(errors)
    return cleaned


@transaction.atomic
def user_pool_update(
    *, pool: UserPool, changes: dict[str, Any], actor: str, source: str = audit.Source.ADMIN
) -> PendingChange | None:
    """Change pool settings that Cognito allows after creation. Shows them in the mirror at once and
    writes one PendingChange (audited `requested`, before -> after by Cognito path). The push sends
    AddCustomAttributes, a full-config UpdateUserPool built from a fresh DescribeUserPool (so Lambda
    triggers, templates and the rest stay), SetUserPoolMfaConfig and TagResource/UntagResource — each
    only when the change holds what it carries. Returns None when nothing differs. Idempotent."""
    values = validate_pool_changes(pool, changes)
    document = document_from_pool(pool)
    wanted = apply_values(document, values)
    before, after = changed_units(document, wanted)
    if not after:
        return None
    current = read_values(document)
    settings = {
        name: [current.get(name), value] for name, value in values.items() if current.get(name) != value
    }
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
        payload={"settings": settings},
        base_version=pool.content_hash,
        source=source,
        object_repr=pool.name,
    )
