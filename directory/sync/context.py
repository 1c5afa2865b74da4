"""What a pull's phases share: the pool and its run, the gateway, the counts, the audit helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings

from .. import audit
from ..gateway import CognitoGateway
from ..models import SyncPartition, SyncRun, UserPool
from . import partitions

ProgressCallback = Callable[[SyncRun, "PullContext"], None]


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
    """One process's part in a pull: the pull's own worker (`coordinator`), or a helper task.

    `users`, `clients`, `groups` and `memberships` count what this process did. The run's user
    and membership counts are its partitions' (wherever they were listed): from this process's
    counters when it lists them all, else from their rows, but for the partitions this process
    is listing now, whose counters it has in memory.
    """

    pool: UserPool
    run: SyncRun
    gateway: CognitoGateway
    source: str
    actor: str
    progress: ProgressCallback | None = None
    batch_size: int = 500
    # Listings this process runs at once.
    threads: int = 16
    # A pool's first pull: no `created` / `group_added` event per object, one `imported` per kind.
    baseline: bool = False
    # The pool held no user when this pull's fresh listing began (its own process only: a helper
    # or a resumed pull looks its users up).
    empty_at_start: bool = False
    coordinator: bool = True
    owner: str = field(default_factory=partitions.owner_token)
    users: Counts = field(default_factory=Counts)
    clients: Counts = field(default_factory=Counts)
    groups: Counts = field(default_factory=Counts)
    memberships: Counts = field(default_factory=Counts)
    pool_change: str = "unchanged"
    protected_users: dict[str, set[str]] = field(default_factory=dict)
    pages: int = 0
    seen: int = 0
    analyzed_at: int = 0
    # Users whose attribute values held a NUL character, mirrored with U+FFFD in its place.
    cleaned_users: list[str] = field(default_factory=list)
    # This process's counters of each partition it listed, by kind and partition pk.
    tallies: dict[str, dict[int, partitions.Tally]] = field(
        default_factory=lambda: {kind: {} for kind in SyncPartition.Kind.values}
    )
    # Other workers were asked to list partitions of this run: their counts are in their rows.
    helpers: bool = False
    # Set while partitions are being listed (runner.run_partitions): their kind and counters.
    held_tallies: Callable[[], tuple[str, list[partitions.Tally]]] | None = None

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

    # -- progress ----------------------------------------------------------------------
    def totals(self) -> tuple[int, int, Counts, Counts]:
        """Pages, users seen, user counts and membership counts of the whole run."""
        if self.helpers:
            # Other workers' partitions from their rows; the ones this process holds from memory.
            sums = partitions.totals(self.run, but_held_by=self.owner)
            held = self.held_tallies() if self.held_tallies is not None else ("", [])
            extra = {held[0]: held[1]}
        else:
            # Every partition of the run is this process's (or carried, and not counted).
            sums = {kind: dict.fromkeys(partitions.COUNTERS, 0) for kind in SyncPartition.Kind.values}
            extra = {kind: list(tallies.values()) for kind, tallies in self.tallies.items()}
        for kind, tallies in extra.items():
            for tally in tallies:
                for name, value in tally.values().items():
                    sums[kind][name] += value
        users, members = sums[SyncPartition.Kind.USERS], sums[SyncPartition.Kind.MEMBERSHIPS]
        return (
            users["pages"],
            users["seen"],
            # The removal sweep is the pull's own worker's, after every listing.
            Counts(created=users["created"], updated=users["updated"], removed=self.users.removed,
                   unchanged=users["unchanged"]),
            Counts(created=members["created"], removed=members["removed"], unchanged=members["unchanged"]),
        )

    def report(self, phase: str) -> None:
        """Write the run's progress and call the progress callback (the pull's own worker only:
        helpers report through their partitions' rows)."""
        if not self.coordinator:
            return
        run = self.run
        run.phase = phase
        run.pages, run.seen, users, members = self.totals()
        run.created, run.updated, run.removed, run.unchanged = (
            users.created, users.updated, users.removed, users.unchanged
        )
        run.summary = self.summary(users, members)
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

    def summary(self, users: Counts, memberships: Counts) -> dict[str, Any]:
        summary: dict[str, Any] = {
            "pool": self.pool_change,
            "users": users.as_dict(),
            "clients": self.clients.as_dict(),
            "groups": self.groups.as_dict(),
            "memberships": memberships.as_dict(),
        }
        if self.cleaned_users:
            summary["nul_replaced"] = {"users": len(self.cleaned_users), "first": self.cleaned_users[:50]}
        return summary
