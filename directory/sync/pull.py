"""Remote -> local: pull one pool's settings, app clients, groups, users and memberships.

The pool's settings, app clients and groups are few: each phase is one transaction that
creates, updates and removes rows by content hash. Users stream: their listing is fetched
ahead of the database (`stream.Prefetch`) and applied in batches of
COGNITO_SYNC_BATCH_SIZE users, each batch in its own short transaction (rows and their
audit events together, written by `writer.BatchWriter`): one SELECT of the names in the
batch, then one upsert of the new and changed rows, so an unchanged user costs no write
at all. Rows missing from a *complete* listing are found with a bitmap of the row ids
seen (an eighth of a byte a row) and removed only then. Memberships go the same way, one
group at a time. A field with an operator's change still on its way to Cognito is never
overwritten, and such a row is never removed.

A pull that fails or is killed half-way keeps the batches it committed (each object
consistent, each change audited) and removes nothing; the next pull completes it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, QuerySet
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
    user_created_changes,
    user_diff,
    user_fields,
    user_hash,
)
from ..message_templates import record_pulled_templates
from ..models import AppClient, CognitoGroup, CognitoUser, GroupMembership, PendingChange, SyncRun, UserPool
from .stream import Prefetch, batched_pages
from .writer import BatchWriter, current_rows, stored_hashes

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
    analyzed_at: int = 0

    # -- audit helpers -----------------------------------------------------------------
    def event(self, *, action: str, object_type: str, object_id: str, changes: dict, **extra: Any) -> dict[str, Any]:
        """One audit event's own arguments; `write_events` adds what the pull's events share."""
        return {"action": action, "object_type": object_type, "object_id": object_id, "changes": changes, **extra}

    def _event_shared(self) -> dict[str, str]:
        # What every audit event of this pull shares.
        return {
            "source": self.source,
            "actor": self.actor,
            "pool_id": self.pool.pool_id,
            "correlation_id": str(self.run.correlation_id),
        }

    def events_text(self, events: list[dict[str, Any]]) -> audit.AuditCopy:
        """`write_events`' COPY text (PostgreSQL), to be written by `audit.copy_write`."""
        return audit.copy_text(events, **self._event_shared())

    def write_events(self, events: list[dict[str, Any]]) -> None:
        audit.copy_many(events, **self._event_shared())

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


def pull_pool(
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
    A Cognito failure is recorded on the SyncRun (status `failed`, `error`) and in the
    audit log; it does not raise. Batches committed before a failure stay (each with its
    audit events); nothing is removed unless its listing completed.
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
        # Each phase commits on its own (users and memberships batch by batch): a long pull
        # holds no transaction open, so operators' edits and other workers are not blocked.
        with transaction.atomic():
            _pull_pool(ctx)
        with transaction.atomic():
            _pull_clients(ctx)
        with transaction.atomic():
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
    # Batches committed before the failure stay, so the counts say what was applied.
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
        phase=f"failed during {run.phase}"[:32],
        pages=ctx.pages,
        seen=ctx.seen,
        created=ctx.users.created,
        updated=ctx.users.updated,
        removed=ctx.users.removed,
        unchanged=ctx.users.unchanged,
        summary=ctx.summary(),
    )
    audit.record(
        action=audit.Action.SYNC_FAILED,
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


def _keep_local(fields: dict[str, Any], current: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    """The pulled fields with the protected paths kept at the stored row's values (`current`)."""
    merged = dict(fields)
    attributes = dict(fields["attributes"])
    for path in keep:
        if path.startswith("attributes."):
            name = path.split(".", 1)[1]
            if name in current["attributes"]:
                attributes[name] = current["attributes"][name]
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
                merged[typed[name]] = current[typed[name]]
        elif path in merged:
            merged[path] = current[path]
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
    record_pulled_templates(pool, actor=ctx.actor)
    action = audit.Action.CREATED if created else audit.Action.UPDATED
    ctx.pool_change = action.value  # "created" or "updated" in the summary
    ctx.write_events(
        [
            ctx.event(
                action=action,
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
        action = audit.Action.CREATED if current is None else audit.Action.UPDATED
        setattr(counts, action.value, getattr(counts, action.value) + 1)  # Counts.created / Counts.updated
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
                action=audit.Action.DELETED,
                object_type=object_type,
                object_id=ident,
                object_repr=before.get("name", ident),
                changes={k: [v[1], None] for k, v in diff({}, before).items()},
            )
        )
    ctx.write_events(events)


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


def _max_id(qs: QuerySet) -> int:
    return qs.aggregate(top=Max("id"))["top"] or 0


def _pull_users(ctx: PullContext) -> None:
    ctx.report("users")
    # Outbound changes in flight are few; one query for the whole listing.
    ctx.protected_users = _protected(ctx.pool, "user")
    # Rows created after this point by someone else (an operator's new user) are not
    # candidates for removal: the listing may have passed their place already.
    horizon = _max_id(CognitoUser.objects.filter(pool=ctx.pool))
    seen = IdBitmap()
    with Prefetch(ctx.gateway.list_users(ctx.pool.pool_id)) as pages, BatchWriter(ctx, seen) as writer:
        for batch in batched_pages(ctx, pages, count_pages=True):
            _apply_user_batch(ctx, batch, seen, writer)
            ctx.report("users")
    # The listing completed: whatever was not seen is gone from Cognito.
    _remove_unseen_users(ctx, seen, horizon)


def _apply_user_batch(ctx: PullContext, records: list[dict[str, Any]], seen: IdBitmap, writer: BatchWriter) -> None:
    """Map, hash and compare a batch; upsert what is new or changed, with its audit events."""
    incoming: dict[str, dict[str, Any]] = {}
    for record in records:
        fields = user_fields(record)
        incoming[fields["username"]] = fields
    ctx.seen += len(incoming)
    writer.wait_for(incoming)
    existing = stored_hashes(ctx.pool, list(incoming))
    hashes: dict[str, str] = {}
    changed: list[int] = []
    for username, fields in incoming.items():
        new_hash = hashes[username] = user_hash(fields)
        known = existing.get(username)
        if known is None:
            continue
        seen.add(known[0])
        if known[1] == new_hash:
            ctx.users.unchanged += 1
        else:
            changed.append(known[0])
    # Only the changed rows are read in full (as plain dicts), for the audit's before values.
    stored_rows = current_rows(changed) if changed else {}
    protected = ctx.protected_users
    rows: list[tuple[dict[str, Any], str, bool]] = []
    events: list[dict[str, Any]] = []
    created = updated = 0
    for username, fields in incoming.items():
        known = existing.get(username)
        if known is None:
            rows.append((fields, hashes[username], True))
            events.append(
                {
                    "action": audit.Action.CREATED,
                    "object_type": "user",
                    "object_id": username,
                    "object_repr": fields["email"] or username,
                    "changes": user_created_changes(fields),
                    "detail": {"sub": fields["sub"]},
                }
            )
            created += 1
            continue
        current = stored_rows.get(username)
        if current is None:
            continue  # unchanged (or removed by someone else since the SELECT: the next pull sees it)
        if username in protected:
            fields = _keep_local(fields, current, protected[username])
        rows.append((fields, hashes[username], False))
        updated += 1
        changes = user_diff(current, fields)
        if changes:
            events.append(
                {
                    "action": audit.Action.UPDATED,
                    "object_type": "user",
                    "object_id": username,
                    "object_repr": fields["email"] or username,
                    "changes": changes,
                    "detail": {"sub": fields["sub"]},
                }
            )
    if rows:
        writer.submit(rows, events, created=created, updated=updated)


def _remove_unseen_users(ctx: PullContext, seen: IdBitmap, horizon: int) -> None:
    ctx.report("removing users")
    protected = ctx.protected_users
    ids = (
        CognitoUser.objects.filter(pool=ctx.pool, id__lte=horizon)
        .order_by("id")
        .values_list("id", flat=True)
    )
    gone = [user_id for user_id in ids.iterator(chunk_size=5000) if user_id not in seen]
    for start in range(0, len(gone), ctx.batch_size):
        batch = gone[start : start + ctx.batch_size]
        events = []
        doomed = []
        with transaction.atomic():
            for user in CognitoUser.objects.filter(id__in=batch).only("id", *USER_FIELDS):
                if user.username in protected:
                    continue  # an outbound change (e.g. a creation) is still on its way
                doomed.append(user.pk)
                before = model_values(user, USER_FIELDS)
                events.append(
                    ctx.event(
                        action=audit.Action.DELETED,
                        object_type="user",
                        object_id=user.username,
                        object_repr=user.email or user.username,
                        changes={k: [v[1], None] for k, v in diff({}, before).items()},
                        detail={"sub": user.sub},
                    )
                )
            CognitoUser.objects.filter(id__in=doomed).delete()
            ctx.write_events(events)
        ctx.users.removed += len(doomed)
        ctx.report("removing users")


# Memberships ------------------------------------------------------------------------------------------


def _pull_memberships(ctx: PullContext) -> None:
    ctx.report("memberships")
    protected_users = {
        username
        for username, fields in _protected(ctx.pool, "user").items()
        if any(f.startswith("groups.") for f in fields)
    }
    for group in CognitoGroup.objects.filter(pool=ctx.pool).order_by("name"):
        horizon = _max_id(GroupMembership.objects.filter(group=group))
        seen = IdBitmap()
        with Prefetch(ctx.gateway.list_users_in_group(ctx.pool.pool_id, group.name)) as pages:
            for batch in batched_pages(ctx, pages):
                _apply_membership_batch(ctx, group, batch, seen, protected_users)
        _remove_stale_memberships(ctx, group, seen, horizon, protected_users)


def _apply_membership_batch(
    ctx: PullContext,
    group: CognitoGroup,
    records: list[dict[str, Any]],
    seen: IdBitmap,
    protected_users: set[str],
) -> None:
    usernames = list({u["Username"] for u in records})
    users = dict(CognitoUser.objects.filter(pool=ctx.pool, username__in=usernames).values_list("id", "username"))
    current = dict(GroupMembership.objects.filter(group=group, user_id__in=list(users)).values_list("user_id", "id"))
    for membership_id in current.values():
        seen.add(membership_id)
    ctx.memberships.unchanged += len(current)
    new = [
        GroupMembership(group=group, user_id=uid)
        for uid in users
        if uid not in current and users[uid] not in protected_users
    ]
    if not new:
        return
    with transaction.atomic():
        GroupMembership.objects.bulk_create(new, batch_size=ctx.batch_size)
        ctx.write_events([_membership_event(ctx, group, users[m.user_id], audit.Action.GROUP_ADDED) for m in new])
    for m in new:
        seen.add(m.id)
    ctx.memberships.created += len(new)


def _remove_stale_memberships(
    ctx: PullContext, group: CognitoGroup, seen: IdBitmap, horizon: int, protected_users: set[str]
) -> None:
    stale = [
        (mid, username)
        for mid, username in GroupMembership.objects.filter(group=group, id__lte=horizon)
        .order_by("id")
        .values_list("id", "user__username")
        .iterator(chunk_size=5000)
        if mid not in seen and username not in protected_users
    ]
    for start in range(0, len(stale), ctx.batch_size):
        batch = stale[start : start + ctx.batch_size]
        with transaction.atomic():
            GroupMembership.objects.filter(id__in=[mid for mid, _ in batch]).delete()
            ctx.write_events(
                [_membership_event(ctx, group, username, audit.Action.GROUP_REMOVED) for _, username in batch]
            )
        ctx.memberships.removed += len(batch)


def _membership_event(ctx: PullContext, group: CognitoGroup, username: str, action: str) -> dict[str, Any]:
    before, after = (None, group.name) if action == audit.Action.GROUP_ADDED else (group.name, None)
    return ctx.event(
        action=action,
        object_type="user",
        object_id=username,
        object_repr=username,
        changes={"group": [before, after]},
        detail={"group": group.name},
    )
