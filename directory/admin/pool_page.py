"""The pool page's sections in the console's order: the ids to copy at the top, the app clients,
users and groups as short tables with links, and the latest history with a link to all of it.

Each function renders one read-only field of UserPoolAdmin; none scans the user table (the
user count is Cognito's estimate and the mirror's count of test users only).
"""

from __future__ import annotations

from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from ..models import AppClient, AuditEvent, CognitoGroup, UserPool
from .widgets import EMPTY, changes_table, copy_value, rows_table

# The pool page's sections, in the console's order: (anchor, title). The fieldsets of
# UserPoolAdmin use the titles; the tab bar at the top links to the anchors.
SECTIONS = (
    ("overview", "Overview"),
    ("app-clients", "App clients"),
    ("users", "Users"),
    ("groups", "Groups"),
    ("sign-in", "Sign-in"),
    ("sign-up", "Sign-up"),
    ("messaging", "Messaging"),
    ("authentication-extensions", "Authentication extensions"),
    ("settings", "Settings"),
    ("history", "History"),
)
HISTORY_INLINE = 10
GROUPS_INLINE = 25


def ids_panel(pool: UserPool) -> SafeString:
    """Pool id, ARN and region, each with a copy button: what the walkthroughs paste into code."""
    rows = [("User pool ID", copy_value(pool.pool_id, "pool-id")), ("Region", copy_value(pool.region, "pool-region"))]
    if pool.arn:
        rows.append(("ARN", copy_value(pool.arn, "pool-arn")))
    return format_html(
        '<table class="directory-table directory-ids">{}</table>',
        format_html_join("", '<tr><th scope="row">{}</th><td>{}</td></tr>', rows),
    )


def app_clients_table(pool: UserPool) -> SafeString:
    clients = AppClient.objects.filter(pool=pool).order_by("name", "pk")
    rows = [
        (
            format_html('<a href="{}">{}</a>', reverse("admin:directory_appclient_change", args=[c.pk]), c.name),
            copy_value(c.client_id),
            "yes" if c.has_secret else "no",
            ", ".join(c.explicit_auth_flows or []) or EMPTY,
        )
        for c in clients
    ]
    return rows_table(("app client", "client ID", "secret", "auth flows"), rows, empty="No app clients yet.")


def users_summary(pool: UserPool) -> SafeString:
    users_url = reverse("admin:directory_cognitouser_changelist")
    return format_html(
        '<p>{} users (Cognito\'s estimate). '
        '<a href="{}?pool__id__exact={}" id="pool-users-link">Browse and search the users</a></p>',
        f"{pool.estimated_number_of_users:,}", users_url, pool.pk,
    )


def groups_table(pool: UserPool) -> SafeString:
    groups = (
        CognitoGroup.objects.filter(pool=pool).annotate(member_total=Count("memberships"))
        .order_by("precedence", "name")
    )
    total = CognitoGroup.objects.filter(pool=pool).count()
    rows = [
        (
            format_html('<a href="{}">{}</a>', reverse("admin:directory_cognitogroup_change", args=[g.pk]), g.name),
            g.precedence,
            g.description,
            f"{g.member_total:,}",
        )
        for g in groups[:GROUPS_INLINE]
    ]
    table = rows_table(("group", "precedence", "description", "members"), rows, empty="No groups.")
    if total <= GROUPS_INLINE:
        return table
    url = reverse("admin:directory_cognitogroup_changelist")
    return format_html('{}<p><a href="{}?pool__id__exact={}">All {} groups</a></p>', table, url, pool.pk, f"{total:,}")


def history_url(pool: UserPool) -> str:
    """The audit log filtered to this pool: paginated, searchable, every event."""
    return reverse("admin:directory_auditevent_changelist") + f"?pool_id={pool.pool_id}"


def history_summary(pool: UserPool) -> SafeString:
    events = list(AuditEvent.objects.filter(pool_id=pool.pool_id).order_by("-created_at", "-id")[:HISTORY_INLINE])
    rows = [
        (
            format_html('<a href="{}">{}</a>', reverse("admin:directory_auditevent_change", args=[e.pk]),
                        f"{e.created_at:%Y-%m-%d %H:%M:%S}"),
            e.actor_display,
            e.source,
            e.action,
            f"{e.object_type} {e.object_id}",
            e.outcome,
            changes_table(e.changes),
        )
        for e in events
    ]
    table = rows_table(("when", "actor", "source", "action", "object", "outcome", "changes"), rows,
                       empty="No recorded events.")
    return format_html('{}<p><a href="{}" id="pool-history-link">All history of this pool (paginated)</a></p>',
                       table, history_url(pool))
