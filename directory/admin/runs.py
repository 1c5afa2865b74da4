"""Sync runs: read-only for everyone; a running run's page refreshes itself."""

from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html

from ..models import SyncRun
from .base import ReadOnlyAdminMixin
from .pools import format_duration, truncate
from .widgets import EMPTY


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
        (None, {"fields": ("pool", "status", "phase", "source", "actor", "correlation_id")}),
        ("Timing", {"fields": ("started_at", "finished_at", "duration_display")}),
        ("Progress", {"fields": ("pages", "seen", "created", "updated", "removed", "unchanged")}),
        ("Error", {"fields": ("error_display",)}),
    )
    readonly_fields = (
        "pool", "status", "phase", "source", "actor", "correlation_id", "started_at", "finished_at",
        "duration_display", "pages", "seen", "created", "updated", "removed", "unchanged", "error_display",
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
