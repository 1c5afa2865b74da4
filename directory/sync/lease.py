"""A pool's sync lease: at most one pull of a pool at a time, and a crashed worker's claim expires.

The lease lives on the pool row (`sync_lock_token`, `sync_lock_expires_at`). It is taken
with a conditional UPDATE (no token, or an expired one), renewed while the pull runs (from
the pull's progress callback, and on PostgreSQL also from a heartbeat thread) and released
at the end. A worker that dies stops renewing, so its lease expires after
COGNITO_SYNC_LEASE_SECONDS and the next run takes over, marking the dead run failed.

Why not a database lock: a lock held by a connection would need that connection for the
whole pull, and on SQLite there are no row locks. Why not Redis: the embedded mode has none.

Renewals go through the pull's own connection, so if a pull ever holds a transaction open
across renewals, the pool row stays locked by that live pull on PostgreSQL; taking over an
expired lease therefore uses SELECT … FOR UPDATE SKIP LOCKED, which treats a row a live pull
still holds as busy instead of waiting for it. (On SQLite writers are serialised anyway.)
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from .. import audit, search_index
from ..gateway import CognitoGateway
from ..models import SyncRun, UserPool
from . import pull

logger = logging.getLogger(__name__)

WORKER_LOST = "interrupted: worker lost (its sync lease expired)"


class LeaseBusy(Exception):
    """Another sync of the pool holds the lease."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class LeaseLost(Exception):
    """The lease was taken by another run while this one was still going (it had expired)."""


def lease_seconds() -> int:
    return int(getattr(settings, "COGNITO_SYNC_LEASE_SECONDS", 120))


@dataclass
class Lease:
    """A held lease on one pool's sync."""

    pool_pk: int
    token: str
    expires_at: datetime
    ttl: int
    took_over: bool = False
    lost: bool = False
    renewed_at: datetime = field(default_factory=timezone.now)

    def renew(self, *, using: str = "default") -> bool:
        """Push the expiry forward; False if another run holds the lease now.

        A token that vanished (a full save of the pool row written from an older copy)
        is claimed back: nobody else holds the lease then."""
        now = timezone.now()
        expires = now + timedelta(seconds=self.ttl)
        mine = Q(sync_lock_token=self.token) | Q(sync_lock_token="") | Q(sync_lock_expires_at__lt=now)
        updated = (
            UserPool.objects.using(using)
            .filter(mine, pk=self.pool_pk)
            .update(sync_lock_token=self.token, sync_lock_expires_at=expires)
        )
        if updated:
            self.expires_at = expires
            self.renewed_at = now
            return True
        # No row: the pool was deleted, or (another connection) it is not visible yet.
        exists = UserPool.objects.using(using).filter(pk=self.pool_pk).exists()
        if exists:
            self.lost = True
        return not exists

    def renew_if_due(self, pool: UserPool | None = None) -> None:
        """Renew when a quarter of the TTL has passed (cheap to call per page); raise LeaseLost."""
        if self.lost:
            raise LeaseLost("another sync took this pool's lease over")
        if timezone.now() - self.renewed_at < timedelta(seconds=self.ttl / 4):
            return
        if not self.renew():
            raise LeaseLost("another sync took this pool's lease over")
        if pool is not None:
            # The pull may save the pool row whole; it must write the lease as it is now.
            pool.sync_lock_token, pool.sync_lock_expires_at = self.token, self.expires_at

    def release(self) -> None:
        UserPool.objects.filter(pk=self.pool_pk, sync_lock_token=self.token).update(
            sync_lock_token="", sync_lock_expires_at=None
        )


def acquire(pool: UserPool, *, ttl: int | None = None) -> Lease:
    """Take the pool's sync lease, or raise LeaseBusy saying who holds it.

    Over an expired lease (its worker died) the pool's runs still marked `running` are
    marked failed ("interrupted: worker lost"). Not idempotent by design: a second call
    while the lease is held raises LeaseBusy."""
    ttl = ttl or lease_seconds()
    token = uuid.uuid4().hex
    now = timezone.now()
    current = UserPool.objects.filter(pk=pool.pk).values("sync_lock_token", "sync_lock_expires_at").first()
    if current is None:
        raise LeaseBusy("the pool no longer exists")
    if current["sync_lock_token"] and current["sync_lock_expires_at"] and current["sync_lock_expires_at"] > now:
        raise LeaseBusy(_busy_reason(pool, current["sync_lock_expires_at"]))
    free = Q(sync_lock_token="") | Q(sync_lock_expires_at__isnull=True) | Q(sync_lock_expires_at__lt=now)
    with transaction.atomic():
        if connections["default"].features.has_select_for_update_skip_locked:
            # A live pull keeps the row locked in its transaction: skip it rather than wait.
            row = UserPool.objects.select_for_update(skip_locked=True).filter(pk=pool.pk).values(
                "sync_lock_token", "sync_lock_expires_at"
            )
            locked = row.first()
            if locked is None:
                raise LeaseBusy(_busy_reason(pool, current["sync_lock_expires_at"]))
            current = locked
        expires = now + timedelta(seconds=ttl)
        updated = UserPool.objects.filter(free, pk=pool.pk).update(sync_lock_token=token, sync_lock_expires_at=expires)
        if not updated:
            fresh = UserPool.objects.filter(pk=pool.pk).values_list("sync_lock_expires_at", flat=True).first()
            raise LeaseBusy(_busy_reason(pool, fresh))
        took_over = bool(current["sync_lock_token"])
        if took_over:
            stale = SyncRun.objects.filter(pool_id=pool.pk, status=SyncRun.Status.RUNNING, started_at__lt=now)
            stale.update(status=SyncRun.Status.FAILED, error=WORKER_LOST, phase="interrupted", finished_at=now)
            logger.warning("sync lease of %s expired (worker lost); taken over", pool.pool_id)
    pool.sync_lock_token, pool.sync_lock_expires_at = token, expires
    return Lease(pool_pk=pool.pk, token=token, expires_at=expires, ttl=ttl, took_over=took_over, renewed_at=now)


def _busy_reason(pool: UserPool, until: datetime | None) -> str:
    run = SyncRun.objects.filter(pool_id=pool.pk, status=SyncRun.Status.RUNNING).order_by("-started_at").first()
    since = f" since {run.started_at:%Y-%m-%d %H:%M:%S} UTC ({run.source})" if run else ""
    lease = f"; its lease runs until {until:%H:%M:%S} UTC" if until else ""
    return f"another sync of this pool is running{since}{lease}"


@contextmanager
def heartbeat(lease: Lease, *, interval: float | None = None) -> Iterator[None]:
    """Renew the lease from a thread while the block runs, where the database allows a
    second writer (not SQLite, whose single writer is the pull itself)."""
    if connections["default"].vendor == "sqlite":
        yield
        return
    stop = threading.Event()
    every = interval or max(1.0, lease.ttl / 3)

    def beat() -> None:
        try:
            while not stop.wait(every):
                try:
                    if not lease.renew():
                        logger.warning("sync lease of pool %s lost", lease.pool_pk)
                        return
                except Exception:  # noqa: BLE001 - a missed beat is retried; the TTL has slack
                    logger.exception("could not renew the sync lease of pool %s", lease.pool_pk)
        finally:
            connections.close_all()

    thread = threading.Thread(target=beat, name=f"sync-lease-{lease.pool_pk}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(10)


def record_skipped(*, pool: UserPool, source: str, actor: str, reason: str) -> SyncRun:
    """A SyncRun with status `skipped` and the reason, so operators see why nothing ran."""
    now = timezone.now()
    run = SyncRun.objects.using(settings.COGNITO_SYNC_PROGRESS_DB).create(
        pool=pool, source=source, actor=actor, status=SyncRun.Status.SKIPPED, phase="skipped: already running",
        error=reason, finished_at=now,
    )
    logger.info("sync of %s skipped: %s", pool.pool_id, reason)
    return run


def sync_pool(
    *,
    pool: UserPool,
    source: str = audit.Source.WORKER,
    actor: str = "",
    progress: Callable[[SyncRun, Any], None] | None = None,
    gateway: CognitoGateway | None = None,
) -> SyncRun:
    """Pull one pool under its lease (directory.sync.pull.pull_pool does the work).

    If another sync of the pool is running, nothing is pulled and a `skipped` SyncRun saying
    why is returned. Sends only the pull's reads, through a gateway in the budget's `pull` lane."""
    try:
        lease = acquire(pool)
    except LeaseBusy as busy:
        return record_skipped(pool=pool, source=source, actor=actor, reason=busy.reason)
    seen: dict[str, SyncRun] = {}

    def on_progress(run: SyncRun, ctx: Any) -> None:
        seen["run"] = run
        if run.phase != "done":  # the pull's last report comes after its commit
            lease.renew_if_due(pool)
        if progress is not None:
            progress(run, ctx)

    try:
        with heartbeat(lease):
            return pull.pull_pool(
                pool=pool,
                source=source,
                actor=actor,
                gateway=gateway or CognitoGateway(pool.region, purpose="pull"),
                progress=on_progress,
            )
    except LeaseLost:
        # The pull recorded the failure on its run (and rolled its changes back).
        logger.warning("sync of %s abandoned: its lease was taken over", pool.pool_id)
        return SyncRun.objects.using(settings.COGNITO_SYNC_PROGRESS_DB).get(pk=seen["run"].pk)
    finally:
        lease.release()
        # The search texts of the users this pull wrote (queued by its batches), now the pool is free.
        search_index.catch_up_quietly()


def lost_pulls(now: datetime | None = None) -> list[int]:
    """Pools whose pull stopped without ending: a run still `running` while the pool's lease has
    expired (its worker died). The sweeper starts a pull of each; it takes the lease over, records
    the dead run as interrupted and resumes what it had not listed."""
    now = now or timezone.now()
    return sorted(
        set(
            SyncRun.objects.filter(status=SyncRun.Status.RUNNING, pool__sync_lock_expires_at__lt=now)
            .values_list("pool_id", flat=True)
        )
    )
