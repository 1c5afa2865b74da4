"""A pull's users: partitioned listing, batch by batch apply, and the removal sweep at the end.

The listing is split by `sub` prefix (`partitions.user_keys`) and the partitions are listed at
once (`runner`), all drawing from the shared ListUsers budget. Their pages are mapped, hashed
and compared a batch of COGNITO_SYNC_BATCH_SIZE users at a time, whatever partition they come
from (one SELECT a batch); new and changed rows are written with their audit events by
`writer.BatchWriter`, so an unchanged user costs no write at all. Each partition records the
stored rows it saw; only once every partition is done are the rows no partition saw removed.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import Max, QuerySet

from .. import audit, outbox
from ..mapping import (
    USER_FIELDS,
    diff,
    model_values,
    user_created_changes,
    user_diff,
    user_fields_and_nul,
    user_hash,
)
from ..models import CognitoUser, PendingChange, SyncPartition, SyncRun, UserPool
from . import partitions
from .context import PullContext
from .partitions import IdBitmap, Tally
from .runner import PartitionRunner, run_partitions, run_to_the_end
from .writer import BatchWriter, analyze_after_import, current_rows, stored_hashes, stored_rows

logger = logging.getLogger(__name__)

Kind = SyncPartition.Kind


def max_id(qs: QuerySet) -> int:
    return qs.aggregate(top=Max("id"))["top"] or 0


def protected(pool: UserPool, object_type: str, keys: list[str] | None = None) -> dict[str, set[str]]:
    """Fields with an outbound change still on its way: a pull must not overwrite them."""
    qs = PendingChange.objects.filter(pool=pool, object_type=object_type, status__in=PendingChange.ACTIVE)
    if keys is not None:
        qs = qs.filter(object_key__in=keys)
    found: dict[str, set[str]] = {}
    for key, fields in qs.values_list("object_key", "fields"):
        found.setdefault(key, set()).update(fields)
    return found


_TYPED_ATTRIBUTES = ("sub", "email", "phone_number", "name", "email_verified", "phone_number_verified")


def keep_local(fields: dict[str, Any], current: dict[str, Any], keep: set[str]) -> dict[str, Any]:
    """The pulled fields with the protected paths kept at the stored row's values (`current`)."""
    merged = dict(fields)
    attributes = dict(fields["attributes"])
    for path in keep:
        if path.startswith("attributes."):
            name = path.split(".", 1)[1]
            if name in current["attributes"]:
                attributes[name] = current["attributes"][name]
            else:
                attributes.pop(name, None)
            if name in _TYPED_ATTRIBUTES:
                merged[name] = current[name]
        elif path in merged:
            merged[path] = current[path]
    merged["attributes"] = attributes
    return merged


class UserListing:
    """Users partitions for `runner.run_partitions`: their pages, merged into batches."""

    kind = Kind.USERS
    phase = "users"

    def __init__(self, ctx: PullContext, writer: BatchWriter) -> None:
        self.ctx = ctx
        self.writer = writer
        self.batch: list[tuple[int, dict[str, Any]]] = []
        self.in_batch: Counter[int] = Counter()
        self.seen: dict[int, IdBitmap] = {}
        self.tallies: dict[int, Tally] = ctx.tallies[self.kind]
        # Whether most users of the last batch had changed (the next batch then reads its rows at once).
        self.mostly_changed = False

    def pages(self, partition: SyncPartition) -> Iterator[list[dict[str, Any]]]:
        return self.ctx.gateway.list_users(self.ctx.pool.pool_id, filter=partitions.user_filter(partition.key))

    def begin(self, partition: SyncPartition) -> None:
        self.seen[partition.pk] = IdBitmap()
        self.tallies[partition.pk] = Tally.of(partition)

    def tally(self, partition: SyncPartition) -> Tally:
        return self.tallies[partition.pk]

    def page(self, partition: SyncPartition, records: list[dict[str, Any]]) -> bool:
        self.ctx.pages += 1
        self.tallies[partition.pk].pages += 1
        self.batch.extend((partition.pk, record) for record in records)
        self.in_batch[partition.pk] += len(records)
        if len(self.batch) < self.ctx.batch_size:
            return False
        self.apply()
        return True

    def finish(self, partition: SyncPartition) -> tuple[Tally, IdBitmap | None]:
        if self.in_batch[partition.pk]:
            self.apply()
        self.writer.wait()  # every batch holding this partition's users has committed
        return self.tallies[partition.pk], self.seen.pop(partition.pk)

    def abandon(self, partition: SyncPartition) -> Tally:
        self.seen.pop(partition.pk, None)
        return self.tallies[partition.pk]

    def apply(self) -> None:
        """Map, hash and compare the batch; upsert what is new or changed, with its audit events."""
        batch, self.batch = self.batch, []
        self.in_batch.clear()
        ctx = self.ctx
        incoming: dict[str, dict[str, Any]] = {}
        where: dict[str, int] = {}
        for pk, record in batch:
            fields, nul = user_fields_and_nul(record)
            if nul:
                # One such value used to fail the COPY of its whole batch, and so every later pull.
                ctx.cleaned_users.append(fields["username"])
                logger.warning("user %s of %s holds a NUL character: mirrored as U+FFFD", fields["username"],
                               ctx.pool.pool_id)
            incoming[fields["username"]] = fields
            where[fields["username"]] = pk
        ctx.seen += len(incoming)
        for pk in where.values():
            self.tallies[pk].seen += 1
        self.writer.wait_for(incoming)
        # After a batch of mostly changed users, the next one's rows are read with its hashes.
        read_rows = self.mostly_changed
        lookup = None
        if not ctx.empty_at_start:
            lookup = self.writer.read(stored_rows if read_rows else stored_hashes, ctx.pool, list(incoming))
        # Hashed while the lookup runs on the reader thread.
        hashes = {username: user_hash(fields) for username, fields in incoming.items()}
        existing: dict[str, tuple[int, str]] = {}
        read: dict[str, dict[str, Any]] = {}
        if lookup is not None:
            existing, read = lookup.result() if read_rows else (lookup.result(), {})
        changed: list[int] = []
        for username in incoming:
            new_hash = hashes[username]
            known = existing.get(username)
            if known is None:
                continue
            seen = self.seen.get(where[username])
            if seen is not None:
                seen.add(known[0])
            if known[1] == new_hash:
                ctx.users.unchanged += 1
                self.tallies[where[username]].unchanged += 1
            else:
                changed.append(known[0])
        # Only the changed rows are read in full (as plain dicts), for the audit's before values.
        self.mostly_changed = len(changed) > len(incoming) // 2
        changed_rows = read if read_rows else (current_rows(changed) if changed else {})
        keep = ctx.protected_users
        rows: list[tuple[dict[str, Any], str, bool]] = []
        events: list[dict[str, Any]] = []
        created: Counter[int] = Counter()
        updated: Counter[int] = Counter()
        changed_names: list[str] = []
        for username, fields in incoming.items():
            known = existing.get(username)
            if known is None:
                rows.append((fields, hashes[username], True))
                created[where[username]] += 1
                if not ctx.baseline:  # a first pull's users are its baseline: one `imported` event
                    events.append(_user_event(audit.Action.CREATED, username, fields, user_created_changes(fields)))
                continue
            current = changed_rows.get(username)
            if current is None or known[1] == hashes[username]:
                continue  # unchanged (or removed by someone else since the SELECT: the next pull sees it)
            if username in keep:
                fields = keep_local(fields, current, keep[username])
            rows.append((fields, hashes[username], False))
            changed_names.append(username)
            updated[where[username]] += 1
            changes = user_diff(current, fields)
            if changes:
                events.append(_user_event(audit.Action.UPDATED, username, fields, changes))
        if rows:

            def credit(created: Counter[int] = created, updated: Counter[int] = updated) -> None:
                for pk, n in created.items():
                    self.tallies[pk].created += n
                for pk, n in updated.items():
                    self.tallies[pk].updated += n

            self.writer.submit(
                rows, events, created=created.total(), updated=updated.total(), on_commit=credit,
                ids={username: existing[username][0] for username in changed_names},
            )


def _user_event(action: str, username: str, fields: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    return {
        "action": action,
        "object_type": "user",
        "object_id": username,
        "object_repr": fields["email"] or username,
        "changes": changes,
        "detail": {"sub": fields["sub"]},
    }


def pull_users(ctx: PullContext, *, then: PartitionRunner | None = None) -> None:
    """The pull's own worker: plan (or resume) the partitions, list them all, then sweep. Threads
    the users' last partitions leave idle start listing the partitions of `then` (the next phase)."""
    ctx.report("users")
    # Outbound changes in flight are few; one query for the whole listing.
    ctx.protected_users = protected(ctx.pool, "user")
    run = ctx.run
    if partitions.resume(run, ctx.pool) is None:
        # Rows created after this point by someone else (an operator's new user) are not
        # candidates for removal: the listing may have passed their place already.
        run.user_horizon = max_id(CognitoUser.objects.filter(pool=ctx.pool))
        # A pool with no users yet (a first import): no batch need look its users up. One that an
        # operator creates meanwhile fails its batch's COPY, which then takes the upsert path.
        ctx.empty_at_start = run.user_horizon == 0
        SyncRun.objects.using(settings.COGNITO_SYNC_PROGRESS_DB).filter(pk=run.pk).update(
            user_horizon=run.user_horizon
        )
        partitions.create(run, Kind.USERS, partitions.user_keys(ctx.pool))
    else:
        logger.info("sync of %s resumes run %s", ctx.pool.pool_id, run.resumed_from_id)
    keys = partitions.keys_of(run, Kind.USERS)
    if outbox.start_pull_helpers(run.pk, Kind.USERS, pool=ctx.pool, partitions=len(keys)):
        ctx.helpers = True
    extra = IdBitmap()  # rows the writer found raced in; above the horizon anyway, kept to be safe
    with BatchWriter(ctx, extra) as writer, PartitionRunner(ctx, UserListing(ctx, writer), spare=then) as runner:
        state = run_to_the_end(runner)
    if ctx.empty_at_start:
        analyze_after_import(ctx)
    if state.failed:
        failed = partitions.failures(run, Kind.USERS)
        names = ", ".join(partitions.user_filter(p.key) or "the whole pool" for p in failed)
        raise partitions.PartitionFailed(
            f"{len(failed)} of {len(keys)} user listings failed after {partitions.ATTEMPTS} attempts "
            f"({names}): {failed[0].error}"
        )
    # Every listing completed: whatever no partition saw is gone from Cognito.
    seen = partitions.seen_union(run)
    seen.update(extra)
    remove_unseen_users(ctx, seen, run.user_horizon or 0)


def help_users(ctx: PullContext) -> int:
    """A helper task on another worker: list partitions of a running pull until none is left."""
    ctx.protected_users = protected(ctx.pool, "user")
    with BatchWriter(ctx, IdBitmap()) as writer:
        return run_partitions(ctx, UserListing(ctx, writer))


def remove_unseen_users(ctx: PullContext, seen: IdBitmap, horizon: int) -> None:
    ctx.report("removing users")
    keep = ctx.protected_users
    ids = (
        CognitoUser.objects.filter(pool=ctx.pool, id__lte=horizon)
        .order_by("id")
        .values_list("id", flat=True)
    )
    gone = [user_id for user_id in ids.iterator(chunk_size=5000) if user_id not in seen]
    for start in range(0, len(gone), ctx.batch_size):
        batch = gone[start : start + ctx.batch_size]
        events = []
        doomed = []
        with transaction.atomic():
            for user in CognitoUser.objects.filter(id__in=batch).only("id", *USER_FIELDS):
                if user.username in keep:
                    continue  # an outbound change (e.g. a creation) is still on its way
                doomed.append(user.pk)
                before = model_values(user, USER_FIELDS)
                events.append(
                    ctx.event(
                        action=audit.Action.DELETED,
                        object_type="user",
                        object_id=user.username,
                        object_repr=user.email or user.username,
                        changes={k: [v[1], None] for k, v in diff({}, before).items()},
                        detail={"sub": user.sub},
                    )
                )
            CognitoUser.objects.filter(id__in=doomed).delete()
            ctx.write_events(events)
        ctx.users.removed += len(doomed)
        ctx.report("removing users")
