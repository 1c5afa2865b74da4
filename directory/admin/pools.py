"""User pools: the AWS console's pool page, read-only, with "Sync now"."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, OuterRef, Subquery
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils.html import format_html
from kombu.exceptions import OperationalError

from .. import tasks
from ..models import AppClient, CognitoGroup, SyncRun, UserPool
from .base import MirrorAdmin, MirrorInline
from .widgets import EMPTY, bullet_list, mapping_table, pretty_json, rows_table, scalar

PASSWORD_REQUIREMENTS = (
    ("RequireLowercase", "a lowercase letter"),
    ("RequireUppercase", "an uppercase letter"),
    ("RequireNumbers", "a number"),
    ("RequireSymbols", "a symbol"),
)


def format_duration(value: timedelta | None) -> str:
    if value is None:
        return EMPTY
    seconds = value.total_seconds()
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {seconds:02d}s" if hours else f"{minutes}m {seconds:02d}s"


def sync_runs_table(runs, *, show_pool: bool = False):
    rows = []
    for run in runs:
        link = format_html(
            '<a href="{}">{}</a>',
            reverse("admin:directory_syncrun_change", args=[run.pk]),
            f"{run.started_at:%Y-%m-%d %H:%M:%S}",
        )
        row = [link, run.status, run.source, run.actor, format_duration(run.duration), run.pages,
               run.seen, run.created, run.updated, run.removed, run.unchanged, truncate(run.error)]
        if show_pool:
            row.insert(1, str(run.pool))
        rows.append(row)
    headers = ["started", "status", "source", "actor", "duration", "pages", "seen", "created", "updated",
               "removed", "unchanged", "error"]
    if show_pool:
        headers.insert(1, "pool")
    return rows_table(headers, rows, empty="No sync has run yet.")


def truncate(text: str, length: int = 80) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= length else text[: length - 1] + "…"


class AppClientInline(MirrorInline):
    model = AppClient
    fields = ("name", "client_id", "has_secret", "flows")
    readonly_fields = fields
    verbose_name_plural = "app clients"

    @admin.display(description="explicit auth flows")
    def flows(self, obj):
        return ", ".join(obj.explicit_auth_flows or []) or EMPTY


class CognitoGroupInline(MirrorInline):
    model = CognitoGroup
    fields = ("name", "precedence", "description", "member_count")
    readonly_fields = fields
    verbose_name_plural = "groups"

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    @admin.display(description="members")
    def member_count(self, obj):
        return getattr(obj, "member_total", None)


@admin.register(UserPool)
class UserPoolAdmin(MirrorAdmin):
    list_display = (
        "name", "pool_id", "region", "estimated_users", "mfa", "deletion_protection",
        "last_synced_at", "last_sync_status",
    )
    list_filter = ("region", "mfa_configuration", "deletion_protection")
    search_fields = ("name", "pool_id")
    inlines = (AppClientInline, CognitoGroupInline)
    fieldsets = (
        ("Overview", {"fields": (
            "name", "pool_id", "arn", "region", "status", "user_pool_tier", "remote_created_at",
            "remote_modified_at", "estimated_users", "tags_table",
        )}),
        ("Sign-in", {"fields": (
            "username_attributes_display", "alias_attributes_display", "username_case_sensitive",
            "mfa", "password_policy_display",
        )}),
        ("Sign-up", {"fields": (
            "self_sign_up", "schema_table", "auto_verified_attributes_display", "attribute_update_display",
        )}),
        ("Messaging", {"fields": (
            "verification_message_display", "invitation_display", "email_configuration_display",
            "sms_configuration_display",
        )}),
        ("Authentication extensions", {"fields": ("lambda_triggers",)}),
        ("Account recovery", {"fields": ("account_recovery_display",)}),
        ("Deletion protection", {"fields": ("deletion_protection",)}),
        ("Recent sync runs", {"fields": ("recent_sync_runs",)}),
        ("Mirror", {"classes": ("collapse",), "fields": (
            "content_hash", "last_synced_at", "created_at", "raw_json",
        )}),
    )

    def get_queryset(self, request):
        latest = SyncRun.objects.filter(pool=OuterRef("pk")).order_by("-started_at", "-pk")
        return super().get_queryset(request).annotate(
            last_sync_status=Subquery(latest.values("status")[:1])
        )

    # --- list columns ---------------------------------------------------------------------------

    @admin.display(description="estimated users", ordering="estimated_number_of_users")
    def estimated_users(self, obj):
        # Cognito's own estimate: counting a million mirrored rows per pool per page is not free.
        url = reverse("admin:directory_cognitouser_changelist")
        return format_html(
            '{} <a href="{}?pool__id__exact={}">(browse)</a>', f"{obj.estimated_number_of_users:,}", url, obj.pk
        )

    @admin.display(description="MFA", ordering="mfa_configuration")
    def mfa(self, obj):
        return obj.get_mfa_configuration_display()

    @admin.display(description="last sync", ordering="last_sync_status")
    def last_sync_status(self, obj):
        return getattr(obj, "last_sync_status", None) or EMPTY

    # --- change page ----------------------------------------------------------------------------

    @admin.display(description="tags")
    def tags_table(self, obj):
        return mapping_table(obj.tags)

    @admin.display(description="username attributes")
    def username_attributes_display(self, obj):
        return scalar(obj.username_attributes) if obj.username_attributes else "none (sign in by username)"

    @admin.display(description="alias attributes")
    def alias_attributes_display(self, obj):
        return scalar(obj.alias_attributes)

    @admin.display(description="password policy")
    def password_policy_display(self, obj):
        policy = dict(obj.password_policy or {})
        policy = dict(policy.get("PasswordPolicy", policy))
        if not policy:
            return EMPTY
        lines = []
        if "MinimumLength" in policy:
            lines.append(f"At least {policy.pop('MinimumLength')} characters")
        required = []
        for key, label in PASSWORD_REQUIREMENTS:
            if policy.pop(key, False):
                required.append(label)
        lines.append("Must contain " + ", ".join(required) if required else "No character classes required")
        days = policy.pop("TemporaryPasswordValidityDays", obj.temporary_password_validity_days)
        if days is not None:
            lines.append(f"Temporary passwords expire after {days} days")
        if "PasswordHistorySize" in policy:
            lines.append(f"Prevents reuse of the last {policy.pop('PasswordHistorySize')} passwords")
        lines.extend(f"{key}: {value}" for key, value in policy.items())
        return bullet_list(lines)

    @admin.display(description="self sign-up allowed", boolean=True)
    def self_sign_up(self, obj):
        return not obj.allow_admin_create_user_only

    @admin.display(description="attribute schema")
    def schema_table(self, obj):
        rows = []
        for attribute in obj.schema or []:
            constraints = {
                **(attribute.get("StringAttributeConstraints") or {}),
                **(attribute.get("NumberAttributeConstraints") or {}),
            }
            rows.append((
                attribute.get("Name", ""),
                attribute.get("AttributeDataType", ""),
                bool(attribute.get("Required")),
                bool(attribute.get("Mutable")),
                ", ".join(f"{k} {v}" for k, v in constraints.items()),
            ))
        return rows_table(("attribute", "type", "required", "mutable", "constraints"), rows)

    @admin.display(description="auto-verified attributes")
    def auto_verified_attributes_display(self, obj):
        return scalar(obj.auto_verified_attributes)

    @admin.display(description="attribute update settings")
    def attribute_update_display(self, obj):
        return mapping_table(obj.user_attribute_update_settings)

    @admin.display(description="verification message")
    def verification_message_display(self, obj):
        return mapping_table(obj.verification_message_template)

    @admin.display(description="invitation message")
    def invitation_display(self, obj):
        config = dict(obj.admin_create_user_config or {})
        template = config.pop("InviteMessageTemplate", {})
        return format_html("{}{}", mapping_table(template), mapping_table(config) if config else "")

    @admin.display(description="email configuration")
    def email_configuration_display(self, obj):
        return mapping_table(obj.email_configuration)

    @admin.display(description="SMS configuration")
    def sms_configuration_display(self, obj):
        return mapping_table(obj.sms_configuration)

    @admin.display(description="Lambda triggers")
    def lambda_triggers(self, obj):
        return mapping_table(obj.lambda_config, headers=("trigger", "function"))

    @admin.display(description="recovery mechanisms")
    def account_recovery_display(self, obj):
        mechanisms = (obj.account_recovery_setting or {}).get("RecoveryMechanisms") or []
        if not mechanisms:
            return mapping_table(obj.account_recovery_setting)
        ordered = sorted(mechanisms, key=lambda m: m.get("Priority", 0))
        return bullet_list(f"{m.get('Priority', '?')}. {m.get('Name', '')}" for m in ordered)

    @admin.display(description="recent sync runs")
    def recent_sync_runs(self, obj):
        runs = obj.sync_runs.select_related("pool").order_by("-started_at", "-pk")[:10]
        table = sync_runs_table(runs)
        url = reverse("admin:directory_syncrun_changelist")
        return format_html('{}<p><a href="{}?pool__id__exact={}">All sync runs</a></p>', table, url, obj.pk)

    @admin.display(description="raw DescribeUserPool record")
    def raw_json(self, obj):
        return pretty_json(obj.raw)

    # --- Sync now -------------------------------------------------------------------------------

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_sync"
        return [
            path("<path:object_id>/sync/", self.admin_site.admin_view(self.sync_view), name=name),
            *super().get_urls(),
        ]

    def has_sync_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.sync_userpool")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_sync": self.has_sync_permission(request),
            "sync_url": reverse("admin:directory_userpool_sync", args=[object_id]),
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def sync_view(self, request, object_id):
        """Start a pull of one pool; `admin_view` only checks is_staff, so the permission is checked here."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        pool = self.get_object(request, unquote(object_id))
        if not self.has_sync_permission(request, pool):
            raise PermissionDenied
        if pool is None:
            raise Http404(f"No user pool with primary key {object_id!r}.")
        try:
            tasks.sync_pool.delay(pool.pk, source="admin", actor=request.user.get_username())
        except OperationalError as exc:
            self.message_user(request, f"Sync of {pool} could not be queued: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"Sync of {pool} started.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:directory_userpool_change", args=[pool.pk], current_app=self.admin_site.name)
        )
