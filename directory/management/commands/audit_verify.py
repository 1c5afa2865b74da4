"""`audit_verify`: walk the audit log's hash chain now and report the first broken link."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from directory import audit_chain


class Command(BaseCommand):
    help = (
        "Walk the audit log's hash chain in id order (a chunk at a time: memory stays flat) and report the "
        "first broken link: an edited row, a removed or inserted one, a cut tail. Stores the outcome, which "
        "the admin warns from. Exits non-zero when the chain is broken."
    )

    def add_arguments(self, parser):
        parser.add_argument("--chunk-size", type=int, default=2000, help="Rows read per query (2000).")

    def handle(self, *args, chunk_size=2000, **options):
        result = audit_chain.verify_and_record(source="command", chunk_size=chunk_size)
        if not result.ok:
            raise CommandError(
                f"audit chain broken at row {result.broken_event_id}: {result.problem} "
                f"({result.events:,} events verified before it)"
            )
        through = f" through row {result.last_event_id} (hash {result.last_hash})" if result.events else ""
        self.stdout.write(f"audit chain intact: {result.events:,} events{through}")
