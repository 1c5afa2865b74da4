"""Remote -> local: pull one pool's settings, app clients, groups, users and memberships.

The pool's settings, app clients and groups are few: each phase is one transaction that
creates, updates and removes rows by content hash. Users and memberships are listed in
partitions, several at once under the shared ListUsers budget (`sync.users`,
`sync.memberships`, `sync.partitions`), and written batch by batch, each batch in its own
short transaction with its audit events; rows missing from a *complete* listing are removed
only once every partition is done. A field with an operator's change still on its way to
Cognito is never overwritten, and such a row is never removed.

A pool's first pull is its baseline: instead of an audit event per object created it writes
one `imported` event per kind of object (the pool, app clients, groups, users, memberships),
with the counts and the run. Every pull after it audits each object created, changed or
removed, with field-level before/after.

A pull that fails or is killed half-way keeps the batches it committed (each object
consistent, each change audited) and removes nothing; the next pull resumes it, listing only
the partitions it had not finished.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from .. import audit
from ..gateway import CognitoError, CognitoGateway
from ..mapping import client_fields, diff, group_fields, model_values, pool_fields, pool_hash, record_hash
from ..message_templates import record_pulled_templates
from ..models import AppClient, CognitoGroup, CognitoUser, GroupMembership, SyncPartition, SyncRun, UserPool
from . import partitions
from .context import Counts, ProgressCallback, PullContext
from .memberships import MembershipListing, help_memberships, plan_memberships, pull_memberships
from .partitions import PartitionFailed
from .runner import PartitionRunner
from .users import help_users, protected, pull_users

logger = logging.getLogger(__name__)

_POOL_FIELDS = (
    "name",
    "arn",
    "status",
    "username_attributes",
    "alias_attributes",
    "username_case_sensitive",
    "schema",
    "auto_verified_attributes",
    "password_policy",
    "mfa_configuration",
    "admin_create_user_config",
    "allow_admin_create_user_only",
    "temporary_password_validity_days",
    "verification_message_template",
    "email_configuration",
    "sms_configuration",
    "lambda_config",
    "user_attribute_update_settings",
    "account_recovery_setting",
    "device_configuration",
    "mfa_methods",
    "deletion_protection",
    "user_pool_tier",
    "tags",
    "remote_created_at",
    "remote_modified_at",
)


def pull_pool(
    *,
    pool: UserPool,
    source: str = audit.Source.WORKER,
    actor: str = "",
    gateway: CognitoGateway | None = None,
    progress: ProgressCallback | None = None,
) -> SyncRun:
    """Pull one pool from Cognito into the mirror and return its SyncRun.

    Sends only reads (DescribeUserPool, ListUserPoolClients, DescribeUserPoolClient,
    ListGroups, ListUsers, ListUsersInGroup; never AdminGetUser). Idempotent: a second
    run over an unchanged pool writes nothing but its SyncRun, its partitions and
    `last_synced_at`. A Cognito failure is recorded on the SyncRun (status `failed`, `error`)
    and in the audit log; it does not raise. Batches committed before a failure stay (each
    with its audit events); nothing is removed unless every listing completed.
    """
    db = settings.COGNITO_SYNC_PROGRESS_DB
    baseline = pool.last_synced_at is None
    run = SyncRun.objects.using(db).create(
        pool=pool, source=source, actor=actor, phase="starting", baseline=baseline
    )
    ctx = PullContext(
        pool=pool,
        run=run,
        gateway=gateway or CognitoGateway(pool.region),
        source=source,
        actor=actor,
        progress=progress,
        batch_size=settings.COGNITO_SYNC_BATCH_SIZE,
        threads=settings.COGNITO_SYNC_THREADS,
        baseline=baseline,
    )
    try:
        # Each phase commits on its own (users and memberships batch by batch): a long pull
        # holds no transaction open, so operators' edits and other workers are not blocked.
        with transaction.atomic():
            _pull_pool(ctx)
        with transaction.atomic():
            _pull_clients(ctx)
        with transaction.atomic():
            _pull_groups(ctx)
        groups = plan_memberships(ctx)
        with PartitionRunner(ctx, MembershipListing(ctx)) as memberships:
            # Memberships are listed on the threads the users' last partitions leave idle, and
            # applied once every user is stored.
            pull_users(ctx, then=memberships)
            pull_memberships(ctx, memberships, groups)
        with transaction.atomic():
            if baseline:
                _record_baseline(ctx)
            now = timezone.now()
            UserPool.objects.filter(pk=pool.pk).update(last_synced_at=now)
            pool.last_synced_at = now
        partitions.forget_seen_ids(pool)
    except (CognitoError, PartitionFailed) as exc:
        _fail(ctx, exc)
        return run
    except Exception as exc:
        _fail(ctx, exc)
        raise
    run.status = SyncRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.phase = "done"
    ctx.report("done")
    SyncRun.objects.using(db).filter(pk=run.pk).update(status=run.status, finished_at=run.finished_at)
    logger.info("sync of %s finished: %s", pool.pool_id, run.summary)
    return run


def help_pull(*, run_pk: int, kind: str) -> int:
    """A helper's share of another worker's pull: claim and list partitions of `kind` (users or
    memberships) of run `run_pk` while it runs, until none is left to claim; return how many
    this helper completed. Does nothing if the run is over. Safe to run twice: a partition is
    only ever listed by the one worker holding its claim."""
    run = SyncRun.objects.select_related("pool").filter(pk=run_pk, status=SyncRun.Status.RUNNING).first()
    if run is None:
        return 0
    ctx = PullContext(
        pool=run.pool,
        run=run,
        gateway=CognitoGateway(run.pool.region, purpose="pull"),
        source=run.source,
        actor=run.actor,
        batch_size=settings.COGNITO_SYNC_BATCH_SIZE,
        threads=settings.COGNITO_SYNC_THREADS,
        baseline=run.baseline,
        coordinator=False,
    )
    done = help_users(ctx) if kind == SyncPartition.Kind.USERS else help_memberships(ctx)
    logger.info("helped the sync of %s: %s %s partition(s) listed", run.pool.pool_id, done, kind)
    return done


def _fail(ctx: PullContext, exc: Exception) -> None:
    # Batches committed before the failure stay, so the counts say what was applied.
    run = ctx.run
    reason = str(exc) or type(exc).__name__
    logger.warning("sync of %s failed: %s", ctx.pool.pool_id, reason)
    run.status = SyncRun.Status.FAILED
    run.finished_at = timezone.now()
    run.error = reason
    pages, seen, users, members = ctx.totals()
    summary = ctx.summary(users, members)
    SyncRun.objects.using(settings.COGNITO_SYNC_PROGRESS_DB).filter(pk=run.pk).update(
        status=run.status,
        finished_at=run.finished_at,
        error=reason,
        phase=f"failed during {run.phase}"[:32],
        pages=pages,
        seen=seen,
        created=users.created,
        updated=users.updated,
        removed=users.removed,
        unchanged=users.unchanged,
        summary=summary,
    )
    detail: dict[str, Any] = {"error": reason, "code": getattr(exc, "code", ""), "phase": run.phase}
    if ctx.baseline:
        # The baseline's `imported` events come with the pull that completes it; until then this
        # says what the interrupted one wrote.
        detail["imported_so_far"] = {kind: counts["created"] for kind, counts in summary.items() if kind != "pool"}
    audit.record(
        action=audit.Action.SYNC_FAILED,
        object_type="pool",
        object_id=ctx.pool.pool_id,
        object_repr=ctx.pool.name,
        pool_id=ctx.pool.pool_id,
        source=ctx.source,
        actor=ctx.actor,
        outcome=audit.Outcome.FAILED,
        detail=detail,
        correlation_id=str(run.correlation_id),
    )


# Baseline -----------------------------------------------------------------------------------------

# Kind of object in the audit log -> what the mirror holds of it.
_BASELINE_KINDS = (
    ("pool", "pool settings", lambda pool: 1),
    ("app_client", "app clients", lambda pool: AppClient.objects.filter(pool=pool).count()),
    ("group", "groups", lambda pool: CognitoGroup.objects.filter(pool=pool).count()),
    ("user", "users", lambda pool: CognitoUser.objects.filter(pool=pool).count()),
    ("membership", "group memberships", lambda pool: GroupMembership.objects.filter(group__pool=pool).count()),
)


def _record_baseline(ctx: PullContext) -> None:
    """One `imported` audit event per kind of object: how many the mirror holds now that the
    pool's first pull is complete, how many this run created, and the run."""
    _, _, users, members = ctx.totals()
    created = {
        "pool": int(ctx.pool_change == audit.Action.CREATED),
        "app_client": ctx.clients.created,
        "group": ctx.groups.created,
        "user": users.created,
        "membership": members.created,
    }
    run = ctx.run
    events = []
    for object_type, label, count in _BASELINE_KINDS:
        total = count(ctx.pool)
        detail = {"count": total, "created": created[object_type], "sync_run": run.pk}
        if run.resumed_from_id:
            detail["resumed_from"] = run.resumed_from_id
        events.append(
            ctx.event(
                action=audit.Action.IMPORTED,
                object_type=object_type,
                object_id=ctx.pool.pool_id,
                object_repr=f"{total:,} {label}"[:256],
                # The pool's settings as the baseline found them; the other kinds are counted.
                changes=diff({}, model_values(ctx.pool, _POOL_FIELDS)) if object_type == "pool" else {},
                detail=detail,
            )
        )
    ctx.write_events(events)


# Pool --------------------------------------------------------------------------------------


def _pull_pool(ctx: PullContext) -> None:
    ctx.report("pool")
    pool = ctx.pool
    fields = pool_fields(
        ctx.gateway.describe_user_pool(pool.pool_id),
        region=pool.region,
        mfa=ctx.gateway.get_user_pool_mfa_config(pool.pool_id) or {},
    )
    new_hash = pool_hash(fields)
    estimate = fields["estimated_number_of_users"]
    if new_hash != pool.content_hash and protected(pool, "pool", [pool.pool_id]):
        return  # an operator's change to the settings is on its way; the next pull takes them
    if new_hash == pool.content_hash:
        if estimate != pool.estimated_number_of_users:
            # Informational only: not audited, not a change of the pool's settings.
            UserPool.objects.filter(pk=pool.pk).update(estimated_number_of_users=estimate)
            pool.estimated_number_of_users = estimate
        return
    created = not pool.content_hash
    before = {} if created else model_values(pool, _POOL_FIELDS)
    after = {k: fields[k] for k in _POOL_FIELDS}
    for key, value in fields.items():
        if key != "pool_id":
            setattr(pool, key, value)
    pool.content_hash = new_hash
    pool.save()
    record_pulled_templates(pool, actor=ctx.actor)
    action = audit.Action.CREATED if created else audit.Action.UPDATED
    ctx.pool_change = action.value  # "created" or "updated" in the summary
    if created and ctx.baseline:
        return  # the baseline's `imported` event of the pool carries its settings
    ctx.write_events(
        [
            ctx.event(
                action=action,
                object_type="pool",
                object_id=pool.pool_id,
                object_repr=pool.name,
                changes=diff(before, after),
            )
        ]
    )


# App clients and groups -------------------------------------------------------------------------


def _reconcile_small(
    ctx: PullContext,
    *,
    model: type[AppClient] | type[CognitoGroup],
    key: str,
    object_type: str,
    records: Iterable[dict[str, Any]],
    counts: Counts,
) -> None:
    """Create, update and remove the few rows of a pool's clients or groups."""
    existing = {getattr(obj, key): obj for obj in model.objects.filter(pool=ctx.pool)}
    keep = protected(ctx.pool, object_type)
    events = []
    seen: set[str] = set()
    for fields in records:
        ident = fields[key]
        seen.add(ident)
        new_hash = record_hash(fields)
        current = existing.get(ident)
        if current is not None and (current.content_hash == new_hash or ident in keep):
            counts.unchanged += 1
            continue
        before = {} if current is None else model_values(current, fields.keys())
        obj = current or model(pool=ctx.pool)
        for name, value in fields.items():
            setattr(obj, name, value)
        obj.content_hash = new_hash
        obj.save()
        action = audit.Action.CREATED if current is None else audit.Action.UPDATED
        setattr(counts, action.value, getattr(counts, action.value) + 1)  # Counts.created / Counts.updated
        if current is None and ctx.baseline:
            continue  # counted in the baseline's `imported` event
        events.append(
            ctx.event(
                action=action,
                object_type=object_type,
                object_id=ident,
                object_repr=fields.get("name", ident),
                changes=diff(before, fields),
            )
        )
    for ident, obj in existing.items():
        if ident in seen or ident in keep:
            continue
        before = model_values(obj, [f.name for f in model._meta.concrete_fields if f.name not in {"id", "pool", "raw"}])
        obj.delete()
        counts.removed += 1
        events.append(
            ctx.event(
                action=audit.Action.DELETED,
                object_type=object_type,
                object_id=ident,
                object_repr=before.get("name", ident),
                changes={k: [v[1], None] for k, v in diff({}, before).items()},
            )
        )
    ctx.write_events(events)


def _pull_clients(ctx: PullContext) -> None:
    ctx.report("app clients")
    pool_id = ctx.pool.pool_id
    records = (
        client_fields(ctx.gateway.describe_user_pool_client(pool_id, summary["ClientId"]))
        for summary in ctx.gateway.list_user_pool_clients(pool_id)
    )
    _reconcile_small(
        ctx, model=AppClient, key="client_id", object_type="app_client", records=records, counts=ctx.clients
    )


def _pull_groups(ctx: PullContext) -> None:
    ctx.report("groups")
    records = (group_fields(g) for page in ctx.gateway.list_groups(ctx.pool.pool_id) for g in page)
    _reconcile_small(ctx, model=CognitoGroup, key="name", object_type="group", records=records, counts=ctx.groups)
