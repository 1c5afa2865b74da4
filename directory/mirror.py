"""Edits to the mirror that a change makes up front, and their inverse when it is discarded.

A service shows an operator's change in the mirror at once (the pull leaves those fields
alone while the change is active); discarding a still-pending change puts the `before`
values back with `revert_mirror`. Both directions go through the same setters here.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .mapping import USER_TYPED_ATTRIBUTES, pool_fields
from .models import AppClient, CognitoGroup, CognitoUser, GroupMembership, PendingChange, UserPool
from .settings_catalog import (
    CLIENT_FIELD_BY_KEY,
    POOL_SETTING_FIELDS,
    document_from_pool,
    record_from_document,
    set_path,
)
from .settings_spec import MFA_KEY, SCHEMA_KEY

_BOOL_ATTRS = {"email_verified", "phone_number_verified"}


def set_user_attribute(user: CognitoUser, name: str, value: str | None) -> None:
    """Set (or, with None, remove) one attribute on an unsaved user, with its typed column."""
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


def set_pool_values(pool: UserPool, values: dict[str, Any]) -> None:
    """Apply a change's units (paths in the pool document -> values) to an unsaved pool: written into
    the document the mirror holds, and every settings column derived from it again as a pull would."""
    document = document_from_pool(pool)
    for path, value in values.items():
        if path.startswith(SCHEMA_KEY + ".") and value is not None:
            value = {**(document.get(SCHEMA_KEY, {}).get(path.split(".", 1)[1]) or {}), **value}
        set_path(document, path, value)
    record = record_from_document(document)
    fields = pool_fields(record, region=pool.region, mfa=document.get(MFA_KEY) or {})
    for name in POOL_SETTING_FIELDS:
        setattr(pool, name, fields[name])


def save_pool_settings(pool: UserPool) -> None:
    """Save only the settings: a full save would write back a stale sync lease or last_synced_at."""
    pool.save(update_fields=POOL_SETTING_FIELDS)


def revert_mirror(change: PendingChange) -> None:
    """Put the mirror back to the values a discarded change started from."""
    pool = change.pool
    before = change.before
    if change.object_type == "user":
        user = CognitoUser.objects.filter(pool=pool, username=change.object_key).first()
        if user is None:
            return
        for field, value in before.items():
            if field.startswith("attributes."):
                set_user_attribute(user, field.split(".", 1)[1], value)
            elif field.startswith("groups."):
                group = CognitoGroup.objects.filter(pool=pool, name=field.split(".", 1)[1]).first()
                if group and value:
                    GroupMembership.objects.get_or_create(group=group, user=user)
                elif group:
                    GroupMembership.objects.filter(group=group, user=user).delete()
            elif field != "exists":
                setattr(user, field, value)
        user.save()
    elif change.object_type == "group":
        group = CognitoGroup.objects.filter(pool=pool, name=change.object_key).first()
        if change.operation == PendingChange.Operation.GROUP_CREATE and group is not None:
            group.delete()
        elif group is not None:
            for field, value in before.items():
                if field != "exists":
                    setattr(group, field, value)
            group.save()
    elif change.object_type == "app_client":
        client = AppClient.objects.filter(client_id=change.object_key).first()
        if client is None:
            return
        for key, value in before.items():
            setattr(client, CLIENT_FIELD_BY_KEY[key], value)
        client.save()
    elif change.object_type == "pool":
        pool = UserPool.objects.get(pk=pool.pk)
        set_pool_values(pool, before)
        save_pool_settings(pool)


# Users removed per statement when a pool goes: bounded memory whatever the pool's size.
GONE_BATCH = 2000
GONE_ERROR = "The pool is gone from Cognito."


def pool_mark_gone(pool: UserPool, *, reason: str, when: datetime) -> dict[str, int]:
    """Mark a pool gone from Cognito and remove what went with it (users, groups, memberships, app
    clients); the row stays, with its sync runs, changes and template versions, so its history stays
    browsable. Changes still on their way fail. Returns what was removed, by kind. Idempotent."""
    removed = {
        "users": CognitoUser.objects.filter(pool=pool).count(),
        "groups": CognitoGroup.objects.filter(pool=pool).count(),
        "app_clients": AppClient.objects.filter(pool=pool).count(),
    }
    GroupMembership.objects.filter(group__pool=pool).delete()
    while pks := list(CognitoUser.objects.filter(pool=pool).values_list("pk", flat=True)[:GONE_BATCH]):
        CognitoUser.objects.filter(pk__in=pks).delete()
    CognitoGroup.objects.filter(pool=pool).delete()
    AppClient.objects.filter(pool=pool).delete()
    removed["pending_changes"] = PendingChange.objects.filter(pool=pool, status__in=PendingChange.ACTIVE).update(
        status=PendingChange.Status.FAILED, last_error=GONE_ERROR
    )
    UserPool.objects.filter(pk=pool.pk).update(
        deleted_at=when, deleted_reason=reason[:256], estimated_number_of_users=0
    )
    pool.deleted_at, pool.deleted_reason, pool.estimated_number_of_users = when, reason[:256], 0
    return removed


def pool_unmark_gone(pool: UserPool) -> None:
    """A pool marked gone is in Cognito after all: it is mirrored again (by its next pull)."""
    UserPool.objects.filter(pk=pool.pk).update(deleted_at=None, deleted_reason="", last_synced_at=None, content_hash="")
    pool.deleted_at, pool.deleted_reason, pool.last_synced_at, pool.content_hash = None, "", None, ""
