"""`cognito_sync`: pull pools now, with a progress bar and a summary; non-zero exit on failure."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from directory.models import UserPool

from ._progress import run_syncs


class Command(BaseCommand):
    help = "Pull the given pools (by Cognito pool id), or every mirrored pool with --all."

    def add_arguments(self, parser):
        parser.add_argument("pool_ids", nargs="*", metavar="POOL_ID")
        parser.add_argument("--all", action="store_true", help="Sync every pool in the mirror.")

    def handle(self, *args, pool_ids=(), all=False, **options):
        if not pool_ids and not all:
            raise CommandError("name one or more POOL_IDs, or pass --all")
        if all:
            pools = list(UserPool.objects.order_by("name"))
        else:
            found = {p.pool_id: p for p in UserPool.objects.filter(pool_id__in=pool_ids)}
            missing = [pid for pid in pool_ids if pid not in found]
            if missing:
                raise CommandError("unknown pool id(s): " + ", ".join(missing) + " (run cognito_discover first)")
            pools = [found[pid] for pid in pool_ids]
        if not pools:
            self.stdout.write("No pools in the mirror; run cognito_discover first.")
            return
        failed = run_syncs(self, pools, verbosity=options.get("verbosity", 1))
        if failed:
            raise CommandError(f"{failed} of {len(pools)} pool sync(s) failed")
