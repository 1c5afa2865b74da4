"""Shared by the sync commands: run pulls with a tqdm progress bar and print a summary."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand
from tqdm import tqdm

from directory.audit import Source
from directory.models import SyncRun, UserPool
from directory.sync.lease import sync_pool


def run_syncs(command: BaseCommand, pools: list[UserPool], *, verbosity: int = 1) -> int:
    """Pull each pool in turn; return how many failed."""
    failed = 0
    for pool in pools:
        bar = tqdm(
            total=pool.estimated_number_of_users or None,
            desc=f"{pool.name or pool.pool_id}",
            unit="user",
            file=sys.stderr,
            disable=verbosity < 1,
            leave=True,
        )

        def progress(run: SyncRun, ctx, bar=bar) -> None:
            if ctx.pool.estimated_number_of_users and bar.total != ctx.pool.estimated_number_of_users:
                bar.total = ctx.pool.estimated_number_of_users
            bar.set_postfix_str(run.phase, refresh=False)
            bar.update(run.seen - bar.n)

        run = sync_pool(pool=pool, source=Source.COMMAND, progress=progress)
        bar.close()
        if run.status == SyncRun.Status.SKIPPED:
            command.stdout.write(command.style.WARNING(f"{pool.pool_id} {pool.name}: skipped: {run.error}"))
        elif run.status == SyncRun.Status.SUCCEEDED:
            s = run.summary
            command.stdout.write(
                command.style.SUCCESS(f"{pool.pool_id} {pool.name}: ok")
                + f" in {run.duration.total_seconds():.1f}s; users seen {run.seen}"
                f" (+{run.created} ~{run.updated} -{run.removed} ={run.unchanged});"
                f" clients {_fmt(s.get('clients'))}; groups {_fmt(s.get('groups'))};"
                f" memberships {_fmt(s.get('memberships'))}; pool settings {s.get('pool')}"
            )
        else:
            failed += 1
            command.stderr.write(command.style.ERROR(f"{pool.pool_id} {pool.name}: FAILED: {run.error}"))
    return failed


def _fmt(counts: dict | None) -> str:
    c = counts or {}
    return f"+{c.get('created', 0)} ~{c.get('updated', 0)} -{c.get('removed', 0)} ={c.get('unchanged', 0)}"
