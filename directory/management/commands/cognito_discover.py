"""`cognito_discover`: ListUserPools in each region, then pull every pool found (pools Cognito no
longer has are marked gone)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from directory import audit
from directory.sync.discovery import discover

from ._progress import run_syncs


class Command(BaseCommand):
    help = "List the user pools of each region (COGNITO_REGIONS by default) and pull each into the mirror."

    def add_arguments(self, parser):
        parser.add_argument(
            "--region", action="append", dest="regions", metavar="REGION", help="Region to scan (repeatable)."
        )
        parser.add_argument("--no-sync", action="store_true", help="Register the pools without pulling them.")

    def handle(self, *args, regions=None, no_sync=False, **options):
        result = discover(regions=regions, source=audit.Source.COMMAND, pull_new=False)
        if result.errors and not result.found:
            raise CommandError(f"discovery failed: {result.summary()}")
        pools = result.found
        self.stdout.write(f"Found {len(pools)} pool(s): " + ", ".join(f"{p.name} ({p.pool_id})" for p in pools))
        self.stdout.write(f"Discovery: {result.summary()}.")
        failed = 0 if no_sync or not pools else run_syncs(self, pools, verbosity=options.get("verbosity", 1))
        if result.errors:
            raise CommandError(f"discovery incomplete: {result.summary()}")
        if failed:
            raise CommandError(f"{failed} of {len(pools)} pool sync(s) failed")
