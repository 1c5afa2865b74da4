"""Remote -> local: pull one pool's settings, app clients, groups, users and memberships.

Users stream: a background thread fetches ListUsers pages into a small bounded queue
while this thread maps and hashes them and (on PostgreSQL, outside a transaction) a
writer thread with its own connection writes the previous batch, so the network, this
process and the database overlap and memory stays flat. Pages are applied in batches of COGNITO_SYNC_BATCH_SIZE users,
each batch in its own short transaction (rows and their audit events together): one
SELECT of the names in the batch, then one upsert of the new and changed rows, so an
unchanged user costs no write at all. Rows missing from a *complete* listing are found
with a bitmap of the row ids seen (an eighth of a byte a row) and removed only then.

A pull that fails or is killed half-way keeps the batches it committed (each object
consistent, each change audited) and removes nothing; the next pull completes it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import operator
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, connections, models, transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from .. import audit, pgcopy
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
# is_test_user / test_user_expires_at are local bookkeeping: an upsert never touches them.
_USER_UPDATE_FIELDS = [f for f in USER_FIELDS if f != "username"] + ["content_hash"]
# ListUsers pages fetched ahead of the database (60 users each): bounds memory, hides latency.
PREFETCH_PAGES = 8


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

    def events_text(self, events: list[dict[str, Any]]) -> str:
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
    ctx.pool_change = "created" if created else "updated"
    ctx.write_events(
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


class Prefetch:
    """Iterate a page iterator that a background thread runs ahead, through a bounded queue.

    The thread only talks to Cognito (the gateway's botocore client is thread-safe); the
    database stays on the caller's thread. An error in the thread is raised to the caller
    at the point of the listing it interrupted; `close()` stops the thread early.
    """

    def __init__(self, pages: Iterator[list[dict[str, Any]]], depth: int = PREFETCH_PAGES) -> None:
        self._queue: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(pages,), name="cognito-prefetch", daemon=True)
        self._thread.start()

    def _run(self, pages: Iterator[list[dict[str, Any]]]) -> None:
        try:
            for page in pages:
                if not self._put(("page", page)):
                    return
            self._put(("done", None))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            self._put(("error", exc))
        finally:
            close = getattr(pages, "close", None)
            if close is not None:
                close()

    def _put(self, item: tuple[str, Any]) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[list[dict[str, Any]]]:
        while True:
            kind, value = self._queue.get()
            if kind == "page":
                yield value
            elif kind == "done":
                return
            else:
                raise value

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _batched_pages(
    ctx: PullContext, pages: Iterable[list[dict[str, Any]]], *, count_pages: bool = False
) -> Iterator[list[dict[str, Any]]]:
    """Pages regrouped into batches of about `batch_size` records (SyncRun.pages counts the user listing's)."""
    batch: list[dict[str, Any]] = []
    for page in pages:
        if count_pages:
            ctx.pages += 1
        batch.extend(page)
        if len(batch) >= ctx.batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


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
        for batch in _batched_pages(ctx, pages, count_pages=True):
            _apply_user_batch(ctx, batch, seen, writer)
            ctx.report("users")
    # The listing completed: whatever was not seen is gone from Cognito.
    _remove_unseen_users(ctx, seen, horizon)


class BatchWriter:
    """Writes the user batches (upsert and audit events, one transaction each).

    On PostgreSQL outside a transaction (a worker's or command's pull, not a test's atomic
    block) the writes run on a second thread with its own connection, one batch at a time:
    while PostgreSQL indexes batch N this thread maps and hashes batch N+1 (psycopg waits
    without the GIL). Results (row ids for the removal bitmap, counts) are taken back on
    this thread; a failed write is raised here at the next batch or at the end. Elsewhere
    each batch is written in place.
    """

    def __init__(self, ctx: PullContext, seen: IdBitmap) -> None:
        self.ctx = ctx
        self.seen = seen
        connection = connections[CognitoUser.objects.db]
        threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="pull-writer") if threaded else None
        self._pending: tuple[Future[list[int]], int, int] | None = None
        self._pending_names: frozenset[str] = frozenset()

    def _write(self, rows: list[tuple[dict[str, Any], str, bool]], events: list[dict[str, Any]]) -> list[int]:
        with transaction.atomic(using=CognitoUser.objects.db):
            ids = _upsert_users(self.ctx.pool, rows, batch_size=self.ctx.batch_size)
            self.ctx.write_events(events)
        return ids

    def _write_text(self, new: str, changed: str, events: str) -> list[int]:
        # On the writer thread: nothing left but sending text and waiting for PostgreSQL
        # (psycopg releases the GIL while it waits), so the pull's thread keeps mapping.
        with transaction.atomic(using=CognitoUser.objects.db):
            ids = _write_user_text(new, changed)
            audit.copy_write(events)
        return ids

    def _done(self, ids: list[int], created: int, updated: int) -> None:
        for pk in ids:
            self.seen.add(pk)
        self.ctx.users.created += created
        self.ctx.users.updated += updated
        _refresh_planner_statistics(self.ctx)

    def submit(
        self, rows: list[tuple[dict[str, Any], str, bool]], events: list[dict[str, Any]], *, created: int, updated: int
    ) -> None:
        if self._executor is None:
            self._done(self._write(rows, events), created, updated)
            return
        # The COPY text is built here, on the pull's thread, before the batch in flight is
        # waited for: the writer thread then only sends it, and PostgreSQL is kept busy.
        new, changed = _user_copy_text(self.ctx.pool, rows)
        text = self.ctx.events_text(events)
        self.wait()
        self._pending = (self._executor.submit(self._write_text, new, changed, text), created, updated)
        self._pending_names = frozenset(fields["username"] for fields, *_ in rows)

    def wait(self) -> None:
        """Apply the result of the batch in flight (raising its error), if any."""
        pending, self._pending, self._pending_names = self._pending, None, frozenset()
        if pending is not None:
            future, created, updated = pending
            self._done(future.result(), created, updated)

    def wait_for(self, usernames: Iterable[str]) -> None:
        """Wait for the batch in flight if it writes any of these users (so a SELECT sees it)."""
        if self._pending_names and not self._pending_names.isdisjoint(usernames):
            self.wait()

    def _progress_after_failure(self, created: int, updated: int) -> None:
        try:
            self.ctx.users.created += created
            self.ctx.users.updated += updated
            self.ctx.report("users")
        except Exception:  # noqa: BLE001 - the pull's own error is the one to raise
            logger.exception("could not record the progress of %s", self.ctx.pool.pool_id)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if self._executor is None:
            return
        try:
            if exc_type is None:
                self.wait()
            elif self._pending is not None:
                # The pull already failed: let the batch in flight end (commit or roll back), keep the
                # first error, and record the progress of a batch that committed.
                future, created, updated = self._pending
                self._pending = None
                if future.exception() is None:
                    self._progress_after_failure(created, updated)
        finally:
            self._executor.submit(_close_thread_connection).result()
            self._executor.shutdown()


def _close_thread_connection() -> None:
    connections[CognitoUser.objects.db].close()  # resolved on the calling (writer) thread: its own connection


def _apply_user_batch(ctx: PullContext, records: list[dict[str, Any]], seen: IdBitmap, writer: BatchWriter) -> None:
    """Map, hash and compare a batch; upsert what is new or changed, with its audit events."""
    incoming: dict[str, dict[str, Any]] = {}
    for record in records:
        fields = user_fields(record)
        incoming[fields["username"]] = fields
    ctx.seen += len(incoming)
    writer.wait_for(incoming)
    existing = _stored_hashes(ctx.pool, list(incoming))
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
    current_rows = _current_rows(changed) if changed else {}
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
                    "action": "created",
                    "object_type": "user",
                    "object_id": username,
                    "object_repr": fields["email"] or username,
                    "changes": user_created_changes(fields),
                    "detail": {"sub": fields["sub"]},
                }
            )
            created += 1
            continue
        current = current_rows.get(username)
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
                    "action": "updated",
                    "object_type": "user",
                    "object_id": username,
                    "object_repr": fields["email"] or username,
                    "changes": changes,
                    "detail": {"sub": fields["sub"]},
                }
            )
    if rows:
        writer.submit(rows, events, created=created, updated=updated)


def _stored_hashes(pool: UserPool, usernames: list[str]) -> dict[str, tuple[int, str]]:
    """{username: (id, content_hash)} of the stored rows among these usernames.

    On PostgreSQL one array parameter (`= ANY(%s)`) instead of Django's `IN (%s, …)`:
    psycopg's client-side binding would quote and splice 500 parameters into the SQL
    on every batch.
    """
    connection = connections[CognitoUser.objects.db]
    if connection.vendor != "postgresql":
        rows = CognitoUser.objects.filter(pool=pool, username__in=usernames).values_list(
            "username", "id", "content_hash"
        )
    else:
        quote = connection.ops.quote_name
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {quote('username')}, {quote('id')}, {quote('content_hash')} "  # noqa: S608
                f"FROM {quote(CognitoUser._meta.db_table)} "
                f"WHERE {quote('pool_id')} = %s AND {quote('username')} = ANY(%s)",
                [pool.pk, usernames],
            )
            rows = cursor.fetchall()
    return {username: (pk, stored_hash) for username, pk, stored_hash in rows}


def _current_rows(ids: list[int]) -> dict[str, dict[str, Any]]:
    """The stored `USER_FIELDS` of these rows by username, as `user_fields` makes them.

    On PostgreSQL through a cursor with psycopg's own C loaders for timestamptz and jsonb
    (orjson): Django's loaders convert each datetime and JSON value in Python, which cost
    more than the rest of a changed user's pipeline.
    """
    connection = connections[CognitoUser.objects.db]
    if connection.vendor != "postgresql":
        return {row["username"]: row for row in CognitoUser.objects.filter(id__in=ids).values(*USER_FIELDS)}
    from psycopg.types.datetime import TimestamptzLoader
    from psycopg.types.json import set_json_loads

    quote = connection.ops.quote_name
    columns = ", ".join(quote(CognitoUser._meta.get_field(name).column) for name in USER_FIELDS)
    with connection.cursor() as cursor:
        raw = cursor.cursor  # this cursor's own adapters: the connection's stay Django's
        raw.adapters.register_loader("timestamptz", TimestamptzLoader)
        set_json_loads(orjson.loads, raw)
        cursor.execute(
            f"SELECT {columns} FROM {quote(CognitoUser._meta.db_table)} WHERE {quote('id')} = ANY(%s)",  # noqa: S608
            [ids],
        )
        index = USER_FIELDS.index("username")
        return {row[index]: dict(zip(USER_FIELDS, row, strict=True)) for row in cursor.fetchall()}


def _refresh_planner_statistics(ctx: PullContext) -> None:
    """ANALYZE the user table each time a pull has doubled what it inserted (from 5,000 on).

    Each batch looks its users up by (pool, username). A first pull of a big pool grows
    the table far faster than autovacuum re-plans it; with statistics from an empty table
    PostgreSQL reads the lookups through the pool index and filters the whole pool, so
    every batch would cost more than the last. A handful of ANALYZEs (log2 of the pool's
    size, each a sample of a few thousand rows) keep every lookup on the unique index.
    """
    connection = connections[CognitoUser.objects.db]
    if connection.vendor != "postgresql" or ctx.users.created < max(5_000, 2 * ctx.analyzed_at):
        return
    quote = connection.ops.quote_name
    # Only the lookup's columns: the jsonb and text columns' statistics cost most and the lookup needs none.
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {quote(CognitoUser._meta.db_table)} ({quote('pool_id')}, {quote('username')})")
    ctx.analyzed_at = ctx.users.created


def _json_text(value: Any) -> str:
    try:
        return orjson.dumps(value).decode()
    except TypeError:  # orjson.JSONEncodeError: e.g. a lone surrogate, which json escapes
        return json.dumps(value, ensure_ascii=False)


@functools.cache
def _user_copy_layout() -> tuple[list[str], tuple[str, ...], tuple[str, ...], tuple[Any, ...]]:
    """COPY columns of the user upsert: plain mapped fields, JSON mapped fields, content_hash,
    pool_id, then the local bookkeeping columns at their defaults (inserts only)."""
    plain = tuple(
        name for name in USER_FIELDS if not isinstance(CognitoUser._meta.get_field(name), models.JSONField)
    )
    as_json = tuple(name for name in USER_FIELDS if name not in plain)
    mapped = {*USER_FIELDS, "content_hash", "pool"}
    rest = [f for f in CognitoUser._meta.concrete_fields if not f.primary_key and f.name not in mapped]
    columns = [
        *(CognitoUser._meta.get_field(name).column for name in (*plain, *as_json, "content_hash", "pool")),
        *(f.column for f in rest),
    ]
    return columns, plain, as_json, tuple(f.get_default() for f in rest)


def _upsert_users(pool: UserPool, rows: list[tuple[dict[str, Any], str, bool]], *, batch_size: int) -> list[int]:
    """Insert new and update changed rows (mapped fields, content hash); the pks of the changed ones.

    Each row is (fields, content hash, new?). A row an operator created meanwhile is
    updated rather than failing the batch. The local bookkeeping columns (is_test_user,
    test_user_expires_at) are not updated, so a pull never resets them. On PostgreSQL the
    rows travel as COPY text (`_user_copy_text`, then `_write_user_text`); elsewhere by
    `bulk_create(update_conflicts=True)`.
    """
    connection = connections[CognitoUser.objects.db]
    if connection.vendor != "postgresql":
        objs = [CognitoUser(pool=pool, content_hash=content, **fields) for fields, content, _ in rows]
        CognitoUser.objects.bulk_create(
            objs,
            batch_size=batch_size,
            update_conflicts=True,
            unique_fields=["pool", "username"],
            update_fields=_USER_UPDATE_FIELDS,
        )
        return [obj.pk for obj in objs if obj.pk is not None]
    return _write_user_text(*_user_copy_text(pool, rows))


def _user_copy_text(pool: UserPool, rows: list[tuple[dict[str, Any], str, bool]]) -> tuple[str, str]:
    """The COPY text of a batch's new rows and of its changed rows (PostgreSQL)."""
    _, plain, as_json, defaults = _user_copy_layout()
    get_plain = operator.itemgetter(*plain)
    field, text = pgcopy.field, pgcopy.text
    # The columns every row shares (pool, bookkeeping defaults), as COPY text once.
    tail = "\t" + "\t".join(field(value) for value in (pool.pk, *defaults)) + "\n"
    new: list[str] = []
    changed: list[str] = []
    for fields, content, is_new in rows:
        line = (
            "\t".join(
                [*[field(value) for value in get_plain(fields)], *[text(_json_text(fields[name])) for name in as_json]]
            )
            + f"\t{content}{tail}"
        )
        (new if is_new else changed).append(line)
    return "".join(new), "".join(changed)


def _write_user_text(new: str, changed: str) -> list[int]:
    """Write `_user_copy_text`'s rows; the pks of the changed ones (PostgreSQL).

    New rows go by COPY straight into the table; changed ones into a temporary table and
    on by INSERT … ON CONFLICT, so a row an operator created meanwhile is updated.
    """
    connection = connections[CognitoUser.objects.db]
    column_names, *_ = _user_copy_layout()
    update = {CognitoUser._meta.get_field(name).column for name in _USER_UPDATE_FIELDS}
    quote = connection.ops.quote_name
    table = quote(CognitoUser._meta.db_table)
    columns = ", ".join(quote(c) for c in column_names)
    # Named after its columns: a connection kept across a migration never reuses a stale one.
    stage = "directory_pull_stage_" + hashlib.md5(columns.encode(), usedforsecurity=False).hexdigest()[:12]

    def copy_text(target: str, payload: str) -> None:
        # Django wraps execute()'s errors but not copy()'s: wrap them too (IntegrityError below).
        with connection.wrap_database_errors, connection.cursor() as cursor, cursor.copy(
            f"COPY {target} ({columns}) FROM STDIN"
        ) as copy:
            copy.write(payload)

    if new:
        # Users the batch's SELECT did not find go straight into the table (no staging, no
        # conflict arbitration). Their ids need not come back: they are above the pull's
        # removal horizon. One an operator created meanwhile fails the COPY (unique
        # constraint) and the whole batch takes the upsert path instead.
        try:
            with transaction.atomic(using=connection.alias):
                copy_text(table, new)
            new = ""
        except IntegrityError:
            pass
    if not new and not changed:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "  # noqa: S608
            f"AS SELECT {columns} FROM {table} WITH NO DATA; TRUNCATE {stage}"
        )
        copy_text(stage, new + changed)
        assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in sorted(update))
        cursor.execute(
            f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} "  # noqa: S608
            f"ON CONFLICT ({quote('pool_id')}, {quote('username')}) DO UPDATE SET {assignments} "
            f"RETURNING {quote('id')}"
        )
        return [pk for (pk,) in cursor.fetchall()]


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
                        action="deleted",
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
            for batch in _batched_pages(ctx, pages):
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
        ctx.write_events([_membership_event(ctx, group, users[m.user_id], "group_added") for m in new])
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
            ctx.write_events([_membership_event(ctx, group, username, "group_removed") for _, username in batch])
        ctx.memberships.removed += len(batch)


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
