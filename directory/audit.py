"""The only writer of AuditEvent: builds rows (secrets scrubbed) and saves them one by one or in bulk,
each append extending the hash chain (`audit_chain`) under its lock."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson
from django.db import connections, transaction
from django.utils import timezone

from . import audit_chain, pgcopy
from .mapping import NOT_SECRET_CONTAINERS, SECRET_KEYS, jsonable, without_secrets
from .models import AuditEvent

Source = AuditEvent.Source
Outcome = AuditEvent.Outcome
Action = AuditEvent.Action


def build(
    *,
    action: str,
    object_type: str,
    object_id: str,
    source: str,
    actor: str = "",
    object_repr: str = "",
    pool_id: str = "",
    changes: Mapping[str, Any] | None = None,
    detail: Mapping[str, Any] | None = None,
    outcome: str = Outcome.OK,
    correlation_id: str = "",
) -> AuditEvent:
    """An unsaved AuditEvent; `changes` is {field: [before, after]}."""
    return AuditEvent(
        created_at=timezone.now(),
        action=action,
        object_type=object_type,
        object_id=str(object_id)[:256],
        object_repr=str(object_repr)[:256],
        source=source,
        actor=actor or "",
        pool_id=pool_id or "",
        changes=jsonable(without_secrets(dict(changes or {}))),
        detail=jsonable(without_secrets(dict(detail or {}))),
        outcome=outcome,
        correlation_id=str(correlation_id or ""),
    )


def record(**kwargs: Any) -> AuditEvent:
    """Write one audit event (inside the caller's transaction, if any), extending the chain."""
    event = build(**kwargs)
    record_many([event])
    return event


def record_many(events: Sequence[AuditEvent], *, batch_size: int = 1000) -> int:
    """Write many audit events with one INSERT per batch, extending the chain.

    The chain's lock is held until the caller's transaction ends (or this one's, outside one),
    so appends from other connections wait instead of forking the chain.
    """
    if not events:
        return 0
    digests = [audit_chain.event_digest(event) for event in events]
    using = AuditEvent.objects.db
    with transaction.atomic(using=using, savepoint=False):
        connection = connections[using]
        prev = audit_chain.lock_head(connection)
        for event, digest in zip(events, digests, strict=True):
            event.prev_hash, event.hash = prev, audit_chain.link(prev, digest)
            prev = event.hash
        if len(events) == 1:
            events[0].save(force_insert=True, using=using)
        else:
            AuditEvent.objects.using(using).bulk_create(events, batch_size=batch_size)
        audit_chain.advance_head(connection, prev)
    return len(events)


# Columns written by `copy_many`, in COPY order (the id is the table's identity); the chain's two
# columns are added to each line when it is written.
_COPY_COLUMNS = (
    "created_at",
    "actor",
    "source",
    "action",
    "object_type",
    "object_id",
    "object_repr",
    "pool_id",
    "changes",
    "detail",
    "outcome",
    "correlation_id",
    "prev_hash",
    "hash",
)


# Values that cannot hold a (secret) key.
_SCALARS = frozenset({str, bool, int, float, type(None), dt.datetime, dt.date})


def _json_default(value: Any) -> Any:
    # Called by the JSON writers only for what is not a JSON type already: datetimes (as
    # `jsonable` writes them: ISO 8601 in UTC), mappings, bytes.
    if type(value) is dt.datetime and value.tzinfo is dt.UTC:
        return value.isoformat()
    if isinstance(value, Mapping):
        return dict(value)
    converted = jsonable(value)
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return converted


# `"Key":` for each secret key: JSON text without any of them holds no secret-bearing key at any depth.
_SECRET_KEY_IN_JSON = re.compile(
    rb'"(?:' + b"|".join(re.escape(key.encode()) for key in sorted(SECRET_KEYS)) + rb')":'
)


_EMPTY = ("{}", audit_chain.canonical({}))


def _scrubbed_json(value: Mapping[str, Any] | None) -> str:
    """`jsonable(without_secrets(value))` as JSON text."""
    return _scrubbed(value)[0]


def _scrubbed(value: Mapping[str, Any] | None) -> tuple[str, bytes]:
    """`jsonable(without_secrets(value))` as JSON text, and its `audit_chain.canonical` bytes.

    The common case (a pull's changes: no secret key anywhere) is one orjson call (sorted keys,
    so the text is its own canonical form) and one scan of its output for `"<secret key>":`;
    only text that has one (or a value orjson refuses) takes the walk through `without_secrets`.
    """
    if not value:
        return _EMPTY
    try:
        text = orjson.dumps(
            value, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SORT_KEYS
        )
    except TypeError:  # orjson.JSONEncodeError: a non-str key, a lone surrogate, a huge int
        text = None
    if text is not None and _SECRET_KEY_IN_JSON.search(text) is None:
        return text.decode(), audit_chain.canonical_of_own(text)
    clean = {}
    for key, item in value.items():
        if key in SECRET_KEYS:
            continue
        if key not in NOT_SECRET_CONTAINERS and type(item) not in _SCALARS:
            item = without_secrets(item)
        clean[key] = item
    slow = json.dumps(clean, ensure_ascii=False, default=_json_default)
    return slow, audit_chain.canonical_text(slow)


def copy_many(
    rows: Sequence[Mapping[str, Any]],
    *,
    source: str,
    actor: str = "",
    pool_id: str = "",
    correlation_id: str = "",
    outcome: str = Outcome.OK,
) -> int:
    """Write many audit events given as dicts of `build`'s per-object arguments (action,
    object_type, object_id, object_repr, changes, detail), sharing the rest.

    The bulk path of a pull: on PostgreSQL one COPY, each value serialised once and no
    model instances; elsewhere `record_many` of `build`s. Same rows, same secret scrub.
    """
    if not rows:
        return 0
    shared = dict(source=source, actor=actor, pool_id=pool_id, correlation_id=correlation_id, outcome=outcome)
    if connections[AuditEvent.objects.db].vendor != "postgresql":
        return record_many([build(**{**shared, **row}) for row in rows])
    copy_write(copy_text(rows, **shared))
    return len(rows)


@dataclass
class AuditCopy:
    """`copy_text`'s rows: COPY lines without their chain columns, and each row's content digest."""

    lines: list[str] = field(default_factory=list)
    digests: list[bytes] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.lines)


def copy_text(
    rows: Sequence[Mapping[str, Any]],
    *,
    source: str,
    actor: str = "",
    pool_id: str = "",
    correlation_id: str = "",
    outcome: str = Outcome.OK,
) -> AuditCopy:
    """`copy_many`'s rows as PostgreSQL COPY text (secrets scrubbed) and content digests, for `copy_write`.

    Built apart from the writing so a pull can build it on one thread and write it on another;
    only the chain's links, which need the previous event's hash, wait for `copy_write`.
    """
    text = pgcopy.text
    digest = audit_chain.content_digest
    now = timezone.now()
    created_at = audit_chain.instant(now)
    actor, correlation_id, pool_id = actor or "", str(correlation_id or ""), pool_id or ""
    # The values all rows share, as COPY text once: created_at, actor, source / pool_id / correlation_id.
    head = f"{now.isoformat()}\t{text(actor)}\t{text(source)}\t"
    pool = text(pool_id)
    tail = f"\t{text(correlation_id)}"
    batch = AuditCopy()
    for row in rows:
        action, object_type = row["action"], row["object_type"]
        object_id, object_repr = str(row["object_id"])[:256], str(row.get("object_repr", ""))[:256]
        row_outcome = row.get("outcome", outcome)
        changes, changes_canonical = _scrubbed(row.get("changes"))
        detail, detail_canonical = _scrubbed(row.get("detail"))
        batch.lines.append(
            f"{head}{text(action)}\t{text(object_type)}\t{text(object_id)}\t{text(object_repr)}\t{pool}\t"
            f"{text(changes)}\t{text(detail)}\t{text(row_outcome)}{tail}"
        )
        batch.digests.append(
            digest(
                created_at=created_at, actor=actor, source=source, action=action, object_type=object_type,
                object_id=object_id, object_repr=object_repr, pool_id=pool_id, outcome=row_outcome,
                correlation_id=correlation_id, changes=changes_canonical, detail=detail_canonical,
            )
        )
    return batch


def copy_write(batch: AuditCopy) -> None:
    """Write `copy_text`'s rows, extending the chain, in the caller's transaction (PostgreSQL).

    The chain's lock is taken here and held until that transaction ends: a pull's writer
    thread calls this last in each batch's transaction, so the lock is held only for the COPY.
    """
    if not batch:
        return
    connection = connections[AuditEvent.objects.db]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(AuditEvent._meta.get_field(name).column) for name in _COPY_COLUMNS)
    link = audit_chain.link
    with transaction.atomic(using=connection.alias, savepoint=False):
        prev = audit_chain.lock_head(connection)
        lines = []
        for line, digest in zip(batch.lines, batch.digests, strict=True):
            current = link(prev, digest)
            lines.append(f"{line}\t{prev}\t{current}\n")
            prev = current
        with connection.cursor() as cursor, cursor.copy(
            f"COPY {quote(AuditEvent._meta.db_table)} ({columns}) FROM STDIN"
        ) as copy:
            copy.write("".join(lines))
        audit_chain.advance_head(connection, prev)


_maintenance = threading.local()


def sqlite_audit_locked() -> int:
    """Called by the SQLite triggers: 1 (refuse) unless this thread is in `unlocked()`."""
    return 0 if getattr(_maintenance, "active", False) else 1


@contextmanager
def unlocked() -> Iterator[None]:
    """Lifts the SQLite triggers' refusal on this thread's Django connections: for Django's test
    flush (PostgreSQL's is a TRUNCATE, which row triggers do not see) and the migration that
    chains the rows written before the chain existed. Any other client can drop a SQLite
    trigger anyway; the chain is what shows it."""
    _maintenance.active = True
    try:
        yield
    finally:
        _maintenance.active = False

