"""Bulk jobs: read-only for everyone; a job's page refreshes itself until its changes have landed."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, Q
from django.urls import reverse
from django.utils.html import format_html

from ..models import BulkJob, PendingChange
from .backups import RESTORE_PERMISSION, bulkjob_urls
from .base import ReadOnlyAdminMixin
from .pools import truncate
from .widgets import EMPTY, rows_table

STATUSES = [s.value for s in PendingChange.Status]


@admin.register(BulkJob)
class BulkJobAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at", "operation", "pool", "actor", "status", "progress", "skipped", "changes_summary",
        "finished_at", "error_short",
    )
    list_display_links = ("created_at",)
    list_filter = ("status", "operation", "pool")
    list_select_related = ("pool",)
    date_hierarchy = "created_at"
    show_facets = admin.ShowFacets.NEVER
    fieldsets = (
        (None, {"fields": ("operation", "pool", "actor", "params", "status")}),
        ("Progress", {"fields": ("progress", "skipped", "download", "changes_table", "results_table")}),
        ("Timing", {"fields": ("created_at", "finished_at")}),
        ("Error", {"fields": ("error_display",)}),
    )
    readonly_fields = (
        "operation", "pool", "actor", "params", "status", "progress", "skipped", "changes_table", "created_at",
        "finished_at", "error_display", "results_table", "download",
    )
    change_list_template = "admin/directory/bulkjob/change_list.html"

    def get_urls(self):
        return [*bulkjob_urls(self), *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_restore": request.user.has_perm(RESTORE_PERMISSION)}
        return super().changelist_view(request, extra_context)

    @admin.display(description="file")
    def download(self, obj):
        if obj.operation != BulkJob.Operation.BACKUP_USERS:
            return EMPTY
        if obj.status != BulkJob.Status.DONE:
            return "Being written…"
        results = obj.results or {}
        summary = (f"{results.get('users', 0):,} users, {results.get('groups', 0):,} groups, "
                   f"{results.get('memberships', 0):,} memberships, {results.get('bytes', 0):,} bytes")
        return format_html('<a class="button" href="{}">Download {}</a> {}',
                           reverse("admin:directory_bulkjob_download", args=[obj.pk]),
                           (obj.params or {}).get("format", "json").upper(), summary)


    def get_queryset(self, request):
        # Counted per changelist page (GROUP BY over the page's jobs).
        counts = {f"changes_{s}": Count("changes", filter=Q(changes__status=s)) for s in STATUSES}
        return super().get_queryset(request).annotate(**counts)

    def _counts(self, obj) -> dict[str, int]:
        if hasattr(obj, "changes_pending"):
            return {s: getattr(obj, f"changes_{s}") for s in STATUSES}
        found = dict(obj.changes.values_list("status").annotate(n=Count("id")).order_by())
        return {s: found.get(s, 0) for s in STATUSES}

    @admin.display(description="processed")
    def progress(self, obj):
        return f"{obj.processed:,} / {obj.total:,}"

    @admin.display(description="changes")
    def changes_summary(self, obj):
        counts = {s: n for s, n in self._counts(obj).items() if n}
        return ", ".join(f"{s} {n:,}" for s, n in counts.items()) or EMPTY

    @admin.display(description="changes by status")
    def changes_table(self, obj):
        return rows_table(("status", "changes"), [(s, f"{n:,}") for s, n in self._counts(obj).items()])

    @admin.display(description="results")
    def results_table(self, obj):
        # Per-row outcomes of jobs that do the work themselves (create_test_users).
        results = obj.results or {}
        rows = results.get("rows") or {}
        if not rows:
            return EMPTY
        kinds = ("created", "updated", "skipped", "failed") if "updated" in results else (
            "created", "skipped", "failed")
        counts = ", ".join(f"{k} {results.get(k, 0):,}" for k in kinds)
        groups = results.get("groups")
        if isinstance(groups, dict) and groups:
            counts += "; groups: " + ", ".join(f"{name} {state}" for name, state in sorted(groups.items()))
        table = rows_table(
            ("row", "outcome", "user", "e-mail", "detail"),
            [
                (n, r.get("status", ""), r.get("username", ""), r.get("email", ""), self._row_detail(r))
                for n, r in sorted(rows.items(), key=lambda item: int(item[0]))
            ],
        )
        return format_html("<p>{}</p>{}", counts, table)

    @staticmethod
    def _row_detail(row) -> str:
        failed = ", ".join(f"{g}: {e}" for g, e in (row.get("groups_failed") or {}).items())
        return row.get("error") or row.get("reason") or (f"groups not added: {failed}" if failed else "")

    @admin.display(description="error")
    def error_short(self, obj):
        return truncate(obj.error) or EMPTY

    @admin.display(description="error")
    def error_display(self, obj):
        return format_html("<pre>{}</pre>", obj.error) if obj.error else EMPTY

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["auto_refresh"] = obj is not None and (
            obj.status in {BulkJob.Status.QUEUED, BulkJob.Status.RUNNING}
            or obj.changes.filter(status__in=PendingChange.ACTIVE).exists()
        )
        return super().render_change_form(request, context, add, change, form_url, obj)
