"""Groups, read-only, with their member counts."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from ..models import CognitoGroup
from .base import MirrorAdmin
from .widgets import pretty_json


@admin.register(CognitoGroup)
class CognitoGroupAdmin(MirrorAdmin):
    list_display = ("name", "pool", "precedence", "description", "member_count")
    list_filter = ("pool",)
    list_select_related = ("pool",)
    search_fields = ("name",)
    fieldsets = (
        (None, {"fields": (
            "name", "pool", "precedence", "description", "role_arn", "member_count",
            "remote_created_at", "remote_modified_at",
        )}),
        ("Mirror", {"classes": ("collapse",), "fields": ("content_hash", "raw_json")}),
    )

    def get_queryset(self, request):
        # Counted per changelist page (GROUP BY over the page's groups), not per user row.
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(description="members", ordering="member_total")
    def member_count(self, obj):
        url = reverse("admin:directory_cognitouser_changelist")
        return format_html(
            '<a href="{}?pool__id__exact={}&amp;group={}">{}</a>',
            url, obj.pool_id, obj.pk, f"{getattr(obj, 'member_total', 0):,}",
        )

    @admin.display(description="raw GetGroup record")
    def raw_json(self, obj):
        return pretty_json(obj.raw)
