"""Users: a changelist that stays fast at a million rows, a read-only user page, and the
operator's writes: bulk actions (run as background jobs), per-user buttons and the attribute editor."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Prefetch, Q
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext

from .. import outbox, selectors
from ..models import AuditEvent, BulkJob, CognitoGroup, CognitoUser, PendingChange, UserPool, UserStatus
from ..services import bulk as bulk_services
from ..services import users as user_services
from ..validation import E164
from .backups import BackupActionsMixin
from .base import MirrorAdmin
from .filters import GroupFilter
from .forms_users import GroupChoiceForm, UserAttributesForm
from .outcome import report_change
from .paginator import CappedCountPaginator
from .resend import code_delivery_display, resend_code_action, resend_code_single, resend_tools
from .user_search import AttributeSearchMixin
from .widgets import EMPTY, changes_table, mapping_table, pretty_json, rows_table

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.IGNORECASE)
AUDIT_HISTORY_LIMIT = 50
PENDING_CHANGES_LIMIT = 20
# How many selected users an intermediate page lists by name.
LISTED_USERS_LIMIT = 100
CSV_COLUMNS = (
    "username", "sub", "email", "email_verified", "phone_number", "name", "status", "enabled", "groups",
    "created", "modified",
)


BulkOperation = BulkJob.Operation


@admin.register(CognitoUser)
class CognitoUserAdmin(BackupActionsMixin, AttributeSearchMixin, MirrorAdmin):
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

    def action_checkbox(self, obj: CognitoUser) -> str:
        """Django's row checkbox, same markup, without rendering a CheckboxInput through the
        template engine for each of a page's 100 rows (a quarter of the page's time)."""
        label = format_html(gettext("Select this object for an action - {}"), str(obj))
        return format_html(
            '<input type="checkbox" name="{}" value="{}" class="action-select" aria-label="{}">',
            helpers.ACTION_CHECKBOX_NAME,
            str(obj.pk),
            label,
        )
    fieldsets = (
        ("User", {"fields": ("username", "sub", "pool", "status", "enabled")}),
        ("Contact", {"fields": ("name", "email", "email_verified", "phone_number", "phone_number_verified")}),
        ("Attributes", {"fields": ("attributes_table",)}),
        ("Groups", {"fields": ("group_list",)}),
        ("Codes and invitations", {"fields": ("code_delivery",)}),
        ("MFA", {"fields": ("mfa_options_display",)}),
        ("Mirror", {"fields": ("remote_created_at", "remote_modified_at", "content_hash")}),
        ("Pending changes", {"fields": ("pending_changes",)}),
        ("History", {"fields": ("audit_history",)}),
    )
    actions = (
        "enable_users", "disable_users", "reset_password", "confirm_sign_up", "mark_email_verified",
        "add_to_group", "remove_from_group", "delete_in_cognito", "export_csv", "resend_code",
        "backup_pool_json", "backup_pool_csv",
    )

    def get_search_results(self, request, queryset, search_term):
        """Index-friendly lookups only: a million-row table cannot be scanned per keystroke.

        Django's default search is `icontains`, i.e. `UPPER(col) LIKE UPPER('%term%')`, which
        no B-tree index serves on PostgreSQL. Instead: a UUID is matched exactly against
        the `sub` attribute (and `username`, which is the sub in pools that sign in by e-mail); a
        term starting with "+" exactly against the `phone_number` attribute (Cognito keeps E.164;
        both through `attributes`' GIN index on PostgreSQL); anything else
        is a case-sensitive PREFIX of `username`/`email` (`LIKE 'term%'`, which a
        B-tree index with text_pattern_ops or a C collation serves) — e-mails are also tried
        lower-cased — and, for plain text without "@", a case-insensitive prefix of `name`
        (`UPPER(name) LIKE 'TERM%'`, served on PostgreSQL by the `UPPER(name)
        text_pattern_ops` index of migration 0004). The whole input is one term (names
        contain spaces), not split into words.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        if UUID_RE.match(term):
            query = selectors.attribute_equals("sub", term.lower(), using=queryset.db) | Q(username=term)
        elif term.startswith("+"):
            query = selectors.attribute_equals("phone_number", "+" + re.sub(r"\D", "", term), using=queryset.db)
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

    @admin.display(description=f"outbox (latest {PENDING_CHANGES_LIMIT})")
    def pending_changes(self, obj):
        changes = PendingChange.objects.filter(
            pool_id=obj.pool_id, object_type="user", object_key=obj.username
        ).order_by("-created_at", "-id")[:PENDING_CHANGES_LIMIT]
        rows = []
        for change in changes:
            after = (change.payload or {}).get("after") or {}
            fields = list(dict.fromkeys([*change.fields, *after]))
            rows.append((
                _change_link(change),
                change.operation,
                change.status,
                changes_table({f: [change.before.get(f), after.get(f)] for f in fields}),
                change.last_error or EMPTY,
                change.actor or EMPTY,
            ))
        return rows_table(("created", "operation", "status", "before → after", "last error", "actor"), rows,
                          empty="No changes sent from here.")

    # --- Permissions (one per action; the model permissions are defined on CognitoUser) ---------------

    def _has(self, request, codename: str) -> bool:
        return request.user.has_perm(f"{self.opts.app_label}.{codename}")

    def has_enable_permission(self, request, obj=None):
        return self._has(request, "enable_cognitouser")

    def has_reset_password_permission(self, request, obj=None):
        return self._has(request, "reset_password_cognitouser")

    def has_confirm_permission(self, request, obj=None):
        return self._has(request, "confirm_cognitouser")

    def has_verify_permission(self, request, obj=None):
        return self._has(request, "verify_cognitouser")

    def has_group_permission(self, request, obj=None):
        return self._has(request, "group_cognitouser")

    def has_delete_in_cognito_permission(self, request, obj=None):
        return self._has(request, "delete_in_cognito_cognitouser")

    def has_export_permission(self, request, obj=None):
        return self._has(request, "export_cognitouser")

    def has_resend_code_permission(self, request, obj=None):
        return self._has(request, "resend_code_cognitouser")

    def has_edit_attributes_permission(self, request, obj=None):
        # Django's own change permission; has_change_permission stays False so the standard
        # change form remains read-only and every edit goes through the attribute editor.
        return self._has(request, "change_cognitouser")

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # deletion goes through Cognito (delete_in_cognito)
        return actions

    # --- Bulk actions: background jobs, never a Cognito call per user inside the request ----------------

    def _start_jobs(self, request, queryset, operation: str, label: str, params: dict | None = None):
        try:
            jobs = bulk_services.bulk_job_start(
                users=queryset, operation=operation, actor=request.user.get_username(), params=params
            )
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
            return None
        total = sum(job.total for job in jobs)
        links = format_html_join(
            ", ", '<a href="{}">job #{} ({}: {} user(s))</a>',
            ((_job_url(job), job.pk, job.pool.name or job.pool.pool_id, job.total) for job in jobs),
        )
        self.message_user(
            request, format_html("{} queued for {} user(s); it runs in the background: {}.", label, total, links),
            messages.SUCCESS,
        )
        return None

    @admin.action(permissions=["enable"], description="Enable selected users in Cognito")
    def enable_users(self, request, queryset):
        return self._start_jobs(request, queryset, BulkOperation.ENABLE, "Enable")

    @admin.action(permissions=["enable"], description="Disable selected users in Cognito")
    def disable_users(self, request, queryset):
        return self._start_jobs(request, queryset, BulkOperation.DISABLE, "Disable")

    @admin.action(permissions=["reset_password"], description="Reset selected users' passwords")
    def reset_password(self, request, queryset):
        return self._start_jobs(request, queryset, BulkOperation.RESET_PASSWORD, "Password reset")

    @admin.action(permissions=["confirm"], description="Confirm selected users' sign-up")
    def confirm_sign_up(self, request, queryset):
        return self._start_jobs(request, queryset, BulkOperation.CONFIRM_SIGN_UP, "Sign-up confirmation")

    @admin.action(permissions=["verify"], description="Mark selected users' e-mail verified")
    def mark_email_verified(self, request, queryset):
        return self._start_jobs(request, queryset, BulkOperation.MARK_EMAIL_VERIFIED, "Marking e-mail verified")

    @admin.action(permissions=["group"], description="Add selected users to a group")
    def add_to_group(self, request, queryset):
        return self._group_action(request, queryset, member=True)

    @admin.action(permissions=["group"], description="Remove selected users from a group")
    def remove_from_group(self, request, queryset):
        return self._group_action(request, queryset, member=False)

    def _selection_pool(self, request, queryset) -> UserPool | None:
        pool_ids = list(queryset.order_by().values_list("pool_id", flat=True).distinct()[:2])
        if len(pool_ids) != 1:
            self.message_user(
                request,
                "The selected users belong to several user pools; groups belong to one pool, so select users "
                "of a single pool (filter the list by pool first).",
                messages.ERROR,
            )
            return None
        return UserPool.objects.get(pk=pool_ids[0])

    def _action_context(self, request, queryset, *, action: str, title: str) -> dict:
        count = queryset.count()
        return {
            **self.admin_site.each_context(request),
            "title": title,
            "subtitle": None,
            "opts": self.opts,
            "action_name": action,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
            # Post back exactly what the changelist posted: the ids, or "all matching" plus the
            # filters (the form posts to the same URL, query string included).
            "selected_ids": request.POST.getlist(helpers.ACTION_CHECKBOX_NAME),
            "select_across": request.POST.get("select_across", "0"),
            "users": queryset[:LISTED_USERS_LIMIT],
            "count": count,
            "more": max(count - LISTED_USERS_LIMIT, 0),
            "media": self.media,
        }

    def _group_action(self, request, queryset, *, member: bool):
        pool = self._selection_pool(request, queryset)
        if pool is None:
            return None
        action = "add_to_group" if member else "remove_from_group"
        confirmed = request.POST.get("confirm") == "yes"
        form = GroupChoiceForm(request.POST if confirmed else None, pool=pool)
        if confirmed and form.is_valid():
            group = form.cleaned_data["group"]
            label = f"Adding to group {group.name}" if member else f"Removing from group {group.name}"
            return self._start_jobs(
                request, queryset, action, label, params={"group": group.pk}
            )
        context = {
            **self._action_context(
                request, queryset, action=action,
                title="Add users to a group" if member else "Remove users from a group",
            ),
            "form": form,
            "pool": pool,
            "member": member,
        }
        return TemplateResponse(request, "admin/directory/cognitouser/group_action.html", context)

    @admin.action(permissions=["resend_code"], description="Resend code or invitation to selected users")
    def resend_code(self, request, queryset):
        """Queue a resend for the users that can get one; name the others and why (state, limit)."""
        return resend_code_action(self, request, queryset)

    @admin.action(permissions=["delete_in_cognito"], description="Delete selected users in Cognito")
    def delete_in_cognito(self, request, queryset):
        if request.POST.get("confirm") == "yes":
            return self._start_jobs(request, queryset, BulkOperation.DELETE, "Deletion in Cognito")
        context = self._action_context(
            request, queryset, action="delete_in_cognito", title="Delete users in Cognito"
        )
        users = list(queryset.select_related("pool").prefetch_related(
            Prefetch("groups", queryset=CognitoGroup.objects.order_by("precedence", "name"))
        )[:LISTED_USERS_LIMIT])
        context["users"] = users
        context["pools"] = sorted({str(u.pool) for u in users})
        return TemplateResponse(request, "admin/directory/cognitouser/delete_in_cognito_action.html", context)

    @admin.action(permissions=["export"], description="Export selected users as CSV")
    def export_csv(self, request, queryset):
        users = queryset.select_related(None).prefetch_related(
            Prefetch("groups", queryset=CognitoGroup.objects.only("name").order_by("name"))
        ).iterator(chunk_size=2000)
        response = StreamingHttpResponse(_csv_rows(users), content_type="text/csv; charset=utf-8")
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="cognito-users-{stamp}.csv"'
        return response

    # --- Per-user buttons and the attribute editor ------------------------------------------------------

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name

        def view(func, name):
            return path(
                f"<path:object_id>/{name.replace('_', '-')}/", self.admin_site.admin_view(func),
                name=f"{info[0]}_{info[1]}_{name}",
            )

        return [
            view(self.enable_view, "enable"),
            view(self.disable_view, "disable"),
            view(self.reset_password_view, "reset_password"),
            view(self.confirm_sign_up_view, "confirm_sign_up"),
            view(self.verify_email_view, "verify_email"),
            view(self.verify_phone_view, "verify_phone"),
            view(self.delete_in_cognito_view, "delete_in_cognito"),
            view(self.attributes_view, "attributes"),
            view(self.resend_code_view, "resend_code"),
            *super().get_urls(),
        ]

    def _user_for(self, request, object_id, has_permission) -> CognitoUser:
        """admin_view checks only is_staff: the permission and the object are checked here."""
        if not has_permission(request):
            raise PermissionDenied
        user = self.get_object(request, unquote(object_id))
        if user is None:
            raise Http404(f"No user with primary key {object_id!r}.")
        return user

    def _change_url(self, user) -> str:
        return reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[user.pk],
            current_app=self.admin_site.name,
        )

    def _run(self, request, user, call, subject: str, *, to_changelist: bool = False, applied_note: str = ""):
        """Call one service; a refusal becomes an error message on the user's page, never a 500. The
        message says whether the change is applied already or on its way (outcome.report_change)."""
        try:
            change = call()
        except ValidationError as exc:
            self.message_user(request, "; ".join(exc.messages), messages.ERROR)
        else:
            if change is None:
                self.message_user(request, f"Nothing to do: {user.label} is already in that state.", messages.INFO)
            else:
                report_change(self, request, subject, change, applied_note=applied_note)
        if not to_changelist and CognitoUser.objects.filter(pk=user.pk).exists():
            return HttpResponseRedirect(self._change_url(user))
        return HttpResponseRedirect(
            reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist", current_app=self.admin_site.name)
        )

    def _post_only(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        return None

    def _set_enabled_view(self, request, object_id, enabled: bool):
        if (refused := self._post_only(request)) is not None:
            return refused
        user = self._user_for(request, object_id, self.has_enable_permission)
        actor = request.user.get_username()
        return self._run(
            request, user,
            lambda: user_services.cognito_user_set_enabled(user=user, enabled=enabled, actor=actor),
            f"{'Enable' if enabled else 'Disable'} {user.label}",
        )

    def enable_view(self, request, object_id):
        return self._set_enabled_view(request, object_id, True)

    def disable_view(self, request, object_id):
        return self._set_enabled_view(request, object_id, False)

    def reset_password_view(self, request, object_id):
        if (refused := self._post_only(request)) is not None:
            return refused
        user = self._user_for(request, object_id, self.has_reset_password_permission)
        actor = request.user.get_username()
        return self._run(
            request, user, lambda: user_services.cognito_user_reset_password(user=user, actor=actor),
            f"Password reset of {user.label}", applied_note="Cognito sends them a code.",
        )

    def confirm_sign_up_view(self, request, object_id):
        if (refused := self._post_only(request)) is not None:
            return refused
        user = self._user_for(request, object_id, self.has_confirm_permission)
        actor = request.user.get_username()
        return self._run(
            request, user, lambda: user_services.cognito_user_confirm_sign_up(user=user, actor=actor),
            f"Confirm the sign-up of {user.label}",
        )

    def _verify_view(self, request, object_id, attribute: str):
        if (refused := self._post_only(request)) is not None:
            return refused
        user = self._user_for(request, object_id, self.has_verify_permission)
        actor = request.user.get_username()
        return self._run(
            request, user,
            lambda: user_services.cognito_user_mark_verified(user=user, attribute=attribute, actor=actor),
            f"Mark {attribute} of {user.label} verified",
        )

    def verify_email_view(self, request, object_id):
        return self._verify_view(request, object_id, "email")

    def verify_phone_view(self, request, object_id):
        return self._verify_view(request, object_id, "phone_number")

    def delete_in_cognito_view(self, request, object_id):
        """GET (or a POST without the confirm flag) shows what goes; POST with it deletes."""
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        user = self._user_for(request, object_id, self.has_delete_in_cognito_permission)
        if request.method == "POST" and request.POST.get("confirm") == "yes":
            actor = request.user.get_username()
            return self._run(
                request, user, lambda: user_services.cognito_user_delete(user=user, actor=actor),
                f"Delete {user.label} in Cognito",
                to_changelist=True,
            )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete {user.label} in Cognito",
            "subtitle": None,
            "opts": self.opts,
            "original": user,
            "groups": user.groups.order_by("precedence", "name"),
            "change_url": self._change_url(user),
        }
        return TemplateResponse(request, "admin/directory/cognitouser/delete_in_cognito.html", context)

    def attributes_view(self, request, object_id):
        if request.method not in ("GET", "POST"):
            return HttpResponseNotAllowed(["GET", "POST"])
        user = self._user_for(request, object_id, self.has_edit_attributes_permission)
        if request.method == "POST":
            form = UserAttributesForm(request.POST, user=user)
            if form.is_valid():
                changed = form.changed_attributes()
                if not changed:
                    self.message_user(request, "No attribute changed.", messages.INFO)
                    return HttpResponseRedirect(self._change_url(user))
                try:
                    change = user_services.cognito_user_update_attributes(
                        user=user, attributes=changed, actor=request.user.get_username()
                    )
                except ValidationError as exc:
                    form.add_service_errors(exc)
                else:
                    subject = f"Change of {', '.join(sorted(changed))} of {user.label}"
                    if change is None:
                        self.message_user(request, f"{subject}: nothing to send.", messages.INFO)
                    else:
                        report_change(self, request, subject, change)
                    return HttpResponseRedirect(self._change_url(user))
        else:
            form = UserAttributesForm(user=user)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Edit attributes of {user.label}",
            "subtitle": None,
            "opts": self.opts,
            "original": user,
            "form": form,
            "media": self.media + form.media,
            "change_url": self._change_url(user),
            "has_pending": outbox.has_active_change(
                pool=user.pool, object_type="user", object_key=user.username,
                operation=PendingChange.Operation.USER_UPDATE_ATTRIBUTES,
            ),
        }
        return TemplateResponse(request, "admin/directory/cognitouser/attributes.html", context)

    def resend_code_view(self, request, object_id):
        """POST: resend inside the request, so the operator sees Cognito's delivery details at once."""
        if (refused := self._post_only(request)) is not None:
            return refused
        user = self._user_for(request, object_id, self.has_resend_code_permission)
        return resend_code_single(self, request, user)

    @admin.display(description="latest resend")
    def code_delivery(self, obj):
        return code_delivery_display(obj)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["directory_tools"] = self._object_tools(request, obj) if obj is not None else []
        if obj is not None:
            context["directory_tools"] += resend_tools(self, request, obj)
        return super().render_change_form(request, context, add, change, form_url, obj)

    def _object_tools(self, request, user) -> list[dict]:
        """The buttons of the user page: (label, url, method), only those the operator may use."""
        def url(name):
            return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}", args=[user.pk],
                           current_app=self.admin_site.name)

        tools = []
        if self.has_edit_attributes_permission(request):
            tools.append({"label": "Edit attributes", "url": url("attributes"), "method": "get"})
        if self.has_enable_permission(request):
            if user.enabled:
                tools.append({"label": "Disable", "url": url("disable"), "method": "post"})
            else:
                tools.append({"label": "Enable", "url": url("enable"), "method": "post"})
        if self.has_reset_password_permission(request) and user.status not in {
            UserStatus.RESET_REQUIRED, UserStatus.UNCONFIRMED, UserStatus.EXTERNAL_PROVIDER,
        }:
            tools.append({"label": "Reset password", "url": url("reset_password"), "method": "post"})
        if self.has_confirm_permission(request) and user.status == UserStatus.UNCONFIRMED:
            tools.append({"label": "Confirm sign-up", "url": url("confirm_sign_up"), "method": "post"})
        if self.has_verify_permission(request):
            if user.email and not user.email_verified:
                tools.append({"label": "Mark e-mail verified", "url": url("verify_email"), "method": "post"})
            if user.phone_number and not user.phone_number_verified:
                tools.append({"label": "Mark phone verified", "url": url("verify_phone"), "method": "post"})
        if self.has_delete_in_cognito_permission(request):
            tools.append({"label": "Delete in Cognito", "url": url("delete_in_cognito"), "method": "get"})
        return tools


def _job_url(job) -> str:
    return reverse("admin:directory_bulkjob_change", args=[job.pk])


def _change_link(change: PendingChange):
    text = f"{change.created_at:%Y-%m-%d %H:%M:%S}"
    try:
        url = reverse("admin:directory_pendingchange_change", args=[change.pk])
    except NoReverseMatch:
        return format_html("{}", text)
    return format_html('<a href="{}">{}</a>', url, text)


class _Echo:
    """A file-like object whose write returns the line, for streaming csv.writer output."""

    def write(self, value):
        return value


_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def _csv_safe(value) -> str:
    """Neutralise spreadsheet formulas (a self-signed-up name can be '=HYPERLINK(...)'); E.164
    phone numbers keep their '+'."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_PREFIXES) and not E164.match(text):
        return "'" + text
    return text


def _csv_rows(users) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(CSV_COLUMNS)
    for user in users:
        yield writer.writerow([
            _csv_safe(v) for v in (
                user.username, user.sub, user.email, "true" if user.email_verified else "false",
                user.phone_number, user.name, user.status, "true" if user.enabled else "false",
                ";".join(g.name for g in user.groups.all()),
                user.remote_created_at.isoformat() if user.remote_created_at else "",
                user.remote_modified_at.isoformat() if user.remote_modified_at else "",
            )
        ])
