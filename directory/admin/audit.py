"""The audit log and its chain's verifications: read-only for everyone, superusers included (the
database refuses edits too), with a warning on the admin's index and the log while the latest
verification found the chain broken."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Q
from django.utils.functional import SimpleLazyObject

from .. import selectors
from ..models import AuditEvent, AuditVerification
from .base import ReadOnlyAdminMixin
from .paginator import CappedCountPaginator
from .widgets import changes_table, pretty_json


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at", "actor_display", "source", "action", "object_type", "object_display", "pool_id", "outcome",
    )
    list_filter = ("source", "action", "object_type", "outcome", "pool_id")
    date_hierarchy = "created_at"
    search_fields = ("object_id", "actor", "correlation_id")
    search_help_text = "Exact object id (username, client id, …), operator username or correlation id."
    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    fieldsets = (
        (None, {"fields": ("created_at", "actor_display", "source", "action", "outcome", "correlation_id")}),
        ("Object", {"fields": ("object_type", "object_id", "object_repr", "pool_id")}),
        ("Changes", {"fields": ("changes_display",)}),
        ("Detail", {"fields": ("detail_display",)}),
        ("Hash chain", {"fields": ("prev_hash", "hash"), "classes": ["collapse"]}),
    )
    readonly_fields = (
        "created_at", "actor_display", "source", "action", "outcome", "correlation_id", "object_type",
        "object_id", "object_repr", "pool_id", "changes_display", "detail_display", "prev_hash", "hash",
    )


    def get_search_results(self, request, queryset, search_term):
        # Exact matches on indexed columns; `icontains` would scan the whole log.
        term = search_term.strip()
        if not term:
            return queryset, False
        return queryset.filter(Q(object_id=term) | Q(actor=term) | Q(correlation_id=term)), False

    @admin.display(description="actor", ordering="actor")
    def actor_display(self, obj):
        return obj.actor_display

    @admin.display(description="object", ordering="object_id")
    def object_display(self, obj):
        if obj.object_repr and obj.object_repr != obj.object_id:
            return f"{obj.object_id} ({obj.object_repr})"
        return obj.object_id

    @admin.display(description="changes")
    def changes_display(self, obj):
        return changes_table(obj.changes)

    @admin.display(description="detail")
    def detail_display(self, obj):
        return pretty_json(obj.detail)


@admin.register(AuditVerification)
class AuditVerificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("started_at", "source", "ok", "events", "last_event_id", "broken_event_id", "problem")
    list_filter = ("ok", "source")
    show_facets = admin.ShowFacets.NEVER
    fields = (
        "started_at", "finished_at", "source", "ok", "events", "last_event_id", "last_hash", "broken_event_id",
        "problem",
    )
    readonly_fields = fields


def audit_chain_alarm(request):
    """Template context processor: `audit_chain_alarm`, the latest verification if it found the
    chain broken (queried only by the templates that show it: admin/index.html and the log's list)."""
    return {"audit_chain_alarm": SimpleLazyObject(selectors.audit_chain_alarm)}
