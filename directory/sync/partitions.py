"""A pull's partitions: the listings a pull splits into, as rows that workers claim and complete.

Users are listed by `sub` prefix: `sub` is a searchable attribute and a UUID, so `sub ^= "0"` …
`sub ^= "f"` split any pool exactly (each user in one listing, every user in some listing), and
the listings run at once under the shared ListUsers budget. Memberships are listed one group at
a time, a partition per group. Each partition is a `SyncPartition` row: a thread of the pull's
worker, or a helper task on another worker, claims it with a conditional UPDATE (pending, or
running with an expired claim), lists it, and marks it done together with the row ids it saw (a
compressed bitmap), which the pull's removal sweep unions once every partition is done. A
partition that fails goes back to pending after a pause and is retried alone, up to
`ATTEMPTS` times; one whose worker died is claimed again once its claim expires. A new pull of a
pool whose last pull did not finish takes over that pull's finished partitions (`resume`).
"""

from __future__ import annotations

import os
import socket
import uuid
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Case, Count, F, IntegerField, Min, Q, Sum, Value, When
from django.utils import timezone

from ..models import CognitoUser, SyncPartition, SyncRun, UserPool

HEX = "0123456789abcdef"
# Tries of one partition before the pull gives up on it (and, so, on removing anything).
ATTEMPTS = 3
# Pools below this many users are listed in one piece: a partition costs at least one request
# of the account's ListUsers quota, and a small pool's listing is short anyway.
SPLIT_FROM_USERS = 2_000
# From this many users, two hex digits (256 partitions): a retried or resumed partition then
# redoes at most 1/256 of the listing.
FINE_SPLIT_FROM_USERS = 500_000
COUNTERS = ("pages", "seen", "created", "updated", "removed", "unchanged")

Kind = SyncPartition.Kind
Status = SyncPartition.Status


class PartitionFailed(Exception):
    """A partition failed all its attempts: the listing is incomplete, so nothing is removed."""


class IdBitmap:
    """A growable set of non-negative integer ids, one bit each."""

    __slots__ = ("_bits",)

    def __init__(self, data: bytes | bytearray = b"") -> None:
        self._bits = bytearray(data)

    def add(self, value: int) -> None:
        index = value >> 3
        if index >= len(self._bits):
            self._bits.extend(bytes(index - len(self._bits) + 1 + len(self._bits) // 2))
        self._bits[index] |= 1 << (value & 7)

    def __contains__(self, value: int) -> bool:
        index = value >> 3
        return index < len(self._bits) and bool(self._bits[index] & (1 << (value & 7)))

    def update(self, other: IdBitmap) -> None:
        """Add every id of `other` (one big-integer OR, not a loop in Python)."""
        size = max(len(self._bits), len(other._bits))
        merged = int.from_bytes(self._bits, "little") | int.from_bytes(other._bits, "little")
        self._bits = bytearray(merged.to_bytes(size, "little"))

    def dumps(self) -> bytes:
        return zlib.compress(bytes(self._bits.rstrip(b"\0")), 6)

    @classmethod
    def loads(cls, data: bytes | memoryview | None) -> IdBitmap:
        return cls(zlib.decompress(bytes(data)) if data else b"")


# Planning -------------------------------------------------------------------------------------------


def configured_split() -> str:
    """COGNITO_SYNC_PARTITIONS: "auto", or a fixed 1, 16 or 256."""
    value = str(getattr(settings, "COGNITO_SYNC_PARTITIONS", "auto") or "auto").strip().lower()
    if value not in {"auto", "1", "16", "256"}:
        raise ImproperlyConfigured(f"COGNITO_SYNC_PARTITIONS: {value!r} is not auto, 1, 16 or 256")
    return value


def user_keys(pool: UserPool) -> list[str]:
    """The `sub` prefixes a pool's user listing is split into ([""]: one listing of the whole pool).

    A mirror holding a user whose `sub` is not lowercase hex (never seen from Cognito, whose
    subs are UUIDs) is listed whole: no prefix would list that user, and the sweep would
    take it for gone.
    """
    split = configured_split()
    if split == "auto":
        estimate = pool.estimated_number_of_users
        split = "1" if estimate < SPLIT_FROM_USERS else "16" if estimate < FINE_SPLIT_FROM_USERS else "256"
    if split == "1":
        return [""]
    if CognitoUser.objects.filter(pool=pool).exclude(sub__regex=r"^[0-9a-f]").exists():
        return [""]
    if split == "16":
        return list(HEX)
    return [a + b for a in HEX for b in HEX]


def user_filter(key: str) -> str | None:
    """The ListUsers filter of a users partition (None: the whole pool)."""
    return f'sub ^= "{key}"' if key else None


def owner_token() -> str:
    """Names one claimer: the host and process, and a token for this pull or helper."""
    return f"{socket.gethostname()[:64]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def claim_seconds() -> int:
    return int(getattr(settings, "COGNITO_SYNC_LEASE_SECONDS", 120))


def _db() -> str:
    return settings.COGNITO_SYNC_PROGRESS_DB


def _rows() -> Any:
    return SyncPartition.objects.using(_db())


def create(run: SyncRun, kind: str, keys: Iterable[str]) -> None:
    """The run's partitions of `kind` (pending), unless they exist already (resumed ones)."""
    _rows().bulk_create([SyncPartition(run=run, kind=kind, key=key) for key in keys], ignore_conflicts=True)


def resume(run: SyncRun, pool: UserPool) -> SyncRun | None:
    """Take over the finished partitions of the pool's last pull if it did not finish.

    Only the pool's most recent pull before this one counts, only if it failed or was
    interrupted (still `running`: its worker died) less than COGNITO_SYNC_RESUME_MINUTES ago,
    and only partitions it completed: they are copied to this run as done and `carried`
    (with their seen row ids), and the run takes that pull's removal horizon. The rest is
    listed again. Returns the run resumed, or None.
    """
    minutes = int(getattr(settings, "COGNITO_SYNC_RESUME_MINUTES", 60))
    if minutes <= 0:
        return None
    previous = (
        SyncRun.objects.using(_db())
        .filter(pool=pool, started_at__lt=run.started_at)
        .exclude(status=SyncRun.Status.SKIPPED)
        .order_by("-started_at", "-pk")
        .first()
    )
    if previous is None or previous.status == SyncRun.Status.SUCCEEDED or previous.user_horizon is None:
        return None
    ended = previous.finished_at or previous.started_at
    if timezone.now() - ended > timedelta(minutes=minutes):
        return None
    done = list(_rows().filter(run=previous, status=Status.DONE))
    if not done:
        return None
    _rows().bulk_create(
        [
            SyncPartition(
                run=run, kind=p.kind, key=p.key, status=Status.DONE, carried=True, attempts=p.attempts,
                started_at=p.started_at, finished_at=p.finished_at, seen_ids=p.seen_ids,
                **{name: getattr(p, name) for name in COUNTERS},
            )
            for p in done
        ]
    )
    # The keys the resumed run planned, still to list.
    create(run, Kind.USERS, _rows().filter(run=previous, kind=Kind.USERS).values_list("key", flat=True))
    run.resumed_from = previous
    run.user_horizon = previous.user_horizon
    SyncRun.objects.using(_db()).filter(pk=run.pk).update(resumed_from=previous, user_horizon=previous.user_horizon)
    return previous


def keys_of(run: SyncRun, kind: str) -> list[str]:
    return list(_rows().filter(run=run, kind=kind).order_by("key").values_list("key", flat=True))


# Claims -----------------------------------------------------------------------------------------------


def running(run: SyncRun) -> bool:
    return SyncRun.objects.using(_db()).filter(pk=run.pk, status=SyncRun.Status.RUNNING).exists()


def claim(run: SyncRun, kind: str, owner: str) -> SyncPartition | None:
    """Claim one partition of the run that nobody holds: pending (and not waiting for a retry),
    or running under a claim that expired (its worker died). None when there is none, or when
    the run is over. The claim keeps the partition's counters: the claimer adds to them."""
    if not running(run):
        return None
    now = timezone.now()
    free = Q(status=Status.PENDING) & (Q(claimed_until__isnull=True) | Q(claimed_until__lte=now)) | Q(
        status=Status.RUNNING, claimed_until__lt=now
    )
    candidates = _rows().filter(free, run=run, kind=kind).order_by("attempts", "key").values_list("pk", flat=True)
    for pk in list(candidates[:8]):
        # Only the row's own columns in the WHERE: PostgreSQL re-checks them against a concurrent
        # claim that committed first (a condition through a join or subquery it would not).
        claimed = (
            _rows()
            .filter(free, pk=pk)
            .update(
                status=Status.RUNNING,
                owner=owner,
                claimed_until=now + timedelta(seconds=claim_seconds()),
                attempts=F("attempts") + 1,
                started_at=now,
                error="",
            )
        )
        if claimed:
            return _rows().get(pk=pk)
    return None


@dataclass
class Tally:
    """A partition's counters as this process has them (written to its row by `flush`)."""

    pages: int = 0
    seen: int = 0
    created: int = 0
    updated: int = 0
    removed: int = 0
    unchanged: int = 0

    def values(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in COUNTERS}

    @classmethod
    def of(cls, partition: SyncPartition) -> Tally:
        """The partition's counters as claimed: what earlier attempts counted, which this one adds to."""
        return cls(**{name: getattr(partition, name) for name in COUNTERS})


def flush(tallies: dict[int, Tally], owner: str) -> set[int]:
    """Write these partitions' counters and renew their claims, in one UPDATE; the pks still held
    (a claim that expired and went to another worker is lost)."""
    if not tallies:
        return set()
    mine = _rows().filter(pk__in=list(tallies), owner=owner, status=Status.RUNNING)
    updates: dict[str, Any] = {
        name: Case(
            *(When(pk=pk, then=Value(getattr(tally, name))) for pk, tally in tallies.items()),
            default=F(name),
            output_field=IntegerField(),
        )
        for name in COUNTERS
    }
    written = mine.update(claimed_until=timezone.now() + timedelta(seconds=claim_seconds()), **updates)
    if written == len(tallies):
        return set(tallies)
    return set(mine.values_list("pk", flat=True))


def complete(partition: SyncPartition, owner: str, tally: Tally, seen: IdBitmap | None) -> bool:
    """Mark a partition done with its counters and the stored rows it saw; False if the claim was lost."""
    return bool(
        _rows()
        .filter(pk=partition.pk, owner=owner, status=Status.RUNNING)
        .update(
            status=Status.DONE,
            finished_at=timezone.now(),
            claimed_until=None,
            seen_ids=seen.dumps() if seen is not None else None,
            **tally.values(),
        )
    )


def retry_later(partition: SyncPartition, owner: str, tally: Tally, error: str) -> tuple[str, int]:
    """After a failed attempt: back to pending, claimable again after a pause that grows with each
    attempt; `failed` after ATTEMPTS. Returns the new status ("" if the claim was lost) and the pause."""
    status = Status.FAILED if partition.attempts >= ATTEMPTS else Status.PENDING
    pause = min(30, 2 ** (partition.attempts - 1))
    # The owner stays until another claim: its counters are this process's own (see `totals`).
    updated = (
        _rows()
        .filter(pk=partition.pk, owner=owner, status=Status.RUNNING)
        .update(
            status=status,
            claimed_until=None if status == Status.FAILED else timezone.now() + timedelta(seconds=pause),
            finished_at=timezone.now() if status == Status.FAILED else None,
            error=error[:2000],
            **tally.values(),
        )
    )
    return (status if updated else ""), pause


# The run's view -----------------------------------------------------------------------------------


@dataclass
class State:
    pending: int = 0
    running: int = 0
    done: int = 0
    failed: int = 0
    next_retry: datetime | None = None

    @property
    def finished(self) -> bool:
        return self.pending == 0 and self.running == 0


def state(run: SyncRun, kind: str) -> State:
    rows = _rows().filter(run=run, kind=kind)
    counts = dict(rows.order_by().values_list("status").annotate(n=Count("pk")).values_list("status", "n"))
    waiting = rows.filter(status=Status.PENDING).aggregate(at=Min("claimed_until"))["at"]
    return State(
        pending=counts.get(Status.PENDING, 0),
        running=counts.get(Status.RUNNING, 0),
        done=counts.get(Status.DONE, 0),
        failed=counts.get(Status.FAILED, 0),
        next_retry=waiting,
    )


def failures(run: SyncRun, kind: str) -> list[SyncPartition]:
    return list(_rows().filter(run=run, kind=kind, status=Status.FAILED).order_by("key"))


def totals(run: SyncRun, *, but_held_by: str = "") -> dict[str, dict[str, int]]:
    """The counters of the run's own (not carried) partitions, summed per kind; without those
    `but_held_by` is listing now (that process counts them in memory, fresher than their rows)."""
    sums = {kind: dict.fromkeys(COUNTERS, 0) for kind in Kind.values}
    rows = _rows().filter(run=run, carried=False)
    if but_held_by:
        rows = rows.exclude(owner=but_held_by, status=Status.RUNNING)
    by_kind = rows.order_by().values("kind").annotate(**{f"sum_{name}": Sum(name) for name in COUNTERS})
    for row in by_kind:
        sums[row["kind"]] = {name: row[f"sum_{name}"] or 0 for name in COUNTERS}
    return sums


def seen_union(run: SyncRun) -> IdBitmap:
    """Every stored user row the run's finished users partitions saw (carried ones included)."""
    union = IdBitmap()
    rows = _rows().filter(run=run, kind=Kind.USERS, status=Status.DONE).values_list("seen_ids", flat=True)
    for data in rows.iterator(chunk_size=16):
        union.update(IdBitmap.loads(data))
    return union


def forget_seen_ids(pool: UserPool) -> None:
    """Drop the bitmaps of the pool's runs once a pull has swept: nobody resumes those runs now."""
    _rows().filter(run__pool=pool, seen_ids__isnull=False).update(seen_ids=None)
