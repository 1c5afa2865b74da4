"""The outbox: every change on its way to Cognito. Read-only; failed or conflicting changes can be
retried and unapplied ones discarded, each with its own permission."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse

from ..models import PendingChange
from ..services import changes as change_services
from .base import ReadOnlyAdminMixin
from .pools import truncate
from .widgets import EMPTY, pretty_json, rows_table, scalar


def _cell(value):
    if isinstance(value, dict | list) and value:
        return pretty_json(value)
    return scalar(value)


@admin.register(PendingChange)
class PendingChangeAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "created_at", "operation", "object_type", "object_key", "pool", "actor", "status", "attempts",
        "throttled", "last_error_short",
    )
    list_filter = ("status", "operation", "object_type", "pool")
    list_select_related = ("pool",)
    search_fields = ("object_key", "actor")
    date_hierarchy = "created_at"
    show_facets = admin.ShowFacets.NEVER
    actions = ("retry_changes", "discard_changes")
    fieldsets = (
        (None, {"fields": (
            "pool", "object_type", "object_key", "operation", "status", "actor", "correlation_id", "job",
        )}),
        ("Values", {"fields": ("values_table",)}),
        ("Delivery", {"fields": (
            "created_at", "updated_at", "applied_at", "attempts", "throttled", "base_version", "last_error_display",
        )}),
        ("Payload", {"classes": ("collapse",), "fields": ("payload_display",)}),
    )
    readonly_fields = (
        "pool", "object_type", "object_key", "operation", "status", "actor", "correlation_id", "job",
        "values_table", "created_at", "updated_at", "applied_at", "attempts", "throttled", "base_version",
        "last_error_display", "payload_display",
    )

    def has_retry_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.retry_pendingchange")

    def has_discard_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.discard_pendingchange")

    # --- display --------------------------------------------------------------------------------

    @admin.display(description="last error")
    def last_error_short(self, obj):
        return truncate(obj.last_error) or EMPTY

    @admin.display(description="last error")
    def last_error_display(self, obj):
        return scalar(obj.last_error)

    @admin.display(description="before / wanted / in Cognito at the conflict")
    def values_table(self, obj):
        after = (obj.payload or {}).get("after") or {}
        remote = obj.remote_values or {}
        fields = list(dict.fromkeys([*(obj.fields or []), *after, *(obj.before or {}), *remote]))
        rows = [
            (field, _cell((obj.before or {}).get(field)), _cell(after.get(field)),
             _cell(remote.get(field)) if field in remote else scalar(None))
            for field in fields
        ]
        return rows_table(("field", "before", "after (wanted)", "Cognito's value (conflict)"), rows)

    @admin.display(description="payload")
    def payload_display(self, obj):
        return pretty_json(obj.payload)

    # --- retry / discard ------------------------------------------------------------------------

    def _run(self, request, changes, service, verb: str) -> None:
        actor = request.user.get_username()
        done = 0
        for change in changes:
            try:
                service(change=change, actor=actor)
            except ValidationError as exc:
                self.message_user(request, f"{change}: {'; '.join(exc.messages)}", messages.ERROR)
            else:
                done += 1
        if done:
            self.message_user(request, f"{done} change(s) {verb}.", messages.SUCCESS)

    @admin.action(permissions=["retry"], description="Retry selected failed or conflicting changes")
    def retry_changes(self, request, queryset):
        self._run(request, queryset.select_related("pool"), change_services.pending_change_retry, "sent again")

    @admin.action(permissions=["discard"], description="Discard selected changes (revert the mirror)")
    def discard_changes(self, request, queryset):
        self._run(request, queryset.select_related("pool"), change_services.pending_change_discard, "discarded")

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/retry/", self.admin_site.admin_view(self.retry_view), name=f"{info}_retry"),
            path("<path:object_id>/discard/", self.admin_site.admin_view(self.discard_view),
                 name=f"{info}_discard"),
            *super().get_urls(),
        ]

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_retry": self.has_retry_permission(request),
            "can_discard": self.has_discard_permission(request),
            "retry_url": reverse("admin:directory_pendingchange_retry", args=[object_id]),
            "discard_url": reverse("admin:directory_pendingchange_discard", args=[object_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _object_view(self, request, object_id, allowed, service, verb):
        """`admin_view` only checks is_staff, so the permission is checked here."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not allowed(request):
            raise PermissionDenied
        change = self.get_object(request, unquote(object_id))
        if change is None:
            raise Http404(f"No pending change with primary key {object_id!r}.")
        self._run(request, [change], service, verb)
        return HttpResponseRedirect(
            reverse("admin:directory_pendingchange_change", args=[change.pk], current_app=self.admin_site.name)
        )

    def retry_view(self, request, object_id):
        return self._object_view(request, object_id, self.has_retry_permission, change_services.pending_change_retry,
                                 "sent again")

    def discard_view(self, request, object_id):
        return self._object_view(request, object_id, self.has_discard_permission,
                                 change_services.pending_change_discard, "discarded")
