"""Groups with their member counts; add, change and delete go through the services (and so to Cognito)."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html

from ..models import CognitoGroup
from ..services import groups as group_services
from ..validation import validate_group
from .base import MirrorAdmin
from .outcome import report_change
from .widgets import pretty_json

ADD_FIELDS = ("pool", "name", "description", "precedence", "role_arn")
EDITABLE_FIELDS = ("description", "precedence", "role_arn")


def add_errors(form: forms.Form, exc: ValidationError, *, aliases: dict[str, str] | None = None) -> None:
    """Put a service's ValidationError({field: [...]}) on the form's fields (non-field errors otherwise)."""
    aliases = aliases or {}
    if not hasattr(exc, "error_dict"):
        form.add_error(None, exc)
        return
    for field, errors in exc.message_dict.items():
        target = aliases.get(field, field)
        if target not in form.fields:
            errors = [f"{field}: {e}" for e in errors]
            target = None
        for error in errors:
            form.add_error(target, error)


class CognitoGroupForm(forms.ModelForm):
    """Checks Cognito's rules (and the name's uniqueness in the pool) before any service runs."""

    class Meta:
        model = CognitoGroup
        fields = ADD_FIELDS

    def clean(self):
        cleaned = super().clean()
        adding = self.instance.pk is None
        kwargs = {
            "description": cleaned.get("description") or "",
            "precedence": cleaned.get("precedence"),
            "role_arn": cleaned.get("role_arn") or "",
        }
        if adding and cleaned.get("name") is not None:
            kwargs["name"] = cleaned["name"]
        try:
            validate_group(**kwargs)
        except ValidationError as exc:
            add_errors(self, exc)
        pool, name = cleaned.get("pool"), cleaned.get("name")
        if adding and pool is not None and name and "name" not in self.errors:
            if CognitoGroup.objects.filter(pool=pool, name=name).exists():
                self.add_error("name", f"This pool already has a group named {name}.")
        return cleaned


@admin.register(CognitoGroup)
class CognitoGroupAdmin(MirrorAdmin):
    form = CognitoGroupForm
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
    add_fieldsets = ((None, {"fields": ADD_FIELDS}),)

    # Standard Django permissions: every write below is a service call, audited and pushed.
    def has_add_permission(self, request, obj=None):
        return admin.ModelAdmin.has_add_permission(self, request)

    def has_change_permission(self, request, obj=None):
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def has_delete_permission(self, request, obj=None):
        return admin.ModelAdmin.has_delete_permission(self, request, obj)

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else super().get_fieldsets(request, obj)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        readonly = super().get_readonly_fields(request, obj)
        if self.has_change_permission(request, obj):
            return [f for f in readonly if f not in EDITABLE_FIELDS]
        return readonly

    def get_queryset(self, request):
        # Counted per changelist page (GROUP BY over the page's groups), not per user row.
        return super().get_queryset(request).annotate(member_total=Count("memberships"))

    def save_model(self, request, obj, form, change):
        actor = request.user.get_username()
        data = form.cleaned_data
        if change:
            # The form already wrote the new values onto `obj`; the service compares with the stored row.
            group = CognitoGroup.objects.select_related("pool").get(pk=obj.pk)
            pending = group_services.cognito_group_update(
                group=group, description=data.get("description") or "", precedence=data.get("precedence"),
                role_arn=data.get("role_arn") or "", actor=actor,
            )
            if pending is None:
                self.message_user(request, f"Nothing to change for group {group.name}.", messages.INFO)
            else:
                report_change(self, request, f"Change of group {group.name}", pending)
            return
        pending = group_services.cognito_group_create(
            pool=data["pool"], name=data["name"], description=data.get("description") or "",
            precedence=data.get("precedence"), role_arn=data.get("role_arn") or "", actor=actor,
        )
        created = CognitoGroup.objects.get(pool=data["pool"], name=data["name"])
        obj.pk = created.pk
        obj._state.adding = False
        report_change(self, request, f"Creation of group {created.name}", pending)

    def delete_model(self, request, obj):
        pending = group_services.cognito_group_delete(group=obj, actor=request.user.get_username())
        if pending is None:
            self.message_user(request, f"Deletion of group {obj.name} is already on its way to Cognito.", messages.INFO)
        else:
            report_change(self, request, f"Deletion of group {obj.name}", pending)

    def delete_queryset(self, request, queryset):
        actor = request.user.get_username()
        for group in queryset.select_related("pool"):
            group_services.cognito_group_delete(group=group, actor=actor)

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
