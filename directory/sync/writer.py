"""The user table's bulk path for a pull: the batch reads, and the writes (PostgreSQL COPY).

A batch of users is looked up with one SELECT of their content hashes (`stored_hashes`), on a
reader thread while the pull hashes the batch; only the changed rows are read in full
(`current_rows`, or with the hashes, `stored_rows`, after a batch of mostly changed users). A
first import into an empty pool looks nothing up. New and changed rows are then written by
`upsert_users`: on PostgreSQL as COPY text built by hand (`directory.pgcopy`), new rows
straight into the table, changed ones by primary key; elsewhere by
`bulk_create(update_conflicts=True)`. `BatchWriter` writes each batch with its audit events
and its search backlog entry in one transaction; on PostgreSQL outside a transaction it does so
on writer threads with their own connections, up to COGNITO_SYNC_WRITERS batches at once, so
the database writes while the pull maps the next batch.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import operator
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import orjson
from django.conf import settings
from django.db import IntegrityError, connections, models, transaction
from psycopg.types.datetime import TimestamptzLoader
from psycopg.types.json import set_json_loads

from .. import audit, pgcopy, search_index
from ..mapping import USER_FIELDS
from ..models import CognitoUser, UserPool

logger = logging.getLogger(__name__)


class UserCounts(Protocol):
    created: int
    updated: int


class WriteContext(Protocol):
    """What the writer needs of a pull's context (sync.context.PullContext is one). Declared here so
    the writer does not import the pull that uses it."""

    pool: UserPool
    batch_size: int
    users: UserCounts
    analyzed_at: int
    empty_at_start: bool

    def write_events(self, events: list[dict[str, Any]]) -> None: ...

    def events_text(self, events: list[dict[str, Any]]) -> audit.AuditCopy: ...

    def report(self, phase: str) -> None: ...


class SeenIds(Protocol):
    """The pull's record of the row ids a listing saw (sync.partitions.IdBitmap is one)."""

    def add(self, row_id: int) -> None: ...

Callback = Callable[[], None] | None

# is_test_user / test_user_expires_at are local bookkeeping: an upsert never touches them.
_USER_UPDATE_FIELDS = [f for f in USER_FIELDS if f != "username"] + ["content_hash"]


# Reads --------------------------------------------------------------------------------------------


def stored_hashes(pool: UserPool, usernames: list[str]) -> dict[str, tuple[int, str]]:
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


def stored_rows(
    pool: UserPool, usernames: list[str]
) -> tuple[dict[str, tuple[int, str]], dict[str, dict[str, Any]]]:
    """`stored_hashes` and, in the same query, every stored row's `USER_FIELDS` as `current_rows`
    gives them: for a batch that is expected to hold mostly changed users, whose rows would be
    read next anyway (one query instead of two, and read while the batch is hashed)."""
    connection = connections[CognitoUser.objects.db]
    if connection.vendor != "postgresql":
        rows = CognitoUser.objects.filter(pool=pool, username__in=usernames).values("id", "content_hash", *USER_FIELDS)
        found = {row["username"]: row for row in rows}
        return ({name: (row.pop("id"), row.pop("content_hash")) for name, row in found.items()}, found)
    quote = connection.ops.quote_name
    columns = ", ".join(quote(CognitoUser._meta.get_field(name).column) for name in USER_FIELDS)
    with connection.cursor() as cursor:
        _fast_loaders(cursor)
        cursor.execute(
            f"SELECT {quote('id')}, {quote('content_hash')}, {columns} "  # noqa: S608
            f"FROM {quote(CognitoUser._meta.db_table)} "
            f"WHERE {quote('pool_id')} = %s AND {quote('username')} = ANY(%s)",
            [pool.pk, usernames],
        )
        index = USER_FIELDS.index("username")
        hashes: dict[str, tuple[int, str]] = {}
        full: dict[str, dict[str, Any]] = {}
        for pk, stored_hash, *values in cursor.fetchall():
            hashes[values[index]] = (pk, stored_hash)
            full[values[index]] = dict(zip(USER_FIELDS, values, strict=True))
        return hashes, full


def _fast_loaders(cursor: Any) -> None:
    """psycopg's own C loaders for timestamptz and jsonb (orjson) on this cursor only."""
    raw = cursor.cursor  # this cursor's own adapters: the connection's stay Django's
    raw.adapters.register_loader("timestamptz", TimestamptzLoader)
    set_json_loads(orjson.loads, raw)


def current_rows(ids: list[int]) -> dict[str, dict[str, Any]]:
    """The stored `USER_FIELDS` of these rows by username, as `user_fields` makes them.

    On PostgreSQL through a cursor with psycopg's own C loaders for timestamptz and jsonb
    (orjson): Django's loaders convert each datetime and JSON value in Python, which cost
    more than the rest of a changed user's pipeline.
    """
    connection = connections[CognitoUser.objects.db]
    if connection.vendor != "postgresql":
        return {row["username"]: row for row in CognitoUser.objects.filter(id__in=ids).values(*USER_FIELDS)}
    quote = connection.ops.quote_name
    columns = ", ".join(quote(CognitoUser._meta.get_field(name).column) for name in USER_FIELDS)
    with connection.cursor() as cursor:
        _fast_loaders(cursor)
        cursor.execute(
            f"SELECT {columns} FROM {quote(CognitoUser._meta.db_table)} WHERE {quote('id')} = ANY(%s)",  # noqa: S608
            [ids],
        )
        index = USER_FIELDS.index("username")
        return {row[index]: dict(zip(USER_FIELDS, row, strict=True)) for row in cursor.fetchall()}


# Writes -------------------------------------------------------------------------------------------


class BatchWriter:
    """Writes the user batches (upsert and audit events, one transaction each).

    On PostgreSQL outside a transaction (a worker's or command's pull, not a test's atomic
    block) the writes run on writer threads, each with its own connection, up to `writers`
    batches at once (COGNITO_SYNC_WRITERS): while PostgreSQL indexes batches N and N+1 on two
    backends, the pull's thread maps and hashes batch N+2 (psycopg waits without the GIL). A
    batch's users are written by no other batch in flight (a batch waits for one that holds any
    of its users, `wait_for`), so the order in which they commit does not matter; the audit
    chain's lock orders their events. Results (row ids for the removal bitmap, counts) are
    taken back on the pull's thread in submission order; a failed write is raised there at the
    next batch or at the end. Elsewhere each batch is written in place.
    """

    def __init__(self, ctx: WriteContext, seen: SeenIds, *, writers: int | None = None) -> None:
        self.ctx = ctx
        self.seen = seen
        connection = connections[CognitoUser.objects.db]
        threaded = connection.vendor == "postgresql" and not connection.in_atomic_block
        count = max(1, writers if writers is not None else settings.COGNITO_SYNC_WRITERS)
        # One single-thread executor per writer: each thread's connection is closed on that thread.
        self._executors = (
            [ThreadPoolExecutor(1, thread_name_prefix=f"pull-writer-{i}") for i in range(count)] if threaded else []
        )
        self._submitted = 0
        self._pending: deque[_InFlight] = deque()
        # The batches' reads (their stored hashes) run here while the pull's thread hashes the batch.
        self._reader = ThreadPoolExecutor(1, thread_name_prefix="pull-reader") if threaded else None

    def read(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Run a read of the user table on the reader thread (its own connection), or here when the
        writes are made in place (then the caller's transaction sees them)."""
        if self._reader is not None:
            return self._reader.submit(fn, *args)
        done: Future[Any] = Future()
        done.set_result(fn(*args))
        return done

    def _write(
        self, rows: list[tuple[dict[str, Any], str, bool]], events: list[dict[str, Any]], ids: Mapping[str, int]
    ) -> list[int]:
        queued = _search_queue_text(self.ctx.pool, rows)
        with transaction.atomic(using=CognitoUser.objects.db), _search_deferred(queued):
            written = upsert_users(self.ctx.pool, rows, batch_size=self.ctx.batch_size, ids=ids)
            self.ctx.write_events(events)
        return written

    def _write_text(self, text: tuple[str, str, str], events: audit.AuditCopy, queued: str) -> list[int]:
        # On a writer thread: nothing left but sending text and waiting for PostgreSQL
        # (psycopg releases the GIL while it waits), so the pull's thread keeps mapping.
        with transaction.atomic(using=CognitoUser.objects.db), _search_deferred(queued):
            written = _write_user_text(*text)
            audit.copy_write(events)
        return written

    def _done(self, ids: list[int], created: int, updated: int, on_commit: Callback) -> None:
        for pk in ids:
            self.seen.add(pk)
        self.ctx.users.created += created
        self.ctx.users.updated += updated
        if on_commit is not None:
            on_commit()
        _refresh_planner_statistics(self.ctx)

    def submit(
        self,
        rows: list[tuple[dict[str, Any], str, bool]],
        events: list[dict[str, Any]],
        *,
        created: int,
        updated: int,
        on_commit: Callback = None,
        ids: Mapping[str, int] | None = None,
    ) -> None:
        """Write a batch (here, or on a writer thread); `on_commit` is called on the pull's
        thread once the batch has committed. `ids`: the stored ids of its changed users."""
        if not self._executors:
            self._done(self._write(rows, events, ids or {}), created, updated, on_commit)
            return
        # The COPY text is built here, on the pull's thread, before a batch in flight is
        # waited for: the writer thread then only sends it, and PostgreSQL is kept busy.
        users_text = _user_copy_text(self.ctx.pool, rows, ids)
        text = self.ctx.events_text(events)
        queued = _search_queue_text(self.ctx.pool, rows)
        while len(self._pending) >= len(self._executors):
            self._take_oldest()
        executor = self._executors[self._submitted % len(self._executors)]
        self._submitted += 1
        future = executor.submit(self._write_text, users_text, text, queued)
        names = frozenset(fields["username"] for fields, *_ in rows)
        self._pending.append(_InFlight(future, created, updated, on_commit, names))

    def _take_oldest(self) -> None:
        batch = self._pending.popleft()
        self._done(batch.future.result(), batch.created, batch.updated, batch.on_commit)

    def wait(self) -> None:
        """Apply the results of the batches in flight (raising the first error), if any."""
        while self._pending:
            self._take_oldest()

    def wait_for(self, usernames: Iterable[str]) -> None:
        """Wait for the batches in flight up to the last that writes any of these users (so a
        SELECT sees it, and no two batches in flight write the same user)."""
        names = usernames if isinstance(usernames, set | frozenset | dict) else set(usernames)
        last = -1
        for i, batch in enumerate(self._pending):
            if not batch.names.isdisjoint(names):
                last = i
        for _ in range(last + 1):
            self._take_oldest()

    def _progress_after_failure(self, created: int, updated: int, on_commit: Callback) -> None:
        try:
            self.ctx.users.created += created
            self.ctx.users.updated += updated
            if on_commit is not None:
                on_commit()
            self.ctx.report("users")
        except Exception:  # noqa: BLE001 - the pull's own error is the one to raise
            logger.exception("could not record the progress of %s", self.ctx.pool.pool_id)

    def __enter__(self) -> BatchWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        if not self._executors:
            return
        try:
            if exc_type is None:
                self.wait()
            else:
                # The pull already failed: let the batches in flight end (commit or roll back), keep
                # the first error, and record the progress of those that committed.
                pending, self._pending = self._pending, deque()
                for batch in pending:
                    if batch.future.exception() is None:
                        self._progress_after_failure(batch.created, batch.updated, batch.on_commit)
        finally:
            # A write failed while the others were being waited for: let them end too, and record
            # the progress of those that committed.
            pending, self._pending = self._pending, deque()
            for batch in pending:
                if batch.future.exception() is None:
                    self._progress_after_failure(batch.created, batch.updated, batch.on_commit)
            for executor in [*self._executors, *([self._reader] if self._reader is not None else [])]:
                executor.submit(_close_thread_connection).result()
                executor.shutdown()


@dataclass
class _InFlight:
    """A batch on a writer thread: its result, what to credit once it commits, its users."""

    future: Future[list[int]]
    created: int
    updated: int
    on_commit: Callback
    names: frozenset[str]


def _search_queue_text(pool: UserPool, rows: list[tuple[dict[str, Any], str, bool]]) -> str:
    """The batch's users as search backlog entries (COPY text; empty where the search keeps no texts)."""
    if not search_index.enabled():
        return ""
    return search_index.queue_text(pool.pk, [fields["username"] for fields, *_ in rows])


@contextlib.contextmanager
def _search_deferred(queued: str) -> Iterator[None]:
    """Inside a batch's transaction: the trigger leaves its users' search texts alone, and they are
    queued for the catch-up after the pull (`directory.search_index`). Turned off again at the end,
    so that a caller's enclosing transaction (a test's) writes its own texts as usual."""
    connection = connections[CognitoUser.objects.db]
    if not search_index.enabled(connection.alias):
        yield
        return
    with connection.cursor() as cursor:
        search_index.defer(cursor, True)
    yield
    with connection.cursor() as cursor:
        search_index.queue(cursor, queued)
        search_index.defer(cursor, False)


def _close_thread_connection() -> None:
    connections[CognitoUser.objects.db].close()  # resolved on the calling (writer) thread: its own connection


def _refresh_planner_statistics(ctx: WriteContext) -> None:
    """ANALYZE the user table each time a pull has doubled what it inserted (from 5,000 on).

    Each batch looks its users up by (pool, username). A first pull of a big pool grows
    the table far faster than autovacuum re-plans it; with statistics from an empty table
    PostgreSQL reads the lookups through the pool index and filters the whole pool, so
    every batch would cost more than the last. A handful of ANALYZEs (log2 of the pool's
    size, each a sample of a few thousand rows) keep every lookup on the unique index.

    ANALYZE is the table owner's, and the app may connect as a role of its own: it calls
    `directory_analyze_users()` (migration 0008), which runs as the owner and analyzes only the
    lookup's columns (the jsonb and text columns' statistics cost most and the lookup needs none).
    """
    connection = connections[CognitoUser.objects.db]
    if connection.vendor != "postgresql" or ctx.users.created < max(5_000, 2 * ctx.analyzed_at):
        return
    if ctx.empty_at_start:
        return  # no batch looks its users up: one ANALYZE once the listing is over (`analyze_after_import`)
    with connection.cursor() as cursor:
        cursor.execute("SELECT directory_analyze_users()")
    ctx.analyzed_at = ctx.users.created


def analyze_after_import(ctx: WriteContext) -> None:
    """After a first import into an empty pool (whose batches looked nothing up): one ANALYZE for
    the next pulls' lookups and the search catch-up's, which would otherwise be planned as if the
    table were as small as before."""
    if connections[CognitoUser.objects.db].vendor != "postgresql" or ctx.users.created < 5_000:
        return
    with connections[CognitoUser.objects.db].cursor() as cursor:
        cursor.execute("SELECT directory_analyze_users()")
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


def upsert_users(
    pool: UserPool,
    rows: list[tuple[dict[str, Any], str, bool]],
    *,
    batch_size: int,
    ids: Mapping[str, int] | None = None,
) -> list[int]:
    """Insert new and update changed rows (mapped fields, content hash); the pks of the changed ones.

    Each row is (fields, content hash, new?); `ids` holds the stored ids of changed rows by
    username (their batch's lookup found them), which PostgreSQL then updates by primary key.
    A row an operator created meanwhile is updated rather than failing the batch. The local
    bookkeeping columns (is_test_user, test_user_expires_at) are not updated, so a pull never
    resets them. On PostgreSQL the
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
    return _write_user_text(*_user_copy_text(pool, rows, ids))


def _user_copy_text(
    pool: UserPool, rows: list[tuple[dict[str, Any], str, bool]], ids: Mapping[str, int] | None = None
) -> tuple[str, str, str]:
    """The COPY text of a batch's new rows, of its changed rows whose id is not known (written by
    upsert), and of those whose id is (`id` first, written by UPDATE) (PostgreSQL)."""
    _, plain, as_json, defaults = _user_copy_layout()
    get_plain = operator.itemgetter(*plain)
    field, text = pgcopy.field, pgcopy.text
    # The columns every row shares (pool, bookkeeping defaults), as COPY text once.
    tail = "\t" + "\t".join(field(value) for value in (pool.pk, *defaults)) + "\n"
    new: list[str] = []
    upsert: list[str] = []
    update: list[str] = []
    known = ids or {}
    for fields, content, is_new in rows:
        line = (
            "\t".join(
                [*[field(value) for value in get_plain(fields)], *[text(_json_text(fields[name])) for name in as_json]]
            )
            + f"\t{content}{tail}"
        )
        if is_new:
            new.append(line)
        elif (pk := known.get(fields["username"])) is not None:
            update.append(f"{pk}\t{line}")
        else:
            upsert.append(line)
    return "".join(new), "".join(upsert), "".join(update)


def _write_user_text(new: str, upsert: str, update: str = "") -> list[int]:
    """Write `_user_copy_text`'s rows; the pks of the changed ones (PostgreSQL).

    New rows go by COPY straight into the table; changed ones with a known id by COPY into a
    temporary table and on by UPDATE … FROM on the primary key; the others into a temporary
    table and on by INSERT … ON CONFLICT, so a row an operator created meanwhile is updated.
    """
    connection = connections[CognitoUser.objects.db]
    column_names, *_ = _user_copy_layout()
    update_columns = sorted({CognitoUser._meta.get_field(name).column for name in _USER_UPDATE_FIELDS})
    quote = connection.ops.quote_name
    table = quote(CognitoUser._meta.db_table)
    columns = ", ".join(quote(c) for c in column_names)
    # Named after its columns: a connection kept across a migration never reuses a stale one.
    stage = "directory_pull_stage_" + hashlib.md5(columns.encode(), usedforsecurity=False).hexdigest()[:12]

    def copy_text(target: str, payload: str, names: str = columns) -> None:
        # Django wraps execute()'s errors but not copy()'s: wrap them too (IntegrityError below).
        with connection.wrap_database_errors, connection.cursor() as cursor, cursor.copy(
            f"COPY {target} ({names}) FROM STDIN"
        ) as copy:
            copy.write(payload)

    if new:
        # Users the batch's SELECT did not find go straight into the table (no staging, no
        # conflict arbitration). Their ids need not come back: they are above the pull's
        # removal horizon. One an operator created meanwhile fails the COPY (unique
        # constraint) and the batch's new users take the upsert path instead.
        try:
            with transaction.atomic(using=connection.alias):
                copy_text(table, new)
            new = ""
        except IntegrityError:
            pass
    ids: list[int] = []
    with connection.cursor() as cursor:
        if update:
            # By primary key: no speculative insertion, no arbitration on the unique index. A row
            # removed meanwhile is not brought back (the next pull lists the user again).
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage}_id ON COMMIT DELETE ROWS "  # noqa: S608
                f"AS SELECT {quote('id')}, {columns} FROM {table} WITH NO DATA; TRUNCATE {stage}_id"
            )
            copy_text(f"{stage}_id", update, f"{quote('id')}, {columns}")
            assignments = ", ".join(f"{quote(c)} = s.{quote(c)}" for c in update_columns)
            cursor.execute(
                f"UPDATE {table} AS t SET {assignments} FROM {stage}_id AS s "  # noqa: S608
                f"WHERE t.{quote('id')} = s.{quote('id')} RETURNING t.{quote('id')}"
            )
            ids.extend(pk for (pk,) in cursor.fetchall())
        if new or upsert:
            cursor.execute(
                f"CREATE TEMPORARY TABLE IF NOT EXISTS {stage} ON COMMIT DELETE ROWS "  # noqa: S608
                f"AS SELECT {columns} FROM {table} WITH NO DATA; TRUNCATE {stage}"
            )
            copy_text(stage, new + upsert)
            assignments = ", ".join(f"{quote(c)} = EXCLUDED.{quote(c)}" for c in update_columns)
            cursor.execute(
                f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {stage} "  # noqa: S608
                f"ON CONFLICT ({quote('pool_id')}, {quote('username')}) DO UPDATE SET {assignments} "
                f"RETURNING {quote('id')}"
            )
            ids.extend(pk for (pk,) in cursor.fetchall())
    return ids
