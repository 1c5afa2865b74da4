"""`cognito_push`: apply pending changes now, in this process."""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError

from directory.gateway import CognitoThrottled, CognitoUnavailable
from directory.models import PendingChange
from directory.sync.push import apply_change


class Command(BaseCommand):
    help = (
        "Apply every pending change in the outbox now. With --wait, also wait for changes that "
        "workers are applying at this moment, and retry throttled ones until the outbox is drained."
    )

    def add_arguments(self, parser):
        parser.add_argument("--wait", action="store_true", help="Wait until nothing is pending or applying.")
        parser.add_argument("--timeout", type=float, default=300, help="Seconds --wait waits at most (300).")

    def handle(self, *args, wait=False, timeout=300, **options):
        deadline = time.monotonic() + timeout
        counts: dict[str, int] = {}
        while True:
            pks = list(
                PendingChange.objects.filter(status=PendingChange.Status.PENDING)
                .order_by("created_at")
                .values_list("pk", flat=True)
            )
            for pk in pks:
                try:
                    change = apply_change(pk)
                except (CognitoThrottled, CognitoUnavailable) as exc:
                    counts["retry later"] = counts.get("retry later", 0) + 1
                    self.stderr.write(f"change {pk}: {exc} (left pending)")
                    continue
                if change is not None:
                    counts[change.status] = counts.get(change.status, 0) + 1
                    if change.status in {"failed", "conflict"}:
                        self.stderr.write(
                            f"change {pk} {change.operation} {change.object_key}: {change.status}: {change.last_error}"
                        )
            active = PendingChange.objects.filter(status__in=PendingChange.ACTIVE).count()
            if not wait or active == 0:
                break
            if time.monotonic() > deadline:
                raise CommandError(f"{active} change(s) still pending or applying after {timeout:.0f}s")
            time.sleep(1)
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing to apply"
        self.stdout.write(f"Outbox: {summary}.")
        if counts.get("failed"):
            raise CommandError(f"{counts['failed']} change(s) failed")
