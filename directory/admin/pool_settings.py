"""A pool's Settings page: every setting the console changes after creation, built from the settings
catalogue (fields, sections, rules), saved through pool_services.user_pool_update; what can never
change is shown locked, with the reason."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from ..models import UserPool
from ..services import pools as pool_services
from ..settings_catalog import EDITABLE, LOCKED, SECTIONS, display_rows, form_fields, same_value
from .base import form_page_context
from .groups import add_errors

# Settings the form offers: every editable entry (catalogue order).
FORM_SETTINGS = tuple(s for s in EDITABLE if not s.extra.get("no_form"))


def settings_fieldsets() -> list[tuple[str, dict[str, Any]]]:
    """The form's fields by console section, in the console's order."""
    return [
        (section, {"fields": tuple(s.name for s in FORM_SETTINGS if s.section == section)})
        for section in SECTIONS
        if any(s.section == section for s in FORM_SETTINGS)
    ]


class PoolSettingsForm(forms.Form):
    """Every setting the console lets operators change after creation; clean() applies the service's rules
    (Cognito's prerequisites across settings) and keeps the changed values in `changes`."""

    # The fields by console section (the create page's "More settings" groups them the same way).
    fieldsets = settings_fieldsets()

    def __init__(self, *args, pool: UserPool, **kwargs):
        self.pool = pool
        self.current = pool_services.pool_setting_values(pool)
        super().__init__(*args, **kwargs)
        self.fields.update(form_fields(FORM_SETTINGS, initial=self.current))
        self.changes: dict[str, Any] = {}

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        changes = {
            s.name: cleaned[s.name] for s in FORM_SETTINGS
            if s.name in cleaned and not same_value(cleaned[s.name], self.current.get(s.name))
        }
        try:
            self.changes = pool_services.validate_pool_changes(self.pool, changes)
        except ValidationError as exc:
            add_errors(self, exc)
        return cleaned


def locked_rows(pool: UserPool) -> list[tuple[str, str, str]]:
    """(label, value, why it is locked) for the settings that never change after creation."""
    locked = {s.label for s in LOCKED}
    return [(label, value, reason) for _, label, value, reason in display_rows(pool) if label in locked]


def pool_settings_view(model_admin: admin.ModelAdmin, request, object_id):
    """Edit the pool's settings; `admin_view` only checks is_staff, so the permission is checked here.
    The change goes through pool_services.user_pool_update (sent by the worker)."""
    pool = model_admin.get_object(request, unquote(object_id))
    if not request.user.has_perm("directory.change_userpool"):
        raise PermissionDenied
    if pool is None:
        raise Http404(f"No user pool with primary key {object_id!r}.")
    change_url = reverse("admin:directory_userpool_change", args=[pool.pk], current_app=model_admin.admin_site.name)
    if request.method == "POST":
        form = PoolSettingsForm(request.POST, pool=pool)
        if form.is_valid():
            try:
                pending = pool_services.user_pool_update(
                    pool=pool, changes=form.changes, actor=request.user.get_username()
                )
            except ValidationError as exc:
                add_errors(form, exc)
            else:
                if pending is None:
                    model_admin.message_user(request, f"No setting of {pool} changed.", messages.INFO)
                else:
                    model_admin.message_user(request, f"Settings change of {pool} sent to Cognito.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
    else:
        form = PoolSettingsForm(pool=pool)
    context = form_page_context(
        model_admin, request, title=f"Settings of {pool.name}", form=form, fieldsets=settings_fieldsets(),
        original=pool, change_url=change_url, locked=locked_rows(pool),
    )
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/directory/userpool/settings.html", context)


def settings_overview(pool: UserPool) -> str:
    """The pool page's table of every catalogue setting, by section, as the Settings page shows it."""
    rows = format_html_join(
        "", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        ((section, label, value, f"locked: {reason}" if reason else "") for section, label, value, reason
         in display_rows(pool)),
    )
    return format_html(
        '<table class="settings-overview"><thead><tr><th>section</th><th>setting</th><th>value</th><th></th>'
        "</tr></thead><tbody>{}</tbody></table>", rows,
    )
