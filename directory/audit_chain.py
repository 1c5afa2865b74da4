"""The audit log's hash chain: each event's digest, serialised appends, and the streamed verification.

Every AuditEvent carries `prev_hash` (the `hash` of the event before it in id order, or
`GENESIS` for the first) and `hash` = SHA-256(prev_hash ‖ SHA-256(canonical content)).
`AuditChainHead` holds the newest link, moved on in the same transaction as each append, so
a log whose tail was cut no longer reaches it. Appends are serialised: on PostgreSQL by an
advisory lock held until the transaction ends, on SQLite by its IMMEDIATE transactions (one
writer at a time), so web, workers and a pull's writer thread never fork the chain.
`audit.py` (the only writer) calls `lock_head`, `link` and `advance_head`; `verify` walks the
log a chunk at a time and names the first broken link.

The content hashed is what the database gives back, not what was sent: PostgreSQL's jsonb
rewrites numbers (`1e+16` becomes `10000000000000000`, `-0.0` becomes `0.0`), so JSON is hashed
as sorted-key orjson of its parsed value, with those numbers normalised the way jsonb does.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from .models import AuditChainHead, AuditEvent, AuditVerification

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
# The key of the PostgreSQL advisory lock that serialises appends ("auditcha"): a fixed number
# nothing else in the database uses.
LOCK_KEY = 0x6175646974636861

# The numbers jsonb gives back as others: an integral float that orjson writes with an exponent
# (1e+16 and up: jsonb returns an integer) and a negative zero. In compact orjson output a number
# follows `:`, `[` or `,`; text with neither needs no normalising. A string that merely looks like
# one costs a walk, never a different result. (A fractional float, 1e-7, comes back as itself.)
_NUMBER_HAZARD = re.compile(rb"[:\[,]-?[0-9]+(?:\.[0-9]+)?e\+|[:\[,]-0\.0[,\]}]")


def _needs_normalising(out: bytes) -> bool:
    # Two substring tests first: the regex costs more than the rest of an event's canonical form.
    return (b"e+" in out or b"-0.0" in out) and _NUMBER_HAZARD.search(out) is not None


# Canonical content -----------------------------------------------------------------------------


def _jsonb_number(value: float) -> float | int:
    # jsonb keeps a number's decimal text: an integral float printed with an exponent comes back
    # as an integer (its decimal value, not the binary one), and -0.0 as 0.0.
    if value == 0:
        return 0.0
    if value.is_integer() and abs(value) >= 1e16:
        return int(Decimal(repr(value)))
    return value


def _normalised(value: Any) -> Any:
    kind = type(value)
    if kind is float:
        return _jsonb_number(value)
    if kind is dict:
        return {key: _normalised(item) for key, item in value.items()}
    if kind is list:
        return [_normalised(item) for item in value]
    return value


def _dumps(value: Any) -> bytes:
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: a lone surrogate, an integer past 64 bits
        return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def parse(text: str | bytes) -> Any:
    """JSON text as stored, parsed the one way both sides of the chain parse it."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN / Infinity, which json writes and orjson refuses
        return json.loads(text)


def canonical(value: Any) -> bytes:
    """A parsed JSON value as the chain hashes it: sorted-key orjson, numbers as jsonb keeps them."""
    out = _dumps(value)
    if _needs_normalising(out):
        out = _dumps(_normalised(value))
    return out


def canonical_text(text: str | bytes) -> bytes:
    """`canonical` of stored JSON text."""
    return canonical(parse(text))


def canonical_of(value: Any) -> bytes:
    """`canonical_text(json.dumps(value))` for a value about to be stored by Django's JSONField,
    in one orjson call when the value allows it (same bytes: orjson re-reads its own output exactly)."""
    try:
        out = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # orjson.JSONEncodeError: a non-string key, a lone surrogate, a big integer
        return canonical_text(json.dumps(value))
    return canonical_of_own(out)


def canonical_of_own(out: bytes) -> bytes:
    """`canonical_text` of orjson's own sorted-key output: the text itself unless a number needs normalising."""
    return canonical(orjson.loads(out)) if _needs_normalising(out) else out


def instant(value: dt.datetime | str) -> str:
    """A timestamp as the chain hashes it: UTC, microseconds, whatever form the database returns."""
    if isinstance(value, str):  # SQLite without a converter for the column
        value = parse_datetime(value)
    if value.tzinfo is None:  # SQLite stores UTC without an offset
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def content_digest(
    *,
    created_at: str,
    actor: str,
    source: str,
    action: str,
    object_type: str,
    object_id: str,
    object_repr: str,
    pool_id: str,
    outcome: str,
    correlation_id: str,
    changes: bytes,
    detail: bytes,
) -> bytes:
    """SHA-256 of an event's content; `created_at` from `instant`, the JSON from `canonical`."""
    return hashlib.sha256(
        orjson.dumps(
            [
                created_at, str(actor), str(source), str(action), str(object_type), str(object_id),
                str(object_repr), str(pool_id), str(outcome), str(correlation_id),
                orjson.Fragment(changes), orjson.Fragment(detail),
            ]
        )
    ).digest()


def event_digest(event: AuditEvent) -> bytes:
    """`content_digest` of an unsaved AuditEvent, as the database will give it back."""
    return content_digest(
        created_at=instant(event.created_at),
        actor=event.actor,
        source=event.source,
        action=event.action,
        object_type=event.object_type,
        object_id=event.object_id,
        object_repr=event.object_repr,
        pool_id=event.pool_id,
        outcome=event.outcome,
        correlation_id=event.correlation_id,
        changes=canonical_of(event.changes),
        detail=canonical_of(event.detail),
    )


def link(prev_hash: str, digest: bytes) -> str:
    """An event's `hash`: SHA-256 of the previous event's hash (hex) and its content digest."""
    return hashlib.sha256(prev_hash.encode("ascii") + digest).hexdigest()


# Appending -------------------------------------------------------------------------------------


def _quoted(connection: BaseDatabaseWrapper) -> tuple[str, str]:
    quote = connection.ops.quote_name
    return quote(AuditEvent._meta.db_table), quote(AuditChainHead._meta.db_table)


def lock_head(connection: BaseDatabaseWrapper) -> str:
    """Take the right to append (until the transaction ends) and return the newest link's hash.

    Call inside a transaction. On PostgreSQL the advisory lock is taken before the head is
    read, by a statement of its own, so the read sees what the previous holder committed.
    """
    if not connection.in_atomic_block:
        raise RuntimeError("the audit chain is extended only inside a transaction")
    _, head = _quoted(connection)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
        cursor.execute(f"SELECT last_hash FROM {head} WHERE id = 1")  # noqa: S608 - quoted table name
        row = cursor.fetchone()
    return row[0] if row else GENESIS


def advance_head(connection: BaseDatabaseWrapper, last_hash: str) -> None:
    """Point the head at the newest event (the highest id: appends hold the lock) and its hash."""
    events, head = _quoted(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {head} (id, last_event_id, last_hash) VALUES (1, (SELECT MAX(id) FROM {events}), %s) "  # noqa: S608
            "ON CONFLICT (id) DO UPDATE SET last_event_id = excluded.last_event_id, last_hash = excluded.last_hash",
            [last_hash],
        )


# Reading the log -------------------------------------------------------------------------------

_COLUMNS = (
    "id", "created_at", "actor", "source", "action", "object_type", "object_id", "object_repr", "pool_id",
    "outcome", "correlation_id", "changes", "detail", "prev_hash", "hash",
)


def _rows(connection: BaseDatabaseWrapper, *, through: int, chunk_size: int) -> Iterator[tuple[Any, ...]]:
    """The log's rows up to `through`, in id order, `chunk_size` at a time (keyset pages: memory
    stays flat however long the log, and no transaction is held open)."""
    quote = connection.ops.quote_name
    as_text = "::text" if connection.vendor == "postgresql" else ""
    columns = ", ".join(
        f"{quote(name)}{as_text}" if name in ("changes", "detail") else quote(name) for name in _COLUMNS
    )
    events, _ = _quoted(connection)
    after = 0
    while after < through:
        # No upper bound in the query: `id > n ORDER BY id LIMIT k` is an index scan that stops
        # after k rows whatever the statistics say; a range can be planned as a scan of the whole
        # range, its JSON turned to text, then sorted.
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT {columns} FROM {events} WHERE id > %s ORDER BY id LIMIT %s",  # noqa: S608
                [after, chunk_size],
            )
            rows = cursor.fetchall()
        if not rows:
            return
        for row in rows:
            if row[0] > through:
                return
            yield row
        after = rows[-1][0]


def _row_digest(row: tuple[Any, ...]) -> bytes:
    (_, created_at, actor, source, action, object_type, object_id, object_repr, pool_id, outcome,
     correlation_id, changes, detail, _, _) = row
    return content_digest(
        created_at=instant(created_at), actor=actor, source=source, action=action, object_type=object_type,
        object_id=object_id, object_repr=object_repr, pool_id=pool_id, outcome=outcome,
        correlation_id=correlation_id, changes=canonical_text(changes), detail=canonical_text(detail),
    )


# Verifying -------------------------------------------------------------------------------------


@dataclass
class Report:
    """What a walk of the chain found: `ok`, or the first broken link and what differs."""

    ok: bool = True
    events: int = 0
    last_event_id: int | None = None
    last_hash: str = ""
    broken_event_id: int | None = None
    problem: str = ""

    def broken(self, event_id: int | None, problem: str) -> Report:
        self.ok, self.broken_event_id, self.problem = False, event_id, problem
        return self


def _missing_ids(before: int | None, after: int) -> str:
    first = (before or 0) + 1
    if first >= after:
        return ""
    return f" (ids {first}–{after - 1} are not in the log)" if first < after - 1 else f" (id {first} is not in the log)"


def verify(*, using: str | None = None, chunk_size: int = 2000) -> Report:
    """Walk the audit chain in id order and report the first broken link. Reads only.

    Checks, row by row, that `prev_hash` is the previous row's `hash` (a removed or inserted row
    breaks this) and that `hash` matches the row's content (an edited row breaks this); then that
    the log reaches the chain head (a cut tail does not), and that the newest event of the last
    successful verification is still there with the hash it had. Events appended while it runs
    are left to the next walk.
    """
    using = using or AuditEvent.objects.db
    connection = connections[using]
    report = Report()
    head = AuditChainHead.objects.using(using).filter(pk=1).first()
    checkpoint = (
        AuditVerification.objects.using(using).filter(ok=True, last_event_id__isnull=False).order_by("-id").first()
    )
    if head is None:
        newest = AuditEvent.objects.using(using).order_by("-id").values_list("id", flat=True).first()
        if newest is not None:
            return report.broken(newest, "the chain head is missing, though the log holds events")
        if checkpoint is not None:
            return report.broken(
                checkpoint.last_event_id,
                f"the log is empty, but it held row {checkpoint.last_event_id} when verified on "
                f"{checkpoint.started_at:%Y-%m-%d %H:%M} UTC",
            )
        return report
    prev_hash, prev_id, seen_checkpoint = GENESIS, None, False
    for row in _rows(connection, through=head.last_event_id, chunk_size=chunk_size):
        event_id, stored_prev, stored_hash = row[0], row[-2], row[-1]
        if stored_prev != prev_hash:
            where = f"row {prev_id}'s hash" if prev_id is not None else "the chain's start"
            return report.broken(
                event_id,
                f"row {event_id}: its previous hash is not {where}: a row before it was removed, inserted "
                f"or rewritten{_missing_ids(prev_id, event_id)}",
            )
        if link(stored_prev, _row_digest(row)) != stored_hash:
            return report.broken(
                event_id,
                f"row {event_id}: its content does not match its hash: the row was changed after it was written",
            )
        if checkpoint is not None and event_id == checkpoint.last_event_id:
            seen_checkpoint = True
            if stored_hash != checkpoint.last_hash:
                return report.broken(
                    event_id,
                    f"row {event_id}: its hash is not the one verified on {checkpoint.started_at:%Y-%m-%d %H:%M} UTC: "
                    "the chain was rewritten from this row on or before it",
                )
        prev_hash, prev_id = stored_hash, event_id
        report.events += 1
    report.last_event_id, report.last_hash = prev_id, prev_hash
    if prev_id != head.last_event_id:
        ends, lost = ("is empty", "its rows") if prev_id is None else (f"ends at row {prev_id}", "the rows after it")
        return report.broken(
            head.last_event_id, f"the log {ends}, but the chain head is row {head.last_event_id}: {lost} were removed"
        )
    if prev_hash != head.last_hash:
        return report.broken(prev_id, f"row {prev_id}: its hash is not the chain head's: the row was rewritten")
    if checkpoint is not None and not seen_checkpoint:
        return report.broken(
            checkpoint.last_event_id,
            f"row {checkpoint.last_event_id}, verified on {checkpoint.started_at:%Y-%m-%d %H:%M} UTC, is missing",
        )
    return report


def verify_and_record(*, source: str, using: str | None = None, chunk_size: int = 2000) -> AuditVerification:
    """`verify`, then store its outcome (an AuditVerification row the admin warns from)."""
    started = timezone.now()
    report = verify(using=using, chunk_size=chunk_size)
    if not report.ok:
        logger.error("audit chain broken: %s", report.problem)
    return AuditVerification.objects.using(using or AuditVerification.objects.db).create(
        started_at=started,
        finished_at=timezone.now(),
        source=source,
        ok=report.ok,
        events=report.events,
        last_event_id=report.last_event_id,
        last_hash=report.last_hash,
        broken_event_id=report.broken_event_id,
        problem=report.problem,
    )


# Chaining rows written before the chain existed --------------------------------------------------


def chain_existing(connection: BaseDatabaseWrapper, *, chunk_size: int = 2000) -> int:
    """Give every row its `prev_hash` and `hash` in id order, and set the head; the number of rows.

    For the migration that adds the chain (the caller lifts the append-only guard); it reads the
    rows back exactly as `verify` does, so the chain it builds verifies.
    """
    events, head = _quoted(connection)
    quote = connection.ops.quote_name
    through = AuditEvent.objects.using(connection.alias).order_by("-id").values_list("id", flat=True).first()
    if through is None:
        return 0
    prev_hash, count, updates = GENESIS, 0, []
    for row in _rows(connection, through=through, chunk_size=chunk_size):
        prev_hash_of_row, prev_hash = prev_hash, link(prev_hash, _row_digest(row))
        updates.append((prev_hash_of_row, prev_hash, row[0]))
        count += 1
        if len(updates) >= chunk_size:
            _write_links(connection, events, quote, updates)
            updates = []
    _write_links(connection, events, quote, updates)
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {head}")  # noqa: S608 - quoted table name
        cursor.execute(
            f"INSERT INTO {head} (id, last_event_id, last_hash) VALUES (1, %s, %s)",  # noqa: S608
            [through, prev_hash],
        )
    return count


def _write_links(connection: BaseDatabaseWrapper, events: str, quote: Any, updates: list[tuple[str, str, int]]) -> None:
    if updates:
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {events} SET {quote('prev_hash')} = %s, {quote('hash')} = %s WHERE id = %s",  # noqa: S608
                updates,
            )
