"""App clients: settings editable through services.clients.app_client_update. No secret is stored, and none
is ever shown."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError

from ..models import AppClient
from ..services import clients as client_services
from .base import MirrorAdmin
from .groups import add_errors
from .lifecycle import ClientLifecycleMixin
from .provisioning import client_add_view
from .widgets import EMPTY, LinesField, pretty_json, scalar

DEFAULT_UNITS = {"AccessToken": "hours", "IdToken": "hours", "RefreshToken": "days"}
VALIDITY_FIELDS = ("access_token_validity", "id_token_validity", "refresh_token_validity")
LIST_FIELDS = ("explicit_auth_flows", "callback_urls", "logout_urls", "allowed_oauth_flows", "allowed_oauth_scopes")
# Model fields the form edits: CLIENT_SETTINGS but token_validity_units, which the mirror
# cannot hold today (mapping.SECRET_KEYS drops AccessToken/IdToken/RefreshToken keys at any depth).
MODEL_FIELDS = (
    "explicit_auth_flows", *VALIDITY_FIELDS, "callback_urls", "logout_urls", "allowed_oauth_flows",
    "allowed_oauth_scopes", "allowed_oauth_flows_user_pool_client", "prevent_user_existence_errors",
)
EDITABLE_FIELDS = (
    "explicit_auth_flows", "migrate_legacy_flows", *VALIDITY_FIELDS, "callback_urls", "logout_urls",
    "allowed_oauth_flows", "allowed_oauth_scopes", "allowed_oauth_flows_user_pool_client",
    "prevent_user_existence_errors",
)


def token_validity(obj: AppClient) -> str:
    units = {**DEFAULT_UNITS, **(obj.token_validity_units or {})}
    parts = []
    for label, value, key in (
        ("access", obj.access_token_validity, "AccessToken"),
        ("ID", obj.id_token_validity, "IdToken"),
        ("refresh", obj.refresh_token_validity, "RefreshToken"),
    ):
        if value is not None:
            parts.append(f"{label} {value} {units[key]}")
    return ", ".join(parts) or EMPTY


def _enum_choices(shape: str) -> list[tuple[str, str]]:
    return [(v, v) for v in client_services.api_enum(shape)]


class AppClientForm(forms.ModelForm):
    """The settings the console lets operators change; clean() applies the service's own rules."""

    explicit_auth_flows = forms.MultipleChoiceField(
        choices=(), required=False, widget=forms.CheckboxSelectMultiple, label="Explicit auth flows",
    )
    access_token_validity = forms.IntegerField(required=False, min_value=1)
    id_token_validity = forms.IntegerField(required=False, min_value=1, label="ID token validity")
    refresh_token_validity = forms.IntegerField(required=False, min_value=1)
    callback_urls = LinesField(required=False, label="Callback URLs", help_text="One URL per line.")
    logout_urls = LinesField(required=False, label="Sign-out URLs", help_text="One URL per line.")
    allowed_oauth_flows = forms.MultipleChoiceField(
        choices=(), required=False, widget=forms.CheckboxSelectMultiple, label="OAuth flows",
    )
    allowed_oauth_scopes = LinesField(required=False, label="OAuth scopes", help_text="One scope per line.")
    prevent_user_existence_errors = forms.ChoiceField(choices=(), required=False)
    migrate_legacy_flows = forms.BooleanField(
        required=False, label="Migrate to ALLOW_ flows",
        help_text="Replace the legacy auth flows with their ALLOW_ equivalents (ADMIN_NO_SRP_AUTH -> "
        "ALLOW_ADMIN_USER_PASSWORD_AUTH, USER_PASSWORD_AUTH -> ALLOW_USER_PASSWORD_AUTH, CUSTOM_AUTH_FLOW_ONLY -> "
        "ALLOW_CUSTOM_AUTH) plus ALLOW_REFRESH_TOKEN_AUTH. Cognito refuses a mix of the two kinds.",
    )

    class Meta:
        model = AppClient
        fields = MODEL_FIELDS

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Choices from botocore's service model, so new flows appear with a botocore upgrade.
        for name, shape in (
            ("explicit_auth_flows", "ExplicitAuthFlowsType"),
            ("allowed_oauth_flows", "OAuthFlowType"),
        ):
            if name in self.fields:
                self.fields[name].choices = _enum_choices(shape)
        if "prevent_user_existence_errors" in self.fields:
            self.fields["prevent_user_existence_errors"].choices = [
                ("", "–"), *_enum_choices("PreventUserExistenceErrorTypes")
            ]
        legacy = client_services.legacy_flows(self.instance.explicit_auth_flows)
        if legacy and "explicit_auth_flows" in self.fields:
            self.fields["explicit_auth_flows"].help_text = (
                f"This client has legacy auth flows ({', '.join(legacy)}); Cognito refuses a save that mixes them "
                "with ALLOW_ values. Tick \"Migrate to ALLOW_ flows\" to replace them."
            )
        elif "migrate_legacy_flows" in self.fields:
            del self.fields["migrate_legacy_flows"]
        units = {**DEFAULT_UNITS, **(self.instance.token_validity_units or {})}
        for field, key in zip(VALIDITY_FIELDS, ("AccessToken", "IdToken", "RefreshToken"), strict=True):
            if field in self.fields:
                self.fields[field].help_text = f"In {units[key]}."
        self.changes: dict[str, Any] = {}

    def _changed_values(self, cleaned: dict[str, Any]) -> dict[str, Any]:
        client = self.instance
        changes: dict[str, Any] = {}
        for field in MODEL_FIELDS:
            if field not in cleaned:
                continue
            new, old = cleaned[field], getattr(client, field)
            if field in ("explicit_auth_flows", "allowed_oauth_flows"):
                if sorted(new) == sorted(old or []):
                    continue
            elif field in LIST_FIELDS:
                if new == list(old or []):
                    continue
            elif new == old:
                continue
            if new in (None, "") and old not in (None, ""):
                # UpdateUserPoolClient takes no "unset": an empty value would be refused or reset.
                self.add_error(field, "Cognito needs a value here; keep the current one or enter a new one.")
                continue
            changes[field] = new
        return changes

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("migrate_legacy_flows") and "explicit_auth_flows" in cleaned:
            # Only on the operator's explicit request: the mapped flows replace the legacy ones.
            cleaned["explicit_auth_flows"] = client_services.migrate_legacy_flows(cleaned["explicit_auth_flows"])
        changes = self._changed_values(cleaned)
        try:
            client_services.validate_client_changes(self.instance, changes)
        except ValidationError as exc:
            add_errors(self, exc)
        self.changes = changes
        return cleaned


def _without(fieldsets, name: str):
    return tuple((title, {**options, "fields": tuple(f for f in options["fields"] if f != name)})
                 for title, options in fieldsets)


@admin.register(AppClient)
class AppClientAdmin(ClientLifecycleMixin, MirrorAdmin):
    form = AppClientForm
    list_display = ("name", "client_id", "pool", "has_secret", "flows", "token_validities")
    list_filter = ("pool", "has_secret")
    list_select_related = ("pool",)
    search_fields = ("name", "client_id")
    fieldsets = (
        ("App client", {"fields": (
            "name", "client_id", "pool", "has_secret", "remote_created_at", "remote_modified_at",
        )}),
        ("Authentication flows", {"fields": (
            "flows", "auth_session_validity", "prevent_user_existence_errors", "enable_token_revocation",
            "enable_propagate_additional_user_context_data",
        )}),
        ("Tokens", {"fields": ("token_validities",)}),
        ("Attribute permissions", {"fields": ("read_attributes_display", "write_attributes_display")}),
        ("Login pages (OAuth)", {"fields": (
            "allowed_oauth_flows_user_pool_client", "oauth_flows_display", "oauth_scopes_display",
            "callback_urls_display", "logout_urls_display", "default_redirect_uri", "identity_providers_display",
        )}),
        ("Mirror", {"classes": ("collapse",), "fields": ("content_hash", "raw_json")}),
    )
    # Shown to operators who may change the client: the same sections, with form fields.
    edit_fieldsets = (
        ("App client", {"fields": (
            "name", "client_id", "pool", "has_secret", "remote_created_at", "remote_modified_at",
        )}),
        ("Authentication flows", {"fields": (
            "explicit_auth_flows", "migrate_legacy_flows", "auth_session_validity", "prevent_user_existence_errors",
            "enable_token_revocation", "enable_propagate_additional_user_context_data",
        )}),
        # Units stay read-only (see MODEL_FIELDS).
        ("Tokens", {"fields": (
            "access_token_validity", "id_token_validity", "refresh_token_validity", "token_validities",
        )}),
        ("Attribute permissions", {"fields": ("read_attributes_display", "write_attributes_display")}),
        ("Login pages (OAuth)", {"fields": (
            "allowed_oauth_flows_user_pool_client", "allowed_oauth_flows", "allowed_oauth_scopes",
            "callback_urls", "logout_urls", "default_redirect_uri", "identity_providers_display",
        )}),
        ("Mirror", {"classes": ("collapse",), "fields": ("content_hash", "raw_json")}),
    )

    def has_change_permission(self, request, obj=None):
        return admin.ModelAdmin.has_change_permission(self, request, obj)

    def has_add_permission(self, request, obj=None):
        # Adding goes through its own view (provisioning.client_add_view), which calls Cognito.
        return admin.ModelAdmin.has_add_permission(self, request)

    def add_view(self, request, form_url="", extra_context=None):
        return client_add_view(self, request)

    def get_fieldsets(self, request, obj=None):
        if obj is not None and self.has_change_permission(request, obj):
            if not client_services.legacy_flows(obj.explicit_auth_flows):
                return _without(self.edit_fieldsets, "migrate_legacy_flows")
            return self.edit_fieldsets
        return self.fieldsets

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        if obj is not None and self.has_change_permission(request, obj):
            return [f for f in readonly if f not in EDITABLE_FIELDS]
        return readonly

    def save_model(self, request, obj, form, change):
        # The form already wrote the new values onto `obj`; the service compares with the stored row.
        client = AppClient.objects.select_related("pool").get(pk=obj.pk)
        pending = client_services.app_client_update(
            client=client, changes=form.changes, actor=request.user.get_username()
        )
        if pending is None:
            self.message_user(request, f"Nothing to change for {client.name}.", messages.INFO)
        else:
            self.message_user(request, f"Change of {client.name} sent to Cognito.", messages.INFO)

    @admin.display(description="explicit auth flows")
    def flows(self, obj):
        return ", ".join(obj.explicit_auth_flows or []) or EMPTY

    @admin.display(description="token validity")
    def token_validities(self, obj):
        return token_validity(obj)

    @admin.display(description="read attributes")
    def read_attributes_display(self, obj):
        return scalar(obj.read_attributes)

    @admin.display(description="write attributes")
    def write_attributes_display(self, obj):
        return scalar(obj.write_attributes)

    @admin.display(description="OAuth flows")
    def oauth_flows_display(self, obj):
        return scalar(obj.allowed_oauth_flows)

    @admin.display(description="OAuth scopes")
    def oauth_scopes_display(self, obj):
        return scalar(obj.allowed_oauth_scopes)

    @admin.display(description="callback URLs")
    def callback_urls_display(self, obj):
        return scalar(obj.callback_urls)

    @admin.display(description="sign-out URLs")
    def logout_urls_display(self, obj):
        return scalar(obj.logout_urls)

    @admin.display(description="identity providers")
    def identity_providers_display(self, obj):
        return scalar(obj.supported_identity_providers)

    @admin.display(description="raw DescribeUserPoolClient record")
    def raw_json(self, obj):
        # pretty_json drops ClientSecret even if a record ever carried one.
        return pretty_json(obj.raw)
