"""`cognito_discover`: ListUserPools in each region, then pull every pool found."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from directory.gateway import CognitoError
from directory.sync.discovery import discover_pools

from ._progress import run_syncs


class Command(BaseCommand):
    help = "List the user pools of each region (COGNITO_REGIONS by default) and pull each into the mirror."

    def add_arguments(self, parser):
        parser.add_argument(
            "--region", action="append", dest="regions", metavar="REGION", help="Region to scan (repeatable)."
        )
        parser.add_argument("--no-sync", action="store_true", help="Register the pools without pulling them.")

    def handle(self, *args, regions=None, no_sync=False, **options):
        try:
            pools = discover_pools(regions=regions)
        except CognitoError as exc:
            raise CommandError(f"discovery failed: {exc}") from exc
        self.stdout.write(f"Found {len(pools)} pool(s): " + ", ".join(f"{p.name} ({p.pool_id})" for p in pools))
        if no_sync or not pools:
            return
        failed = run_syncs(self, pools, verbosity=options.get("verbosity", 1))
        if failed:
            raise CommandError(f"{failed} of {len(pools)} pool sync(s) failed")
