"""Shared base for the mirror's ModelAdmins."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.admin import helpers
from django.contrib.admin.utils import flatten_fieldsets


class ReadOnlyAdminMixin:
    """No add, change or delete, superusers included (like django-auditlog's LogEntryAdmin): rows
    written only by services, workers and the sync."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions


class MirrorAdmin(admin.ModelAdmin):
    """Rows come from Cognito: never added or deleted here, and read-only until edits go through services.

    Refusing change makes Django render the change page in its "view" mode (every
    field read-only, no save buttons) and answer a POST with 403.
    """

    # Facet counts are one COUNT per filter choice; too costly on the big tables.
    show_facets = admin.ShowFacets.NEVER

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def get_readonly_fields(self, request, obj=None):
        # Everything shown is read-only even if change is granted later, so JSON is
        # never turned into a raw form field by accident.
        declared = list(super().get_readonly_fields(request, obj))
        fieldsets = self.get_fieldsets(request, obj) if self.fieldsets else []
        return [*declared, *(f for f in flatten_fieldsets(fieldsets) if f not in declared)]


def form_page_context(model_admin, request, *, title: str, form: forms.Form, fieldsets, **extra: Any) -> dict[str, Any]:
    """The context of a custom admin page that shows one form as Django's change form does."""
    return {
        **model_admin.admin_site.each_context(request),
        "title": title,
        "opts": model_admin.opts,
        "form": form,
        "adminform": helpers.AdminForm(form, fieldsets, {}),
        "errors": helpers.AdminErrorList(form, []),
        "media": model_admin.media + form.media,
        **extra,
    }
