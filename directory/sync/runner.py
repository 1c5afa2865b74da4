"""The loop that works through a pull's partitions in one process: claim, list, apply, complete.

Up to `ctx.threads` partitions are listed at once (`stream.Fanout`); the pull's thread applies
their pages as they arrive (through a `Listing`: users or memberships). Every few seconds it
writes the held partitions' progress to their rows in one UPDATE, which also renews their
claims. A partition whose listing fails goes back to pending (`partitions.retry_later`) and is
retried alone, here or on another worker; one whose claim was lost (it expired and another
worker took it) is dropped here, and so is everything once the run is over.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Iterator
from typing import Any, Protocol

from ..gateway import CognitoError, CognitoLimitExceeded, CognitoNotFound
from ..models import SyncPartition
from . import partitions
from .context import PullContext
from .stream import Fanout

logger = logging.getLogger(__name__)

# Seconds the pull's thread waits for a page before it looks after its claims and its lease.
TICK_SECONDS = 0.5
# Seconds between looks at partitions that other workers list, or that wait for a retry.
WAIT_SECONDS = 0.5
# Seconds between writes of the held partitions' progress to their rows (which renew their claims).
FLUSH_SECONDS = 5.0


class Listing(Protocol):
    """What the loop needs of a kind of partition (sync.users.UserListing, sync.memberships.MembershipListing)."""

    kind: str
    phase: str

    def pages(self, partition: SyncPartition) -> Iterator[list[dict[str, Any]]]:
        """The partition's pages from Cognito. Runs on a listing thread: no database here."""

    def begin(self, partition: SyncPartition) -> None: ...

    def page(self, partition: SyncPartition, records: list[dict[str, Any]]) -> bool:
        """Take one page; True when a batch was written."""

    def finish(self, partition: SyncPartition) -> tuple[partitions.Tally, partitions.IdBitmap | None]:
        """Write what is left of the partition; its counters and the stored rows it saw."""

    def abandon(self, partition: SyncPartition) -> partitions.Tally: ...

    def tally(self, partition: SyncPartition) -> partitions.Tally: ...


def fatal(exc: BaseException) -> bool:
    """Errors that retrying a partition cannot help: the pool is gone, a hard quota, or not
    Cognito's at all (a database error, a bug, a killed worker)."""
    return not isinstance(exc, CognitoError) or isinstance(exc, CognitoNotFound | CognitoLimitExceeded)


def run_partitions(ctx: PullContext, listing: Listing) -> int:
    """Claim and work through the run's partitions of `listing.kind` until none is left that
    this process may claim (or the run is over); return how many it completed.

    New claims are tried when a listing ends, when a partition's retry pause is over, and with
    each renewal of the claims held (for partitions whose worker died): not on every page. The
    held partitions' progress goes to their rows with each renewal (every few seconds) and when
    they end; the run's own report adds what this process holds in memory.
    """
    held: dict[int, SyncPartition] = {}
    completed = 0
    renew_every = min(FLUSH_SECONDS, partitions.claim_seconds() / 4)
    renewed_at = time.monotonic()
    claim_at: float | None = 0.0  # when to look for partitions to claim next (None: not before a listing ends)

    def flush() -> None:
        kept = partitions.flush({pk: listing.tally(p) for pk, p in held.items()}, ctx.owner)
        for pk in set(held) - kept:
            drop(pk)

    def drop(pk: int) -> None:
        part = held.pop(pk)
        fanout.cancel(pk)
        listing.abandon(part)
        logger.warning("sync of %s: partition %s %r is no longer ours; dropped", ctx.pool.pool_id, part.kind, part.key)

    ctx.held_tallies = lambda: (listing.kind, [listing.tally(p) for p in held.values()])
    with Fanout(ctx.threads) as fanout:
        while True:
            if claim_at is not None and time.monotonic() >= claim_at:
                claim_at = None
                while len(held) < ctx.threads:
                    part = partitions.claim(ctx.run, listing.kind, ctx.owner)
                    if part is None:
                        break
                    held[part.pk] = part
                    listing.begin(part)
                    fanout.start(part.pk, functools.partial(listing.pages, part))
            if not held:
                ctx.held_tallies = None
                return completed
            event = fanout.get(timeout=TICK_SECONDS)
            if event is None:
                if ctx.coordinator and ctx.progress:
                    ctx.progress(ctx.run, ctx)  # keeps the pool's lease while Cognito or the budget is slow
            else:
                what, pk, value = event
                part = held.get(pk)  # type: ignore[call-overload]
                if part is None:
                    continue  # a listing this process dropped
                if what == "page":
                    if listing.page(part, value):
                        ctx.report(listing.phase)
                    continue
                if what == "error" and fatal(value):
                    raise value  # the partition stays held: a report on the way out records its progress
                del held[pk]  # type: ignore[arg-type]
                claim_at = time.monotonic()
                if what == "done":
                    tally, seen = listing.finish(part)
                    if partitions.complete(part, ctx.owner, tally, seen):
                        completed += 1
                    ctx.report(listing.phase)
                else:
                    tally = listing.abandon(part)
                    status, pause = partitions.retry_later(part, ctx.owner, tally, str(value) or type(value).__name__)
                    if status == SyncPartition.Status.PENDING and held:
                        claim_at = time.monotonic() + pause  # retried here once its pause is over
                    logger.warning(
                        "sync of %s: %s partition %r failed (attempt %s): %s; %s",
                        ctx.pool.pool_id, part.kind, part.key, part.attempts, value,
                        "given up" if status == SyncPartition.Status.FAILED else f"retried in {pause} s",
                    )
            if held and time.monotonic() - renewed_at >= renew_every:
                renewed_at = time.monotonic()
                if not partitions.running(ctx.run):
                    for pk in list(held):
                        drop(pk)  # the pull is over (failed, or taken over): stop listing for it
                    continue
                flush()
                claim_at = time.monotonic() if claim_at is None else min(claim_at, time.monotonic())


def run_to_the_end(ctx: PullContext, listing: Listing) -> partitions.State:
    """The pull's own worker: work through the partitions, then wait for those other workers
    list or that wait for a retry, taking any that come free, until none is pending or running."""
    while True:
        run_partitions(ctx, listing)
        state = partitions.state(ctx.run, listing.kind)
        if state.finished:
            return state
        ctx.report(listing.phase)
        time.sleep(WAIT_SECONDS)
