"""Users: a changelist that stays fast at a million rows, and a read-only user page."""

from __future__ import annotations

import re

from django.contrib import admin
from django.db.models import Q
from django.urls import reverse
from django.utils.html import format_html

from ..models import AuditEvent, CognitoUser
from .base import MirrorAdmin
from .filters import GroupFilter
from .paginator import CappedCountPaginator
from .widgets import EMPTY, changes_table, mapping_table, pretty_json, rows_table

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
AUDIT_HISTORY_LIMIT = 50


@admin.register(CognitoUser)
class CognitoUserAdmin(MirrorAdmin):
    list_display = (
        "username", "email", "name", "status", "enabled", "email_verified", "pool", "remote_modified_at",
    )
    list_select_related = ("pool",)
    list_filter = ("pool", "status", "enabled", "email_verified", "phone_number_verified", GroupFilter)
    # Ordering by the pool's column (not the pool's own Meta.ordering, which would join
    # and sort the whole table) matches the (pool, username) unique index.
    ordering = ("pool_id", "username")
    # Column sorting would ORDER BY an unindexed expression (plus Django's "-pk" tie-break):
    # about 2 s per page at a million rows on PostgreSQL. The list keeps its index order.
    sortable_by = ()
    search_fields = ("username", "email", "name", "sub", "phone_number")
    search_help_text = (
        "Username or e-mail prefix, name prefix, an exact sub (UUID), or an exact phone number (+…)."
    )
    paginator = CappedCountPaginator
    show_full_result_count = False
    fieldsets = (
        ("User", {"fields": ("username", "sub", "pool", "status", "enabled")}),
        ("Contact", {"fields": ("name", "email", "email_verified", "phone_number", "phone_number_verified")}),
        ("Attributes", {"fields": ("attributes_table",)}),
        ("Groups", {"fields": ("group_list",)}),
        ("MFA", {"fields": ("mfa_options_display",)}),
        ("Mirror", {"fields": ("remote_created_at", "remote_modified_at", "content_hash")}),
        ("History", {"fields": ("audit_history",)}),
    )

    def get_search_results(self, request, queryset, search_term):
        """Index-friendly lookups only: a million-row table cannot be scanned per keystroke.

        Django's default search is `icontains`, i.e. `UPPER(col) LIKE UPPER('%term%')`, which
        no B-tree index serves on PostgreSQL. Instead: a UUID is matched exactly against
        `sub` (and `username`, which is the sub in pools that sign in by e-mail); a term
        starting with "+" exactly against `phone_number` (Cognito keeps E.164); anything else
        is a case-sensitive PREFIX of `username`/`email` (`LIKE 'term%'`, which a
        B-tree index with text_pattern_ops or a C collation serves) — e-mails are also tried
        lower-cased — and, for plain text without "@", a case-insensitive prefix of `name`
        (`UPPER(name) LIKE 'TERM%'`: no index serves that yet, so plain-text searches of a
        huge pool cost a scan until an `Upper("name")` pattern index exists). The whole input
        is one term (names contain spaces), not split into words.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        if UUID_RE.match(term):
            query = Q(sub=term.lower()) | Q(username=term)
        elif term.startswith("+"):
            query = Q(phone_number="+" + re.sub(r"\D", "", term))
        else:
            query = Q(username__startswith=term) | Q(email__startswith=term)
            if term.lower() != term:
                query |= Q(email__startswith=term.lower())
            if "@" not in term:
                query |= Q(name__istartswith=term)
        return queryset.filter(query), False

    @admin.display(description="attributes")
    def attributes_table(self, obj):
        return mapping_table(dict(sorted((obj.attributes or {}).items())), headers=("attribute", "value"))

    @admin.display(description="groups")
    def group_list(self, obj):
        rows = [
            (
                format_html('<a href="{}">{}</a>', reverse("admin:directory_cognitogroup_change", args=[g.pk]),
                            g.name),
                g.precedence,
                g.description,
            )
            for g in obj.groups.order_by("precedence", "name")
        ]
        return rows_table(("group", "precedence", "description"), rows, empty="Not in any group.")

    @admin.display(description="MFA options")
    def mfa_options_display(self, obj):
        return pretty_json(obj.mfa_options) if obj.mfa_options else EMPTY

    @admin.display(description=f"audit history (latest {AUDIT_HISTORY_LIMIT})")
    def audit_history(self, obj):
        events = AuditEvent.objects.filter(
            object_type="user", object_id=obj.username, pool_id=obj.pool.pool_id
        ).order_by("-created_at", "-id")[:AUDIT_HISTORY_LIMIT]
        rows = [
            (
                format_html('<a href="{}">{}</a>', reverse("admin:directory_auditevent_change", args=[e.pk]),
                            f"{e.created_at:%Y-%m-%d %H:%M:%S}"),
                e.actor_display,
                e.source,
                e.action,
                e.outcome,
                changes_table(e.changes),
            )
            for e in events
        ]
        return rows_table(("when", "actor", "source", "action", "outcome", "changes"), rows,
                          empty="No recorded events.")
