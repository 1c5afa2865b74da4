"""The loop that works through a pull's partitions in one process: claim, list, apply, complete.

Up to `ctx.threads` partitions are listed at once (`stream.Fanout`); the pull's thread applies
their pages as they arrive (through a `Listing`: users or memberships). Every few seconds it
writes the held partitions' progress to their rows in one UPDATE, which also renews their
claims. A partition whose listing fails goes back to pending (`partitions.retry_later`) and is
retried alone, here or on another worker; one whose claim was lost (it expired and another
worker took it) is dropped here, and so is everything once the run is over.

A runner can lend its idle threads to a `spare` runner of the next phase: once nothing is left
to claim of its own kind, the spare claims partitions for the free threads and starts listing
them, but takes none of their pages until its own `run()`, so they wait in its bounded queue
(the memberships of a pull are listed during the users' last partitions and applied after them).
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


class PartitionRunner:
    """This process's work on a run's partitions of one kind: its claims, listings and their events."""

    def __init__(self, ctx: PullContext, listing: Listing, *, spare: PartitionRunner | None = None) -> None:
        self.ctx = ctx
        self.listing = listing
        self.spare = spare
        self.held: dict[int, SyncPartition] = {}
        self.completed = 0
        self.fanout = Fanout(ctx.threads)
        self.renew_every = min(FLUSH_SECONDS, partitions.claim_seconds() / 4)
        self.renewed_at = time.monotonic()
        self.retry_at: float | None = None  # when the earliest partition put back here may be retried

    def __enter__(self) -> PartitionRunner:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.fanout.close()

    def claim(self, limit: int) -> None:
        """Claim partitions and start listing them until `limit` are held (or none is left)."""
        while len(self.held) < limit:
            part = partitions.claim(self.ctx.run, self.listing.kind, self.ctx.owner)
            if part is None:
                break
            self.held[part.pk] = part
            self.listing.begin(part)
            self.fanout.start(part.pk, functools.partial(self.listing.pages, part))
        if self.spare is not None and len(self.held) < self.ctx.threads:
            self.spare.claim(self.ctx.threads - len(self.held))

    def renew(self) -> bool:
        """Write the held partitions' progress and renew their claims (the spare's too); drop those
        lost. False when the run is over (everything is dropped then)."""
        self.renewed_at = time.monotonic()
        if not partitions.running(self.ctx.run):
            for pk in list(self.held):
                self._drop(pk)
            return False
        kept = partitions.flush({pk: self.listing.tally(p) for pk, p in self.held.items()}, self.ctx.owner)
        for pk in set(self.held) - kept:
            self._drop(pk)
        if self.spare is not None:
            self.spare.renew()
        return True

    def _drop(self, pk: int) -> None:
        part = self.held.pop(pk)
        self.fanout.cancel(pk)
        self.listing.abandon(part)
        logger.warning(
            "sync of %s: partition %s %r is no longer ours; dropped", self.ctx.pool.pool_id, part.kind, part.key
        )

    def run(self) -> int:
        """Claim and work through the run's partitions of this kind until none is left that this
        process may claim (or the run is over); return how many it completed.

        New claims are tried when a listing ends, when a partition's retry pause is over, and with
        each renewal of the claims held (for partitions whose worker died): not on every page. The
        held partitions' progress goes to their rows with each renewal (every few seconds) and when
        they end; the run's own report adds what this process holds in memory.
        """
        ctx, listing, held = self.ctx, self.listing, self.held
        claim_at: float | None = 0.0  # when to look for partitions to claim next (None: not before a listing ends)
        ctx.held_tallies = lambda: (listing.kind, [listing.tally(p) for p in held.values()])
        while True:
            now = time.monotonic()
            if claim_at is not None and now >= claim_at:
                self.claim(ctx.threads)
                claim_at = None
                if self.retry_at is not None:
                    claim_at = self.retry_at if self.retry_at > now else None
                    self.retry_at = claim_at
            if not held:
                ctx.held_tallies = None
                return self.completed
            event = self.fanout.get(timeout=TICK_SECONDS)
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
                        self.completed += 1
                    ctx.report(listing.phase)
                else:
                    self._retry_later(part, value)
            if held and time.monotonic() - self.renewed_at >= self.renew_every:
                if self.renew():
                    claim_at = time.monotonic() if claim_at is None else min(claim_at, time.monotonic())

    def _retry_later(self, part: SyncPartition, error: BaseException) -> None:
        tally = self.listing.abandon(part)
        status, pause = partitions.retry_later(part, self.ctx.owner, tally, str(error) or type(error).__name__)
        if status == SyncPartition.Status.PENDING:
            # Retried here once its pause is over (or by another worker, or `run_to_the_end`).
            self.retry_at = min(self.retry_at or float("inf"), time.monotonic() + pause)
        logger.warning(
            "sync of %s: %s partition %r failed (attempt %s): %s; %s",
            self.ctx.pool.pool_id, part.kind, part.key, part.attempts, error,
            "given up" if status == SyncPartition.Status.FAILED else f"retried in {pause} s",
        )


def run_partitions(ctx: PullContext, listing: Listing) -> int:
    """Claim and work through the run's partitions of `listing.kind` until none is left that
    this process may claim; return how many it completed (a helper's whole share)."""
    with PartitionRunner(ctx, listing) as runner:
        return runner.run()


def run_to_the_end(runner: PartitionRunner) -> partitions.State:
    """The pull's own worker: work through the partitions, then wait for those other workers
    list or that wait for a retry, taking any that come free, until none is pending or running."""
    ctx, kind = runner.ctx, runner.listing.kind
    while True:
        runner.run()
        state = partitions.state(ctx.run, kind)
        if state.finished:
            return state
        if not partitions.running(ctx.run):
            raise partitions.PartitionFailed("the pull was stopped while its listings ran (another run took it over)")
        ctx.report(runner.listing.phase)
        time.sleep(WAIT_SECONDS)
