"""User pools: the AWS console's pool page, read-only, with "Sync now" and a settings form for what
Cognito lets operators change after creation (through pool_services.user_pool_update)."""

from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Case, IntegerField, OuterRef, Subquery, Value, When
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from kombu.exceptions import OperationalError

from .. import outbox
from ..models import PendingChange, SyncRun, UserPool
from ..sync import schedule
from . import pool_page
from .backups import pool_urls as backup_pool_urls
from .base import MirrorAdmin, form_page_context
from .groups import add_errors
from .lifecycle import PoolLifecycleMixin
from .messagelog import messages_sent_view
from .messages import message_urls
from .pool_settings import PoolSettingsForm, pool_settings_view, settings_overview
from .provisioning import pool_add_view
from .testusers import test_user_context, test_user_urls
from .widgets import EMPTY, bullet_list, changes_table, mapping_table, pretty_json, rows_table, scalar

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


PENDING_CHANGES_LIMIT = 50
def pending_changes_table(changes) -> Any:
    rows = []
    for change in changes:
        after = (change.payload or {}).get("after") or {}
        diff = {k: [change.before.get(k), after.get(k)] for k in (change.fields or list(after))}
        rows.append((
            format_html('<a href="{}">{}</a>', reverse("admin:directory_pendingchange_change", args=[change.pk]),
                        f"{change.created_at:%Y-%m-%d %H:%M:%S}"),
            change.operation,
            f"{change.object_type} {change.object_key}",
            change.status,
            changes_table(diff),
            truncate(change.last_error, 200),
        ))
    return rows_table(("requested", "operation", "object", "status", "before → after", "error"), rows,
                      empty="No changes requested from here.")


@admin.register(UserPool)
class UserPoolAdmin(PoolLifecycleMixin, MirrorAdmin):
    # No region column: every pool id starts with its region (the region filter stays).
    list_display = (
        "name", "pool_id", "estimated_users", "mfa", "deletion_protection",
        "last_synced_at", "last_sync_status",
    )
    list_filter = ("region", "mfa_configuration", "deletion_protection")
    search_fields = ("name", "pool_id")
    fieldsets = (
        ("Overview", {"fields": (
            "ids", "name", "status", "user_pool_tier", "remote_created_at", "remote_modified_at", "estimated_users",
        )}),
        ("App clients", {"fields": ("app_clients",)}),
        ("Users", {"fields": ("users",)}),
        ("Groups", {"fields": ("groups",)}),
        ("Sign-in", {"fields": (
            "username_attributes_display", "alias_attributes_display", "username_case_sensitive",
            "mfa", "password_policy_display", "account_recovery_display",
        )}),
        ("Sign-up", {"fields": (
            "self_sign_up", "schema_table", "auto_verified_attributes_display", "attribute_update_display",
        )}),
        ("Messaging", {"fields": (
            "verification_message_display", "invitation_display", "email_configuration_display",
            "sms_configuration_display",
        )}),
        ("Authentication extensions", {"fields": ("lambda_triggers",)}),
        ("Settings", {"fields": ("settings_overview", "tags_table", "sync_schedule", "recent_sync_runs")}),
        ("History", {"fields": ("pending_changes", "audit_history")}),
        ("Mirror", {"classes": ("collapse",), "fields": (
            "content_hash", "last_synced_at", "created_at", "raw_json",
        )}),
    )

    class Media:
        js = ("directory/copy_buttons.js",)

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

    @admin.display(description="sync schedule")
    def sync_schedule(self, obj):
        url = reverse("admin:directory_userpool_schedule", args=[obj.pk])
        return format_html('{} <a href="{}" id="pool-schedule-link">(change)</a>', schedule.describe(obj), url)

    @admin.display(description="recent sync runs")
    def recent_sync_runs(self, obj):
        runs = obj.sync_runs.select_related("pool").order_by("-started_at", "-pk")[:10]
        table = sync_runs_table(runs)
        url = reverse("admin:directory_syncrun_changelist")
        return format_html('{}<p><a href="{}?pool__id__exact={}">All sync runs</a></p>', table, url, obj.pk)

    @admin.display(description="changes sent to Cognito (active first)")
    def pending_changes(self, obj):
        active = Case(When(status__in=PendingChange.ACTIVE, then=Value(0)), default=Value(1),
                      output_field=IntegerField())
        changes = (
            PendingChange.objects.filter(pool=obj).annotate(active_first=active)
            .order_by("active_first", "-created_at", "-id")[:PENDING_CHANGES_LIMIT]
        )
        url = reverse("admin:directory_pendingchange_changelist")
        return format_html('{}<p><a href="{}?pool__id__exact={}">All changes of this pool</a></p>',
                           pending_changes_table(changes), url, obj.pk)

    @admin.display(description=f"audit history (latest {pool_page.HISTORY_INLINE})")
    def audit_history(self, obj):
        return pool_page.history_summary(obj)

    @admin.display(description="IDs")
    def ids(self, obj):
        return pool_page.ids_panel(obj)

    @admin.display(description="app clients")
    def app_clients(self, obj):
        return pool_page.app_clients_table(obj)

    @admin.display(description="users")
    def users(self, obj):
        return pool_page.users_summary(obj)

    @admin.display(description="groups")
    def groups(self, obj):
        return pool_page.groups_table(obj)

    @admin.display(description="every setting, as the Settings page has it")
    def settings_overview(self, obj):
        return settings_overview(obj)

    @admin.display(description="raw DescribeUserPool record")
    def raw_json(self, obj):
        return pretty_json(obj.raw)

    # --- Sync now -------------------------------------------------------------------------------

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_sync"
        settings_name = f"{self.opts.app_label}_{self.opts.model_name}_settings"
        schedule_name = f"{self.opts.app_label}_{self.opts.model_name}_schedule"
        return [*self.refuse_gone([
            path("<path:object_id>/schedule/", self.admin_site.admin_view(self.schedule_view), name=schedule_name),
            *test_user_urls(self),
            path("<path:object_id>/sync/", self.admin_site.admin_view(self.sync_view), name=name),
            path("<path:object_id>/settings/", self.admin_site.admin_view(partial(pool_settings_view, self)),
                 name=settings_name),
            *message_urls(self),
            path("<path:object_id>/messages-sent/", self.admin_site.admin_view(partial(messages_sent_view, self)),
                 name=f"{self.opts.app_label}_{self.opts.model_name}_messages_sent"),
            *backup_pool_urls(self),
        ]), *super().get_urls()]

    def has_add_permission(self, request, obj=None):
        # Creating goes through its own view (provisioning.pool_add_view), never the mirror's ModelForm.
        return request.user.has_perm(f"{self.opts.app_label}.add_userpool")

    def add_view(self, request, form_url="", extra_context=None):
        return pool_add_view(self, request, settings_form=PoolSettingsForm)

    def has_edit_settings_permission(self, request, obj=None):
        # The change page itself stays read-only (MirrorAdmin); settings change through their own view.
        return request.user.has_perm(f"{self.opts.app_label}.change_userpool")

    def has_sync_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.sync_userpool")

    def history_view(self, request, object_id, extra_context=None):
        """The pool's history is its audit log (paginated there), not Django's LogEntry."""
        pool = self.get_object(request, unquote(object_id))
        if pool is None or not self.has_view_permission(request, pool):
            raise PermissionDenied
        return HttpResponseRedirect(pool_page.history_url(pool))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "pool_sections": pool_page.SECTIONS,
            "can_sync": self.has_sync_permission(request),
            "sync_url": reverse("admin:directory_userpool_sync", args=[object_id]),
            "can_edit_settings": self.has_edit_settings_permission(request),
            "settings_url": reverse("admin:directory_userpool_settings", args=[object_id]),
            "can_edit_messages": request.user.has_perm("directory.edit_messages_userpool"),
            "messages_url": reverse("admin:directory_userpool_messages", args=[object_id]),
            "can_add_pool": self.has_add_permission(request),
            "clone_url": f"{reverse('admin:directory_userpool_add')}?like={object_id}",
            "can_add_client": request.user.has_perm("directory.add_appclient"),
            "can_backup": request.user.has_perm("directory.backup_cognitouser"),
            "backup_url": reverse("admin:directory_userpool_backup", args=[object_id]),
            "can_restore": request.user.has_perm("directory.restore_cognitouser"),
            "restore_url": reverse("admin:directory_userpool_restore", args=[object_id]),
            "add_client_url": f"{reverse('admin:directory_appclient_add')}?pool={object_id}",
            **test_user_context(self, request, object_id),
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
            outbox.enqueue_sync(pool.pk, source="admin", actor=request.user.get_username())
        except OperationalError as exc:
            self.message_user(request, f"Sync of {pool} could not be queued: {exc}", messages.ERROR)
        else:
            self.message_user(request, f"Sync of {pool} started.", messages.SUCCESS)
        return HttpResponseRedirect(
            reverse("admin:directory_userpool_change", args=[pool.pk], current_app=self.admin_site.name)
        )

    # --- Schedule ---------------------------------------------------------------------------------

    def schedule_view(self, request, object_id):
        """Edit how often beat pulls this pool (local only, audited by the service);
        `admin_view` only checks is_staff, so the permission is checked here."""
        pool = self.get_object(request, unquote(object_id))
        if not self.has_edit_settings_permission(request, pool):
            raise PermissionDenied
        if pool is None:
            raise Http404(f"No user pool with primary key {object_id!r}.")
        change_url = reverse("admin:directory_userpool_change", args=[pool.pk], current_app=self.admin_site.name)
        if request.method == "POST":
            form = PoolScheduleForm(request.POST)
            if form.is_valid():
                try:
                    changed = schedule.user_pool_set_sync_interval(
                        pool=pool, minutes=form.cleaned_data["sync_interval_minutes"],
                        actor=request.user.get_username(),
                    )
                except ValidationError as exc:
                    add_errors(form, exc)
                else:
                    message = f"Sync schedule of {pool}: {schedule.describe(pool)}." if changed else (
                        f"The sync schedule of {pool} is unchanged."
                    )
                    self.message_user(request, message, messages.SUCCESS if changed else messages.INFO)
                    return HttpResponseRedirect(change_url)
        else:
            form = PoolScheduleForm(initial={"sync_interval_minutes": pool.sync_interval_minutes})
        context = form_page_context(
            self, request, title=f"Sync schedule of {pool.name}", form=form,
            fieldsets=[(None, {"fields": ("sync_interval_minutes",)})],
            original=pool, change_url=change_url, current=schedule.describe(pool),
        )
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/directory/userpool/schedule.html", context)


class PoolScheduleForm(forms.Form):
    """A pool's sync interval: blank for the default, 0 for off."""

    sync_interval_minutes = forms.IntegerField(
        required=False,
        min_value=0,
        max_value=schedule.MAX_INTERVAL_MINUTES,
        label="Minutes between scheduled pulls",
        help_text=f"Blank: the default from settings (COGNITO_SYNC_INTERVAL_MINUTES); 0: off (manual syncs only); "
        f"at most {schedule.MAX_INTERVAL_MINUTES} (a week).",
    )
