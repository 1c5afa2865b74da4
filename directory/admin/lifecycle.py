"""Deleting pools and app clients in Cognito (`userpool/<pk>/delete/`, `appclient/<pk>/delete/`), pools
gone from Cognito, and "Discover pools" (`userpool/discover/`). Mixed into UserPoolAdmin and
AppClientAdmin; every view checks its own permission (`admin_view` checks only is_staff).

Django's own deletion (the delete view's row delete and the changelist's `delete_selected`) never
runs for these models: the delete view is replaced by one that deletes in Cognito through
`services.lifecycle`, and `delete_selected` is not offered."""

from __future__ import annotations

from functools import wraps

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from ..services import lifecycle
from ..sync import discovery
from .integration import integration_context


class PoolDeleteForm(forms.Form):
    """The pool's name, typed to confirm its deletion."""

    confirm_name = forms.CharField(
        label="Type the pool's name to confirm", max_length=128, strip=False,
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 40}),
    )

    def __init__(self, *args, pool, **kwargs):
        self.pool = pool
        super().__init__(*args, **kwargs)

    def clean_confirm_name(self):
        value = self.cleaned_data["confirm_name"]
        if value != self.pool.name:
            raise forms.ValidationError(
                f"That is not this pool's name. Type {self.pool.name} exactly (case and spaces count)."
            )
        return value


# The pool views that change Cognito (by URL name): a gone pool refuses them.
CHANGES_COGNITO = frozenset({
    "schedule", "create_test_user", "create_test_users", "sync", "settings", "messages", "messages_preview",
    "messages_test_send", "messages_restore", "restore",
})


class NoBulkDeleteMixin:
    """Deletion goes through the Cognito-aware delete view only: no `delete_selected`, and the
    ModelAdmin's row deletes refuse (nothing in the admin calls them any more)."""

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_model(self, request, obj):
        raise PermissionDenied("Delete in Cognito through the delete page.")

    def delete_queryset(self, request, queryset):
        raise PermissionDenied("Delete in Cognito through the delete page.")


class PoolLifecycleMixin(NoBulkDeleteMixin):
    """UserPoolAdmin's deletion in Cognito, gone pools, and "Discover pools"."""

    def has_delete_permission(self, request, obj=None):
        if obj is not None and obj.is_gone:
            return False
        return request.user.has_perm(f"{self.opts.app_label}.delete_userpool")

    def has_discover_permission(self, request):
        return request.user.has_perm(f"{self.opts.app_label}.discover_userpool")

    def get_urls(self):
        name = f"{self.opts.app_label}_{self.opts.model_name}_discover"
        return [path("discover/", self.admin_site.admin_view(self.discover_view), name=name), *super().get_urls()]

    def refuse_gone(self, urls):
        """The pool's own views (UserPoolAdmin.get_urls), those that change Cognito guarded."""
        prefix = f"{self.opts.app_label}_{self.opts.model_name}_"
        for pattern in urls:
            if pattern.name and pattern.name.removeprefix(prefix) in CHANGES_COGNITO:
                pattern.callback = self.refuse_when_gone(pattern.callback)
        return urls

    def refuse_when_gone(self, view):
        """A pool view that would change Cognito answers a gone pool with a message, not a form
        whose change could only fail."""

        @wraps(view)
        def guarded(request, object_id, *args, **kwargs):
            pool = self.model.objects.filter(pk=unquote(object_id)).only("pk", "name", "deleted_at").first()
            if pool is not None and pool.is_gone:
                self.message_user(
                    request, f"{pool.name} is gone from Cognito ({pool.deleted_at:%Y-%m-%d %H:%M}): "
                    "there is nothing left to change, only its history.", messages.ERROR,
                )
                return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change",
                                                    args=[pool.pk]))
            return view(request, object_id, *args, **kwargs)

        return guarded

    def get_list_display(self, request):
        columns = list(super().get_list_display(request))
        return [*columns[:1], "in_cognito", *columns[1:]]

    @admin.display(description="in Cognito", ordering="deleted_at")
    def in_cognito(self, obj):
        if obj.deleted_at is None:
            return "yes"
        return format_html('<strong class="pool-gone">gone</strong> since {}', f"{obj.deleted_at:%Y-%m-%d %H:%M}")

    def changelist_view(self, request, extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "can_discover": self.has_discover_permission(request),
            "discover_url": reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_discover"),
        }
        return super().changelist_view(request, extra_context)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        pool = self.get_object(request, unquote(object_id))
        extra_context = dict(extra_context or {})
        if pool is not None and pool.is_gone:
            # Nothing left to sync, edit or create in Cognito: only the history.
            for key in ("can_sync", "can_edit_settings", "can_edit_messages", "can_create_test_user",
                        "can_create_test_users", "can_restore"):
                extra_context[key] = False
            extra_context["pool_gone"] = True
        return super().change_view(request, object_id, form_url, extra_context)

    def discover_view(self, request):
        """POST: discover pools in every region of COGNITO_REGIONS now; new ones are pulled."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        if not self.has_discover_permission(request):
            raise PermissionDenied
        result = discovery.discover(actor=request.user.get_username())
        self.message_user(
            request, f"Discovery: {result.summary()}.", messages.WARNING if result.errors else messages.SUCCESS
        )
        return HttpResponseRedirect(reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist"))

    def delete_view(self, request, object_id, extra_context=None):
        """Delete the pool in Cognito after the operator typed its name; refused while Cognito says
        deletion protection is ACTIVE."""
        pool = self.get_object(request, unquote(object_id))
        if pool is None:
            raise Http404(f"No user pool with primary key {object_id!r}.")
        if not request.user.has_perm(f"{self.opts.app_label}.delete_userpool"):
            raise PermissionDenied
        change_url = reverse("admin:directory_userpool_change", args=[pool.pk], current_app=self.admin_site.name)
        if pool.is_gone:
            self.message_user(request, f"{pool} is already gone from Cognito.", messages.INFO)
            return HttpResponseRedirect(change_url)
        refusal = ""
        if request.method == "POST":
            form = PoolDeleteForm(request.POST, pool=pool)
            if form.is_valid():
                try:
                    removed = lifecycle.user_pool_delete(
                        pool=pool, confirm_name=form.cleaned_data["confirm_name"], actor=request.user.get_username()
                    )
                except lifecycle.DeletionRefused as exc:
                    refusal = exc.message
                else:
                    self.message_user(
                        request,
                        f"Pool {pool} was deleted in Cognito, with {removed['users']:,} user(s), "
                        f"{removed['app_clients']} app client(s) and {removed['groups']} group(s). "
                        f"Its history is kept below.",
                        messages.SUCCESS,
                    )
                    return HttpResponseRedirect(change_url)
        else:
            form = PoolDeleteForm(pool=pool)
        preview = lifecycle.pool_deletion_preview(pool=pool)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete pool {pool.name}",
            "opts": self.opts,
            "original": pool,
            "change_url": change_url,
            "form": form,
            "preview": preview,
            "refusal": refusal,
            "audit_url": reverse("admin:directory_auditevent_changelist") + f"?pool_id={pool.pool_id}",
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/directory/userpool/delete.html", context)


class ClientLifecycleMixin(NoBulkDeleteMixin):
    """AppClientAdmin's deletion in Cognito and its integration panel."""

    def has_delete_permission(self, request, obj=None):
        return request.user.has_perm(f"{self.opts.app_label}.delete_appclient")

    def change_view(self, request, object_id, form_url="", extra_context=None):
        client = self.get_object(request, unquote(object_id))
        extra_context = dict(extra_context or {})
        if client is not None:
            extra_context["integration"] = integration_context(client)
        return super().change_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        """Delete the app client in Cognito after a confirmation."""
        client = self.get_object(request, unquote(object_id))
        if client is None:
            raise Http404(f"No app client with primary key {object_id!r}.")
        if not self.has_delete_permission(request, client):
            raise PermissionDenied
        pool = client.pool
        refusal = ""
        if request.method == "POST":
            try:
                lifecycle.app_client_delete(client=client, actor=request.user.get_username())
            except lifecycle.DeletionRefused as exc:
                refusal = exc.message
            else:
                self.message_user(
                    request, f"App client {client.name} ({client.client_id}) was deleted in Cognito.", messages.SUCCESS
                )
                return HttpResponseRedirect(
                    reverse("admin:directory_userpool_change", args=[pool.pk], current_app=self.admin_site.name)
                )
        context = {
            **self.admin_site.each_context(request),
            "title": f"Delete app client {client.name}",
            "opts": self.opts,
            "original": client,
            "pool": pool,
            "change_url": reverse(
                "admin:directory_appclient_change", args=[client.pk], current_app=self.admin_site.name
            ),
            "refusal": refusal,
            **(extra_context or {}),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/directory/appclient/delete.html", context)
