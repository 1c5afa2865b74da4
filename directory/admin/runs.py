"""Sync runs: read-only for everyone; a running run's page refreshes itself and shows each partition."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from ..models import SyncPartition, SyncRun
from .base import ReadOnlyAdminMixin
from .pools import format_duration, truncate
from .widgets import EMPTY, rows_table


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "started_at", "pool", "status", "source", "finished_at", "duration_display", "pages", "seen",
        "created", "updated", "removed", "unchanged", "error_short",
    )
    list_display_links = ("started_at",)
    list_filter = ("status", "pool", "source")
    list_select_related = ("pool",)
    date_hierarchy = "started_at"
    show_facets = admin.ShowFacets.NEVER
    fieldsets = (
        (None, {"fields": ("pool", "status", "phase", "source", "actor", "correlation_id", "baseline",
                           "resumed_from")}),
        ("Timing", {"fields": ("started_at", "finished_at", "duration_display")}),
        ("Progress", {"fields": ("pages", "seen", "created", "updated", "removed", "unchanged")}),
        ("Partitions", {"fields": ("partitions_display",)}),
        ("Error", {"fields": ("error_display",)}),
    )
    readonly_fields = (
        "pool", "status", "phase", "source", "actor", "correlation_id", "baseline", "resumed_from", "started_at",
        "finished_at", "duration_display", "pages", "seen", "created", "updated", "removed", "unchanged",
        "partitions_display", "error_display",
    )

    @admin.display(description="duration")
    def duration_display(self, obj):
        return format_duration(obj.duration)

    @admin.display(description="error")
    def error_short(self, obj):
        return truncate(obj.error) or EMPTY

    @admin.display(description="error")
    def error_display(self, obj):
        return format_html("<pre>{}</pre>", obj.error) if obj.error else EMPTY

    @admin.display(description="listings")
    def partitions_display(self, obj):
        rows = [
            (
                part.get_kind_display(),
                _listing(part),
                part.status + (" (resumed)" if part.carried else ""),
                part.attempts,
                part.owner.rsplit(":", 1)[0] or EMPTY,
                part.pages, part.seen, part.created, part.updated, part.removed, part.unchanged,
                format_duration(part.finished_at - part.started_at if part.finished_at and part.started_at else None),
                truncate(part.error) or EMPTY,
            )
            for part in obj.partitions.order_by("kind", "key")
        ]
        headers = ("kind", "listing", "status", "attempts", "worker (host:pid)", "pages", "seen", "created",
                   "updated", "removed", "unchanged", "duration", "error")
        return rows_table(headers, rows, empty="No listing yet.")


def _listing(part: SyncPartition) -> str:
    if part.kind == SyncPartition.Kind.MEMBERSHIPS:
        return f"group {part.key}"
    return f'sub ^= "{part.key}"' if part.key else "whole pool"
