"""Thin Celery tasks: primary keys in, one service call, safe to run twice."""

from __future__ import annotations

import logging

from celery import shared_task

from .models import UserPool

logger = logging.getLogger(__name__)


@shared_task(name="directory.tasks.sync_pool")
def sync_pool(pool_pk: int, source: str = "worker", actor: str = "") -> int | None:
    """Pull one pool from Cognito into the mirror; returns the SyncRun's pk."""
    from .sync.pull import sync_pool as pull

    pool = UserPool.objects.filter(pk=pool_pk).first()
    if pool is None:
        logger.info("sync_pool: pool %s no longer exists", pool_pk)
        return None
    run = pull(pool=pool, source=source, actor=actor)
    return run.pk


@shared_task(name="directory.tasks.sync_all_pools")
def sync_all_pools() -> int:
    """Fan out one `sync_pool` task per known pool."""
    pks = list(UserPool.objects.values_list("pk", flat=True))
    for pk in pks:
        sync_pool.delay(pk)
    return len(pks)
