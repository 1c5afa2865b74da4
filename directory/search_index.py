"""The attribute search's trigram index, kept off a pull's write path (PostgreSQL).

`UserSearchText` holds each user's attribute values as one text under pg_trgm's GIN index. A
row trigger on the user table (migration 0015) writes it in the transaction that wrote the user,
after taking the search lock in shared mode, so an operator's edit, a push or a restore is
searchable the moment it commits. A pull's batches instead set `directory.defer_search` (`defer`
below), which the trigger's WHEN skips, and queue their users in `SearchBacklog` by COPY
(`queue`); `catch_up` writes their texts after the pull, a chunk at a time, under the lock in
exclusive mode. The lock orders the two writers: a chunk reads the users only once every trigger
write in flight has committed, and a trigger write waits for the chunk; so the text a user ends
with is always its latest.

Why: the trigram index costs a user more than the rest of its write together (benchmarks/
pipeline.py), and a pull writes users far faster than anyone searches them. Queued users are
not lost to the search meanwhile: `selectors.users_matching_attributes` checks them directly.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import orjson
from django.db import connections, transaction

from . import pgcopy
from .models import CognitoUser, SearchBacklog, UserSearchText

logger = logging.getLogger(__name__)

# The advisory lock between the trigger (shared) and the catch-up (exclusive): "searchtx", a number
# nothing else in the database uses. Migration 0015's trigger holds the same number.
LOCK_KEY = 0x7365617263687478
# The transaction-local setting that makes the trigger queue instead of write (migration 0015).
DEFER_SETTING = "directory.defer_search"
# Backlog entries (a pull's batches, up to 500 users each) one catch-up transaction takes.
CHUNK_ENTRIES = 10

SEARCH_TABLE = UserSearchText._meta.db_table
BACKLOG_TABLE = SearchBacklog._meta.db_table
USER_TABLE = CognitoUser._meta.db_table
# The ids of the queued users that still exist (the attribute search checks them directly).
QUEUED_IDS_SQL = (
    f"SELECT u.id FROM {BACKLOG_TABLE} b "  # noqa: S608 - constant names
    f"CROSS JOIN LATERAL jsonb_array_elements_text(b.usernames) AS queued (username) "
    f"JOIN {USER_TABLE} u ON u.pool_id = b.pool_id AND u.username = queued.username"
)


def enabled(using: str | None = None) -> bool:
    """Whether the database keeps the search texts (PostgreSQL; SQLite searches without them)."""
    return connections[using or CognitoUser.objects.db].vendor == "postgresql"


def defer(cursor, on: bool) -> None:  # noqa: ANN001 - a Django cursor
    """Make the rest of this transaction's user writes queue their search texts (`on`), or write
    them again (`off`). Transaction-local: it ends with the transaction either way."""
    cursor.execute("SELECT set_config(%s, %s, true)", [DEFER_SETTING, "on" if on else "off"])


def queue_text(pool_pk: int, usernames: list[str]) -> str:
    """The COPY text of a batch's backlog entry (built on the pull's thread); empty for no users."""
    if not usernames:
        return ""
    return f"{pool_pk}\t{pgcopy.text(orjson.dumps(usernames).decode())}\n"


def queue(cursor, text: str) -> None:  # noqa: ANN001 - a Django cursor
    """Queue `queue_text`'s users, in the caller's transaction."""
    if text:
        with cursor.copy(f"COPY {BACKLOG_TABLE} (pool_id, usernames) FROM STDIN") as copy:
            copy.write(text)


def catch_up(*, using: str | None = None, chunk: int = CHUNK_ENTRIES,
             progress: Callable[[int], None] | None = None) -> int:
    """Write the search texts of the queued users, a chunk a transaction, until the queue is empty;
    returns how many queued users it took. Two catch-ups at once take turns (the lock)."""
    alias = using or CognitoUser.objects.db
    if not enabled(alias):
        return 0
    connection = connections[alias]
    done = 0
    while True:
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            # After the lock: this statement's snapshot holds every trigger write that was in flight.
            cursor.execute(
                f"WITH taken AS (DELETE FROM {BACKLOG_TABLE} WHERE id IN ("  # noqa: S608
                f"  SELECT id FROM {BACKLOG_TABLE} ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
                f") RETURNING pool_id, usernames), "
                f"written AS (INSERT INTO {SEARCH_TABLE} (user_id, text) "
                f"  SELECT DISTINCT ON (u.id) u.id, directory_user_search_text(u.attributes) "
                f"  FROM taken CROSS JOIN LATERAL jsonb_array_elements_text(taken.usernames) AS queued (username) "
                f"  JOIN {USER_TABLE} u ON u.pool_id = taken.pool_id AND u.username = queued.username "
                f"  ON CONFLICT (user_id) DO UPDATE SET text = EXCLUDED.text "
                f"  WHERE {SEARCH_TABLE}.text IS DISTINCT FROM EXCLUDED.text RETURNING 1) "
                f"SELECT (SELECT coalesce(sum(jsonb_array_length(usernames)), 0) FROM taken)",
                [chunk],
            )
            taken = cursor.fetchone()[0]
        if not taken:
            return done
        done += taken
        if progress is not None:
            progress(done)


def backlog_size(*, using: str | None = None) -> int:
    """Queued users (a user may be queued twice); 0 where the search keeps no texts."""
    alias = using or CognitoUser.objects.db
    if not enabled(alias):
        return 0
    with connections[alias].cursor() as cursor:
        cursor.execute(f"SELECT coalesce(sum(jsonb_array_length(usernames)), 0) FROM {BACKLOG_TABLE}")  # noqa: S608
        return int(cursor.fetchone()[0])


def queued(*, using: str | None = None) -> bool:
    """Whether any user waits for its search text (one row read)."""
    alias = using or CognitoUser.objects.db
    return enabled(alias) and SearchBacklog.objects.using(alias).exists()


def estimated_texts(pattern: str, *, using: str | None = None) -> int:
    """How many search texts PostgreSQL estimates `text ILIKE pattern` matches (pg_trgm's
    statistics; one EXPLAIN, no scan)."""
    with connections[using or CognitoUser.objects.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) SELECT 1 FROM {SEARCH_TABLE} WHERE text ILIKE %s", [pattern])  # noqa: S608
        plan = cursor.fetchone()[0]
    if isinstance(plan, str | bytes):
        plan = orjson.loads(plan)
    return int(plan[0]["Plan"]["Plan Rows"])


def catch_up_quietly() -> None:
    """`catch_up` after a pull: a failure is logged, not raised (the queue stays for the next one,
    and the pull's own outcome stands)."""
    try:
        taken = catch_up()
    except Exception:  # noqa: BLE001 - the next pull or beat's catch-up retries
        logger.exception("search texts: the catch-up failed; the queued users wait for the next one")
    else:
        if taken:
            logger.info("search texts: %s queued users written", taken)
