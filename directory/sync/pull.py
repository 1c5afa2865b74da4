"""Remote -> local: pull one pool's settings, app clients, groups, users and memberships.

The mirror's changes are applied in one transaction, so a pull that fails (Cognito
unreachable, throttled past retries, pool deleted) leaves the mirror exactly as it was.
Users stream page by page: each page costs one SELECT of the rows it names, and only
new or changed rows are written. Rows missing from a *complete* listing are found with
a bitmap of the row ids seen (an eighth of a byte a row), so memory stays flat and the
rows that were seen are never rewritten.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..gateway import CognitoError, CognitoGateway
from ..mapping import (
    USER_FIELDS,
    client_fields,
    diff,
    group_fields,
    model_values,
    pool_fields,
    pool_hash,
    record_hash,
    user_fields,
    user_hash,
)
from ..models import AppClient, CognitoGroup, CognitoUser, GroupMembership, PendingChange, SyncRun, UserPool

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[SyncRun, "PullContext"], None]

_POOL_FIELDS = (
    "name",
    "arn",
    "status",
    "username_attributes",
    "alias_attributes",
    "username_case_sensitive",
    "schema",
    "auto_verified_attributes",
    "password_policy",
    "mfa_configuration",
    "admin_create_user_config",
    "allow_admin_create_user_only",
    "temporary_password_validity_days",
    "verification_message_template",
    "email_configuration",
    "sms_configuration",
    "lambda_config",
    "user_attribute_update_settings",
    "account_recovery_setting",
    "deletion_protection",
    "user_pool_tier",
    "tags",
    "remote_created_at",
    "remote_modified_at",
)
_USER_UPDATE_FIELDS = [f for f in USER_FIELDS if f != "username"] + ["content_hash"]


class IdBitmap:
    """A growable set of non-negative integer ids, one bit each."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, value: int) -> None:
        index = value >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(index - len(self._bits) + 1 + len(self._bits) // 2))
        self._bits[index] |= 1 << (value & 7)

    def __contains__(self, value: int) -> bool:
        index = value >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (value & 7)))


@dataclass
class Counts:
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "removed": self.removed, "unchanged": self.unchanged}


@dataclass
class PullContext:
    pool: UserPool
    run: SyncRun
    gateway: CognitoGateway
    source: str
    actor: str
    progress: ProgressCallback | None = None
    batch_size: int = 500
    users: Counts = field(default_factory=Counts)
    clients: Counts = field(default_factory=Counts)
    groups: Counts = field(default_factory=Counts)
    memberships: Counts = field(default_factory=Counts)
    pool_change: str = "unchanged"
    protected_users: dict[str, set[str]] = field(default_factory=dict)
    pages: int = 0
    seen: int = 0

    # -- audit helpers -----------------------------------------------------------------
    def event(self, *, action: str, object_type: str, object_id: str, changes: dict, **extra: Any):
        return audit.build(
            action=action,
            object_type=object_type,
            object_id=object_id,
            changes=changes,
            source=self.source,
            actor=self.actor,
            pool_id=self.pool.pool_id,
            correlation_id=str(self.run.correlation_id),
            **extra,
        )

    def report(self, phase: str) -> None:
        run = self.run
        run.phase = phase
        run.pages = self.pages
        run.seen = self.seen
        run.created = self.users.created
        run.updated = self.users.updated
        run.removed = self.users.removed
        run.unchanged = self.users.unchanged
        run.summary = self.summary()
        SyncRun.objects.using(settings.COGNITO_SYNC_PROGRESS_DB).filter(pk=run.pk).update(
            phase=run.phase,
            pages=run.pages,
            seen=run.seen,
            created=run.created,
            updated=run.updated,
            removed=run.removed,
            unchanged=run.unchanged,
            summary=run.summary,
        )
        if self.progress:
            self.progress(run, self)

    def summary(self) -> dict[str, Any]:
        return {
            "pool": self.pool_change,
            "users": self.users.as_dict(),
            "clients": self.clients.as_dict(),
            "groups": self.groups.as_dict(),
            "memberships": self.memberships.as_dict(),
        }


def sync_pool(
    *,
    pool: UserPool,
    source: str = audit.Source.WORKER,
    actor: str = "",
    gateway: CognitoGateway | None = None,
    progress: ProgressCallback | None = None,
) -> SyncRun:
    """Pull one pool from Cognito into the mirror and return its SyncRun.

    Sends only reads (DescribeUserPool, ListUserPoolClients, DescribeUserPoolClient,
    ListGroups, ListUsers, ListUsersInGroup; never AdminGetUser). Idempotent: a second
    run over an unchanged pool writes nothing but its SyncRun and `last_synced_at`.
    A failure is recorded on the SyncRun (status `failed`, `error`) and in the audit log;
    it does not raise.
    """
    db = settings.COGNITO_SYNC_PROGRESS_DB
    run = SyncRun.objects.using(db).create(pool=pool, source=source, actor=actor, phase="starting")
    ctx = PullContext(
        pool=pool,
        run=run,
        gateway=gateway or CognitoGateway(pool.region),
        source=source,
        actor=actor,
        progress=progress,
        batch_size=settings.COGNITO_SYNC_BATCH_SIZE,
    )
    try:
        with transaction.atomic():
            _pull_pool(ctx)
            _pull_clients(ctx)
            _pull_groups(ctx)
            _pull_users(ctx)
            _pull_memberships(ctx)
            now = timezone.now()
            UserPool.objects.filter(pk=pool.pk).update(last_synced_at=now)
            pool.last_synced_at = now
    except CognitoError as exc:
        _fail(ctx, exc)
        return run
    except Exception as exc:
        _fail(ctx, exc)
        raise
    run.status = SyncRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.phase = "done"
    ctx.report("done")
    SyncRun.objects.using(db).filter(pk=run.pk).update(status=run.status, finished_at=run.finished_at)
    logger.info("sync of %s finished: %s", pool.pool_id, run.summary)
    return run


def _fail(ctx: PullContext, exc: Exception) -> None:
    # The transaction rolled back: the mirror is as it was, so the counts are reset too.
    run = ctx.run
    reason = str(exc) or type(exc).__name__
    logger.warning("sync of %s failed: %s", ctx.pool.pool_id, reason)
    run.status = SyncRun.Status.FAILED
    run.finished_at = timezone.now()
    run.error = reason
    SyncRun.objects.using(settings.COGNITO_SYNC_PROGRESS_DB).filter(pk=run.pk).update(
        status=run.status,
        finished_at=run.finished_at,
        error=reason,
        phase=f"failed during {run.phase}",
        created=0,
        updated=0,
        removed=0,
        unchanged=0,
        summary={},
    )
    audit.record(
        action="sync_failed",
        object_type="pool",
        object_id=ctx.pool.pool_id,
        object_repr=ctx.pool.name,
        pool_id=ctx.pool.pool_id,
        source=ctx.source,
        actor=ctx.actor,
        outcome=audit.Outcome.FAILED,
        detail={"error": reason, "code": getattr(exc, "code", ""), "phase": run.phase},
        correlation_id=str(run.correlation_id),
    )


def _protected(pool: UserPool, object_type: str, keys: list[str] | None = None) -> dict[str, set[str]]:
    """Fields with an outbound change still on its way: a pull must not overwrite them."""
    qs = PendingChange.objects.filter(pool=pool, object_type=object_type, status__in=PendingChange.ACTIVE)
    if keys is not None:
        qs = qs.filter(object_key__in=keys)
    protected: dict[str, set[str]] = {}
    for key, fields in qs.values_list("object_key", "fields"):
        protected.setdefault(key, set()).update(fields)
    return protected


def _keep_local(fields: dict[str, Any], current: CognitoUser, keep: set[str]) -> dict[str, Any]:
    merged = dict(fields)
    attributes = dict(fields["attributes"])
    for path in keep:
        if path.startswith("attributes."):
            name = path.split(".", 1)[1]
            if name in current.attributes:
                attributes[name] = current.attributes[name]
            else:
                attributes.pop(name, None)
            typed = {
                "sub": "sub",
                "email": "email",
                "phone_number": "phone_number",
                "name": "name",
                "email_verified": "email_verified",
                "phone_number_verified": "phone_number_verified",
            }
            if name in typed:
                merged[typed[name]] = getattr(current, typed[name])
        elif path in merged:
            merged[path] = getattr(current, path)
    merged["attributes"] = attributes
    return merged


# Pool --------------------------------------------------------------------------------------


def _pull_pool(ctx: PullContext) -> None:
    ctx.report("pool")
    pool = ctx.pool
    fields = pool_fields(ctx.gateway.describe_user_pool(pool.pool_id), region=pool.region)
    new_hash = pool_hash(fields)
    estimate = fields["estimated_number_of_users"]
    if new_hash != pool.content_hash and _protected(pool, "pool", [pool.pool_id]):
        return  # an operator's change to the settings is on its way; the next pull takes them
    if new_hash == pool.content_hash:
        if estimate != pool.estimated_number_of_users:
            # Informational only: not audited, not a change of the pool's settings.
            UserPool.objects.filter(pk=pool.pk).update(estimated_number_of_users=estimate)
            pool.estimated_number_of_users = estimate
        return
    created = not pool.content_hash
    before = {} if created else model_values(pool, _POOL_FIELDS)
    after = {k: fields[k] for k in _POOL_FIELDS}
    for key, value in fields.items():
        if key != "pool_id":
            setattr(pool, key, value)
    pool.content_hash = new_hash
    pool.save()
    ctx.pool_change = "created" if created else "updated"
    audit.record_many(
        [
            ctx.event(
                action=ctx.pool_change,
                object_type="pool",
                object_id=pool.pool_id,
                object_repr=pool.name,
                changes=diff(before, after),
            )
        ]
    )


# App clients and groups -------------------------------------------------------------------------


def _reconcile_small(
    ctx: PullContext,
    *,
    model: type[AppClient] | type[CognitoGroup],
    key: str,
    object_type: str,
    records: Iterable[dict[str, Any]],
    counts: Counts,
) -> None:
    """Create, update and remove the few rows of a pool's clients or groups."""
    existing = {getattr(obj, key): obj for obj in model.objects.filter(pool=ctx.pool)}
    protected = _protected(ctx.pool, object_type)
    events = []
    seen: set[str] = set()
    for fields in records:
        ident = fields[key]
        seen.add(ident)
        new_hash = record_hash(fields)
        current = existing.get(ident)
        if current is not None and (current.content_hash == new_hash or ident in protected):
            counts.unchanged += 1
            continue
        before = {} if current is None else model_values(current, fields.keys())
        obj = current or model(pool=ctx.pool)
        for name, value in fields.items():
            setattr(obj, name, value)
        obj.content_hash = new_hash
        obj.save()
        action = "created" if current is None else "updated"
        setattr(counts, action, getattr(counts, action) + 1)
        events.append(
            ctx.event(
                action=action,
                object_type=object_type,
                object_id=ident,
                object_repr=fields.get("name", ident),
                changes=diff(before, fields),
            )
        )
    for ident, obj in existing.items():
        if ident in seen or ident in protected:
            continue
        before = model_values(obj, [f.name for f in model._meta.concrete_fields if f.name not in {"id", "pool", "raw"}])
        obj.delete()
        counts.removed += 1
        events.append(
            ctx.event(
                action="deleted",
                object_type=object_type,
                object_id=ident,
                object_repr=before.get("name", ident),
                changes={k: [v[1], None] for k, v in diff({}, before).items()},
            )
        )
    audit.record_many(events)


def _pull_clients(ctx: PullContext) -> None:
    ctx.report("app clients")
    pool_id = ctx.pool.pool_id
    records = (
        client_fields(ctx.gateway.describe_user_pool_client(pool_id, summary["ClientId"]))
        for summary in ctx.gateway.list_user_pool_clients(pool_id)
    )
    _reconcile_small(
        ctx, model=AppClient, key="client_id", object_type="app_client", records=records, counts=ctx.clients
    )


def _pull_groups(ctx: PullContext) -> None:
    ctx.report("groups")
    records = (group_fields(g) for page in ctx.gateway.list_groups(ctx.pool.pool_id) for g in page)
    _reconcile_small(ctx, model=CognitoGroup, key="name", object_type="group", records=records, counts=ctx.groups)


# Users ---------------------------------------------------------------------------------------------


def _pull_users(ctx: PullContext) -> None:
    ctx.report("users")
    # Outbound changes in flight are few; one query for the whole listing.
    ctx.protected_users = _protected(ctx.pool, "user")
    seen = IdBitmap()
    for page in ctx.gateway.list_users(ctx.pool.pool_id):
        _apply_user_page(ctx, page, seen)
        ctx.pages += 1
        ctx.report("users")
    # The listing completed: whatever was not seen is gone from Cognito.
    _remove_unseen_users(ctx, seen)


def _apply_user_page(ctx: PullContext, page: list[dict[str, Any]], seen: IdBitmap) -> None:
    incoming: dict[str, dict[str, Any]] = {}
    for record in page:
        fields = user_fields(record)
        incoming[fields["username"]] = fields
    ctx.seen += len(incoming)
    existing = {
        u.username: u
        for u in CognitoUser.objects.filter(pool=ctx.pool, username__in=list(incoming)).only(
            "id", "content_hash", *USER_FIELDS
        )
    }
    protected = ctx.protected_users
    to_create: list[CognitoUser] = []
    to_update: list[CognitoUser] = []
    events = []
    for username, fields in incoming.items():
        new_hash = user_hash(fields)
        current = existing.get(username)
        if current is not None and username in protected and current.content_hash != new_hash:
            fields = _keep_local(fields, current, protected[username])
        if current is None:
            to_create.append(CognitoUser(pool=ctx.pool, content_hash=new_hash, **fields))
            events.append(
                ctx.event(
                    action="created",
                    object_type="user",
                    object_id=username,
                    object_repr=fields["email"] or username,
                    changes=diff({}, fields),
                    detail={"sub": fields["sub"]},
                )
            )
            continue
        seen.add(current.id)
        if current.content_hash == new_hash:
            ctx.users.unchanged += 1
            continue
        before = model_values(current, USER_FIELDS)
        for name, value in fields.items():
            setattr(current, name, value)
        current.content_hash = new_hash
        to_update.append(current)
        events.append(
            ctx.event(
                action="updated",
                object_type="user",
                object_id=username,
                object_repr=fields["email"] or username,
                changes=diff(before, fields),
                detail={"sub": fields["sub"]},
            )
        )
    if to_create:
        CognitoUser.objects.bulk_create(to_create, batch_size=ctx.batch_size)
        for user in to_create:
            seen.add(user.id)
        ctx.users.created += len(to_create)
    if to_update:
        CognitoUser.objects.bulk_update(to_update, _USER_UPDATE_FIELDS, batch_size=ctx.batch_size)
        ctx.users.updated += len(to_update)
    audit.record_many(events)


def _remove_unseen_users(ctx: PullContext, seen: IdBitmap) -> None:
    ctx.report("removing users")
    ids = CognitoUser.objects.filter(pool=ctx.pool).order_by("id").values_list("id", flat=True)
    gone: list[int] = []
    for user_id in ids.iterator(chunk_size=5000):
        if user_id not in seen:
            gone.append(user_id)
    for start in range(0, len(gone), ctx.batch_size):
        batch = gone[start : start + ctx.batch_size]
        events = []
        for user in CognitoUser.objects.filter(id__in=batch).only("id", *USER_FIELDS):
            before = model_values(user, USER_FIELDS)
            events.append(
                ctx.event(
                    action="deleted",
                    object_type="user",
                    object_id=user.username,
                    object_repr=user.email or user.username,
                    changes={k: [v[1], None] for k, v in diff({}, before).items()},
                    detail={"sub": user.sub},
                )
            )
        CognitoUser.objects.filter(id__in=batch).delete()
        ctx.users.removed += len(batch)
        audit.record_many(events)


# Memberships ------------------------------------------------------------------------------------------


def _pull_memberships(ctx: PullContext) -> None:
    ctx.report("memberships")
    protected_users = {
        username
        for username, fields in _protected(ctx.pool, "user").items()
        if any(f.startswith("groups.") for f in fields)
    }
    for group in CognitoGroup.objects.filter(pool=ctx.pool).order_by("name"):
        seen = IdBitmap()
        for page in ctx.gateway.list_users_in_group(ctx.pool.pool_id, group.name):
            usernames = [u["Username"] for u in page]
            users = dict(
                CognitoUser.objects.filter(pool=ctx.pool, username__in=usernames).values_list("id", "username")
            )
            current = dict(
                GroupMembership.objects.filter(group=group, user_id__in=list(users)).values_list("user_id", "id")
            )
            new = [
                GroupMembership(group=group, user_id=uid)
                for uid in users
                if uid not in current and users[uid] not in protected_users
            ]
            for membership_id in current.values():
                seen.add(membership_id)
            ctx.memberships.unchanged += len(current)
            if new:
                GroupMembership.objects.bulk_create(new, batch_size=ctx.batch_size)
                for m in new:
                    seen.add(m.id)
                ctx.memberships.created += len(new)
                audit.record_many([_membership_event(ctx, group, users[m.user_id], "group_added") for m in new])
        stale = [
            (mid, username)
            for mid, username in GroupMembership.objects.filter(group=group)
            .order_by("id")
            .values_list("id", "user__username")
            .iterator(chunk_size=5000)
            if mid not in seen and username not in protected_users
        ]
        if stale:
            GroupMembership.objects.filter(id__in=[mid for mid, _ in stale]).delete()
            ctx.memberships.removed += len(stale)
            audit.record_many([_membership_event(ctx, group, username, "group_removed") for _, username in stale])


def _membership_event(ctx: PullContext, group: CognitoGroup, username: str, action: str):
    before, after = (None, group.name) if action == "group_added" else (group.name, None)
    return ctx.event(
        action=action,
        object_type="user",
        object_id=username,
        object_repr=username,
        changes={"group": [before, after]},
        detail={"group": group.name},
    )
