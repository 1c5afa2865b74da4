"""Resend code: the users action (queued as a bulk job) and the user page's button (answered in the request)."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html

from .. import delivery, selectors
from ..models import BulkJob, UserPool, UserStatus
from ..services import resend as resend_services
from .widgets import EMPTY, rows_table

ELIGIBLE = (UserStatus.FORCE_CHANGE_PASSWORD, UserStatus.UNCONFIRMED)
# Names listed per refusal reason in the action's message.
NAMES_LISTED = 5


def resend_tools(model_admin, request, user) -> list[dict]:
    """The user page's resend button (only for a state that has a pending code) and, in local mode,
    a link to the emulator's log of the messages this user was sent."""
    tools: list[dict] = []
    if model_admin.has_resend_code_permission(request) and user.status in ELIGIBLE:
        label = "Resend invitation" if user.status == UserStatus.FORCE_CHANGE_PASSWORD else "Resend confirmation code"
        url = reverse(
            "admin:directory_cognitouser_resend_code", args=[user.pk], current_app=model_admin.admin_site.name
        )
        tools.append({"label": label, "url": url, "method": "post"})
    if settings.COGNITO_LOCAL_MODE and request.user.has_perm("directory.view_userpool"):
        try:
            url = reverse("admin:directory_userpool_messages_sent", args=[user.pool_id])
        except NoReverseMatch:
            return tools
        tools.append({"label": "Messages sent (emulator)", "url": f"{url}?{urlencode({'username': user.username})}",
                      "method": "get"})
    return tools


def _sent_message(user, result: dict) -> str:
    if result["api"] == "AdminCreateUser":
        what, via = "Invitation with a new temporary password", "AdminCreateUser MessageAction=RESEND"
    else:
        what, via = "Confirmation code", f"ResendConfirmationCode through app client {result.get('client', '?')}"
    return f"{what} sent again to {user.label}: {delivery.describe_delivery(result)} ({via})."


def resend_code_single(model_admin, request, user) -> HttpResponseRedirect:
    try:
        result = resend_services.cognito_user_resend_code(user=user, actor=request.user.get_username())
    except ValidationError as exc:
        model_admin.message_user(request, "; ".join(exc.messages), messages.ERROR)
    else:
        model_admin.message_user(request, _sent_message(user, result), messages.SUCCESS)
        if (warning := selectors.default_email_warning(user.pool)) is not None:
            model_admin.message_user(request, warning, messages.WARNING)
    return HttpResponseRedirect(model_admin._change_url(user))


def _names(usernames: list[str], total: int) -> str:
    shown = ", ".join(usernames[:NAMES_LISTED])
    return shown + (f" and {total - NAMES_LISTED} more" if total > NAMES_LISTED else "")


def resend_code_action(model_admin, request, queryset):
    """Refusals are decided here on the selection as a whole (a few aggregate queries, whatever its
    size); each queued user is checked again by the worker."""
    queryset = queryset.order_by()
    refused = queryset.exclude(status__in=ELIGIBLE)
    for row in refused.values("status").annotate(n=Count("id")).order_by("status"):
        status, total = row["status"], row["n"]
        names = list(
            refused.filter(status=status).order_by("username").values_list("username", flat=True)[:NAMES_LISTED]
        )
        reason = delivery.RESEND_REFUSALS.get(status, f"{status} users have no pending code or invitation")
        model_admin.message_user(
            request, f"Not sent to {total} {status} user(s) ({_names(names, total)}): {reason}.", messages.ERROR
        )
    eligible = queryset.filter(status__in=ELIGIBLE)
    pools = list(UserPool.objects.filter(pk__in=eligible.values("pool_id")))
    since = timezone.now() - timedelta(hours=1)
    for pool in pools:
        at_limit = list(
            selectors.resend_events(pool).filter(created_at__gte=since)
            .values("object_id").annotate(n=Count("id")).filter(n__gte=resend_services.RESEND_LIMIT_PER_HOUR)
            .values_list("object_id", flat=True)
        )
        limited = list(
            eligible.filter(pool=pool, username__in=at_limit).order_by("username").values_list("username", flat=True)
        )
        if limited:
            eligible = eligible.exclude(pool=pool, username__in=limited)
            model_admin.message_user(
                request,
                f"Not sent to {len(limited)} user(s) ({_names(limited, len(limited))}): already "
                f"{resend_services.RESEND_LIMIT_PER_HOUR} codes or invitations in the last hour (limit "
                f"{resend_services.RESEND_LIMIT_PER_HOUR} per user per hour); try again later.",
                messages.ERROR,
            )
    if eligible.exists():
        model_admin._start_jobs(request, eligible, BulkJob.Operation.RESEND_CODE, "Resend of codes and invitations")
        model_admin.message_user(
            request,
            "Cognito's delivery details (medium, masked destination) appear on each user's page and in the "
            "audit log once the call is made.",
            messages.INFO,
        )
    for pool in pools:
        if (warning := selectors.default_email_warning(pool)) is not None:
            model_admin.message_user(request, warning, messages.WARNING)
    return None


def code_delivery_display(user):
    """The latest resend that reached Cognito: when, who, the call, and the delivery (or the error)."""
    event = selectors.latest_code_delivery(user=user)
    if event is None:
        return "No code or invitation re-sent from here."
    detail = event.detail or {}
    api = detail.get("api") or detail.get("operation", "")
    if detail.get("message_action"):
        api = f"{api} {detail['message_action']}"
    outcome = delivery.describe_delivery(detail) if event.outcome == "ok" else detail.get("error") or event.outcome
    when = format_html(
        '<a href="{}">{}</a>', reverse("admin:directory_auditevent_change", args=[event.pk]),
        f"{event.created_at:%Y-%m-%d %H:%M:%S}",
    )
    return rows_table(
        ("when", "actor", "call", "outcome", "delivery"),
        [(when, event.actor_display, api or EMPTY, event.outcome, outcome)],
    )
