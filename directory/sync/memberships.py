"""A pull's group memberships: one partition per group, listed at once like the users.

Each group's members (ListUsersInGroup) are applied a batch at a time, once every user is
stored; their listing may start earlier, on the threads the users' last partitions leave idle
(`runner.PartitionRunner.spare`), its pages waiting in a bounded queue. A group's memberships
that its complete listing did not show are removed as soon as that listing is done (a group's
listing is all there is to know about it). Members with an outbound group change on its way
are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.db import transaction

from .. import audit, outbox
from ..models import CognitoGroup, CognitoUser, GroupMembership, SyncPartition
from . import partitions
from .context import PullContext
from .partitions import IdBitmap, Tally
from .runner import PartitionRunner, run_partitions, run_to_the_end
from .users import max_id, protected

Kind = SyncPartition.Kind


def _protected_members(ctx: PullContext) -> set[str]:
    return {
        username
        for username, fields in protected(ctx.pool, "user").items()
        if any(f.startswith("groups.") for f in fields)
    }


class MembershipListing:
    """Memberships partitions (one per group) for `runner.run_partitions`."""

    kind = Kind.MEMBERSHIPS
    phase = "memberships"

    def __init__(self, ctx: PullContext) -> None:
        self.ctx = ctx
        self.keep = _protected_members(ctx)
        self.groups: dict[int, CognitoGroup | None] = {}
        self.horizons: dict[int, int] = {}
        self.seen: dict[int, IdBitmap] = {}
        self.buffers: dict[int, list[dict[str, Any]]] = {}
        self.tallies: dict[int, Tally] = ctx.tallies[self.kind]

    def pages(self, partition: SyncPartition) -> Iterator[list[dict[str, Any]]]:
        return self.ctx.gateway.list_users_in_group(self.ctx.pool.pool_id, partition.key)

    def begin(self, partition: SyncPartition) -> None:
        group = CognitoGroup.objects.filter(pool=self.ctx.pool, name=partition.key).first()
        self.groups[partition.pk] = group
        # Memberships added after this by someone else are not candidates for removal.
        self.horizons[partition.pk] = max_id(GroupMembership.objects.filter(group=group)) if group else 0
        self.seen[partition.pk] = IdBitmap()
        self.buffers[partition.pk] = []
        self.tallies[partition.pk] = Tally.of(partition)

    def tally(self, partition: SyncPartition) -> Tally:
        return self.tallies[partition.pk]

    def page(self, partition: SyncPartition, records: list[dict[str, Any]]) -> bool:
        self.tallies[partition.pk].pages += 1
        buffer = self.buffers[partition.pk]
        buffer.extend(records)
        if len(buffer) < self.ctx.batch_size:
            return False
        self._apply(partition)
        return True

    def finish(self, partition: SyncPartition) -> tuple[Tally, IdBitmap | None]:
        self._apply(partition)
        group = self.groups.pop(partition.pk)
        seen = self.seen.pop(partition.pk)
        horizon = self.horizons.pop(partition.pk)
        self.buffers.pop(partition.pk)
        if group is not None:
            self._remove_stale(partition, group, seen, horizon)
        return self.tallies[partition.pk], None

    def abandon(self, partition: SyncPartition) -> Tally:
        for held in (self.groups, self.seen, self.horizons, self.buffers):
            held.pop(partition.pk, None)
        return self.tallies[partition.pk]

    def _apply(self, partition: SyncPartition) -> None:
        records, self.buffers[partition.pk] = self.buffers[partition.pk], []
        group = self.groups[partition.pk]
        if not records or group is None:
            return
        ctx, tally, seen = self.ctx, self.tallies[partition.pk], self.seen[partition.pk]
        usernames = list({u["Username"] for u in records})
        users = dict(CognitoUser.objects.filter(pool=ctx.pool, username__in=usernames).values_list("id", "username"))
        current = dict(
            GroupMembership.objects.filter(group=group, user_id__in=list(users)).values_list("user_id", "id")
        )
        for membership_id in current.values():
            seen.add(membership_id)
        ctx.memberships.unchanged += len(current)
        tally.unchanged += len(current)
        new = [
            GroupMembership(group=group, user_id=uid)
            for uid in users
            if uid not in current and users[uid] not in self.keep
        ]
        if not new:
            return
        with transaction.atomic():
            GroupMembership.objects.bulk_create(new, batch_size=ctx.batch_size)
            if not ctx.baseline:  # a first pull's memberships are its baseline: one `imported` event
                ctx.write_events(
                    [_membership_event(ctx, group, users[m.user_id], audit.Action.GROUP_ADDED) for m in new]
                )
        for m in new:
            if m.id is not None:
                seen.add(m.id)
        ctx.memberships.created += len(new)
        tally.created += len(new)

    def _remove_stale(self, partition: SyncPartition, group: CognitoGroup, seen: IdBitmap, horizon: int) -> None:
        ctx, tally = self.ctx, self.tallies[partition.pk]
        stale = [
            (mid, username)
            for mid, username in GroupMembership.objects.filter(group=group, id__lte=horizon)
            .order_by("id")
            .values_list("id", "user__username")
            .iterator(chunk_size=5000)
            if mid not in seen and username not in self.keep
        ]
        for start in range(0, len(stale), ctx.batch_size):
            batch = stale[start : start + ctx.batch_size]
            with transaction.atomic():
                GroupMembership.objects.filter(id__in=[mid for mid, _ in batch]).delete()
                ctx.write_events(
                    [_membership_event(ctx, group, username, audit.Action.GROUP_REMOVED) for _, username in batch]
                )
            ctx.memberships.removed += len(batch)
            tally.removed += len(batch)


def _membership_event(ctx: PullContext, group: CognitoGroup, username: str, action: str) -> dict[str, Any]:
    before, after = (None, group.name) if action == audit.Action.GROUP_ADDED else (group.name, None)
    return ctx.event(
        action=action,
        object_type="user",
        object_id=username,
        object_repr=username,
        changes={"group": [before, after]},
        detail={"group": group.name},
    )


def plan_memberships(ctx: PullContext) -> int:
    """A partition per group (those a resumed run finished stay done); how many groups."""
    names = list(CognitoGroup.objects.filter(pool=ctx.pool).order_by("name").values_list("name", flat=True))
    partitions.create(ctx.run, Kind.MEMBERSHIPS, names)
    return len(names)


def pull_memberships(ctx: PullContext, runner: PartitionRunner, groups: int) -> None:
    """The pull's own worker: list every group's partition (`runner` may have started some while
    the users' last partitions were listed) and apply them, now that every user is stored."""
    ctx.report("memberships")
    if outbox.start_pull_helpers(ctx.run.pk, Kind.MEMBERSHIPS, pool=ctx.pool, partitions=groups):
        ctx.helpers = True
    state = run_to_the_end(runner)
    if state.failed:
        failed = partitions.failures(ctx.run, Kind.MEMBERSHIPS)
        raise partitions.PartitionFailed(
            f"{len(failed)} of {groups} group listings failed after {partitions.ATTEMPTS} attempts "
            f"({', '.join(p.key for p in failed)}): {failed[0].error}"
        )


def help_memberships(ctx: PullContext) -> int:
    """A helper task on another worker: list groups of a running pull until none is left."""
    return run_partitions(ctx, MembershipListing(ctx))
