"""The only writer of AuditEvent: builds rows (secrets scrubbed) and saves them one by one or in bulk."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import orjson
from django.db import connections
from django.utils import timezone

from . import pgcopy
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
    """Write one audit event (inside the caller's transaction)."""
    event = build(**kwargs)
    event.save(force_insert=True)
    return event


def record_many(events: Sequence[AuditEvent], *, batch_size: int = 1000) -> int:
    """Write many audit events with one INSERT per batch."""
    if not events:
        return 0
    AuditEvent.objects.bulk_create(events, batch_size=batch_size)
    return len(events)


# Columns written by `copy_many`, in COPY order (the id is the table's identity).
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


def _scrubbed_json(value: Mapping[str, Any] | None) -> str:
    """`jsonable(without_secrets(value))` as JSON text.

    The common case (a pull's changes: no secret key anywhere) is one orjson call and one
    scan of its output for `"<secret key>":`; only text that has one (or a value orjson
    refuses) takes the walk through `without_secrets`.
    """
    if not value:
        return "{}"
    try:
        text = orjson.dumps(value, default=_json_default, option=orjson.OPT_PASSTHROUGH_DATETIME)
    except TypeError:  # orjson.JSONEncodeError: a non-str key, a lone surrogate, a huge int
        text = None
    if text is not None and _SECRET_KEY_IN_JSON.search(text) is None:
        return text.decode()
    clean = {}
    for key, item in value.items():
        if key in SECRET_KEYS:
            continue
        if key not in NOT_SECRET_CONTAINERS and type(item) not in _SCALARS:
            item = without_secrets(item)
        clean[key] = item
    return json.dumps(clean, ensure_ascii=False, default=_json_default)


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


def copy_text(
    rows: Sequence[Mapping[str, Any]],
    *,
    source: str,
    actor: str = "",
    pool_id: str = "",
    correlation_id: str = "",
    outcome: str = Outcome.OK,
) -> str:
    """`copy_many`'s rows as PostgreSQL COPY text (secrets scrubbed), for `copy_write`.

    Built apart from the writing so a pull can build it on one thread and write it on another.
    """
    text = pgcopy.text
    # The values all rows share, as COPY text once: created_at, actor, source / pool_id / correlation_id.
    head = f"{timezone.now().isoformat()}\t{text(actor or '')}\t{text(source)}\t"
    pool = text(pool_id or "")
    tail = f"\t{text(str(correlation_id or ''))}\n"
    return "".join(
        [
            f"{head}{text(row['action'])}\t{text(row['object_type'])}\t{text(str(row['object_id'])[:256])}\t"
            f"{text(str(row.get('object_repr', ''))[:256])}\t{pool}\t{text(_scrubbed_json(row.get('changes')))}\t"
            f"{text(_scrubbed_json(row.get('detail')))}\t{text(row.get('outcome', outcome))}{tail}"
            for row in rows
        ]
    )


def copy_write(payload: str) -> None:
    """Write `copy_text`'s rows, in the caller's transaction (PostgreSQL)."""
    if not payload:
        return
    connection = connections[AuditEvent.objects.db]
    quote = connection.ops.quote_name
    columns = ", ".join(quote(AuditEvent._meta.get_field(name).column) for name in _COPY_COLUMNS)
    with connection.cursor() as cursor, cursor.copy(
        f"COPY {quote(AuditEvent._meta.db_table)} ({columns}) FROM STDIN"
    ) as copy:
        copy.write(payload)


_maintenance = threading.local()


def sqlite_audit_locked() -> int:
    """Called by the SQLite triggers: 1 (refuse) unless this thread is in `test_flush()`."""
    return 0 if getattr(_maintenance, "active", False) else 1


@contextmanager
def test_flush() -> Iterator[None]:
    """Lets Django's test flush empty the table on SQLite (PostgreSQL's flush is a TRUNCATE,
    which the row triggers do not see). For the test suite only."""
    _maintenance.active = True
    try:
        yield
    finally:
        _maintenance.active = False
