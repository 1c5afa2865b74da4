"""App clients, read-only. No secret is stored, and none is ever shown."""

from __future__ import annotations

from django.contrib import admin

from ..models import AppClient
from .base import MirrorAdmin
from .widgets import EMPTY, pretty_json, scalar

DEFAULT_UNITS = {"AccessToken": "hours", "IdToken": "hours", "RefreshToken": "days"}


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


@admin.register(AppClient)
class AppClientAdmin(MirrorAdmin):
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
