"""Each pool and app-client setting an operator may change here, declared once: its model field,
where UpdateUserPool(Client) / Describe* hold it, and what a missing key means.

The services (validation, the outbox request), the push (reading Cognito's value back) and the
mirror (applying or reverting a change) all read this table, so adding an editable setting
means one entry here plus its form field and its range check (docs/ARCHITECTURE.md walks
through it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class PoolSetting:
    """A UserPool field that UpdateUserPool sets at `api_path` (dotted, as in the request)."""

    name: str
    api_path: str
    # What DescribeUserPool's missing key (or the mirror's blank value) means in Cognito.
    absent: Any = None
    # Normalises an operator's value before it is compared and sent.
    coerce: Callable[[Any], Any] = field(default=_same)


# The password policy is one object in the request; `temporary_password_validity_days` is a
# member of it that the mirror also keeps in a column of its own.
PASSWORD_POLICY = PoolSetting("password_policy", "Policies.PasswordPolicy")
TEMPORARY_PASSWORD_DAYS = "temporary_password_validity_days"

POOL_SETTINGS: tuple[PoolSetting, ...] = (
    PASSWORD_POLICY,
    PoolSetting("mfa_configuration", "MfaConfiguration"),
    PoolSetting("allow_admin_create_user_only", "AdminCreateUserConfig.AllowAdminCreateUserOnly", False, bool),
    PoolSetting("deletion_protection", "DeletionProtection", "INACTIVE"),
)
POOL_SETTINGS_BY_NAME = {setting.name: setting for setting in POOL_SETTINGS}
POOL_SETTINGS_BY_PATH = {setting.api_path: setting for setting in POOL_SETTINGS}

# The keys a pool-settings change may carry (`user_pool_update(changes=...)`).
POOL_EDITABLE = frozenset({*POOL_SETTINGS_BY_NAME, TEMPORARY_PASSWORD_DAYS})

# Message templates: edited by their own editor and service, pushed through UpdateUserPool too.
VERIFICATION_TEMPLATE_PATH = "VerificationMessageTemplate"
INVITE_TEMPLATE_PATH = "AdminCreateUserConfig.InviteMessageTemplate"

# The UserPool columns a settings or template change writes (and a discard puts back). Saves use
# exactly these, so they never write back a stale sync lease or last_synced_at.
POOL_SETTING_FIELDS = [
    "password_policy",
    TEMPORARY_PASSWORD_DAYS,
    "mfa_configuration",
    "allow_admin_create_user_only",
    "deletion_protection",
    "verification_message_template",
    "admin_create_user_config",
]


# The UserPool columns each top-level UpdateUserPool key lands in (a re-read after a push audits
# what moved in the other columns).
POOL_FIELDS_BY_REQUEST_KEY = {
    "Policies": {"password_policy", TEMPORARY_PASSWORD_DAYS},
    "MfaConfiguration": {"mfa_configuration"},
    "AdminCreateUserConfig": {"admin_create_user_config", "allow_admin_create_user_only", TEMPORARY_PASSWORD_DAYS},
    "DeletionProtection": {"deletion_protection"},
    "VerificationMessageTemplate": {"verification_message_template"},
    "EmailVerificationMessage": {"verification_message_template"},
    "EmailVerificationSubject": {"verification_message_template"},
    "SmsVerificationMessage": {"verification_message_template", "sms_configuration"},
}


def pool_fields_for_request_keys(paths: list[str]) -> set[str]:
    """The UserPool columns a change's UpdateUserPool paths touch."""
    fields: set[str] = set()
    for path in paths:
        fields |= POOL_FIELDS_BY_REQUEST_KEY.get(path.split(".", 1)[0], set())
    return fields


def pool_value(described: dict[str, Any], path: str) -> Any:
    """A setting's value in a DescribeUserPool record, with Cognito's meaning for a missing key."""
    value: Any = described
    for part in path.split("."):
        if not isinstance(value, dict):
            value = None
            break
        value = value.get(part)
    setting = POOL_SETTINGS_BY_PATH.get(path)
    if value is None and setting is not None and setting.absent is not None:
        return setting.absent
    return value


# AppClient field -> UpdateUserPoolClient key, for what operators may change.
CLIENT_SETTINGS = {
    "explicit_auth_flows": "ExplicitAuthFlows",
    "refresh_token_validity": "RefreshTokenValidity",
    "access_token_validity": "AccessTokenValidity",
    "id_token_validity": "IdTokenValidity",
    "token_validity_units": "TokenValidityUnits",
    "callback_urls": "CallbackURLs",
    "logout_urls": "LogoutURLs",
    "allowed_oauth_flows": "AllowedOAuthFlows",
    "allowed_oauth_scopes": "AllowedOAuthScopes",
    "allowed_oauth_flows_user_pool_client": "AllowedOAuthFlowsUserPoolClient",
    "prevent_user_existence_errors": "PreventUserExistenceErrors",
}
CLIENT_FIELD_BY_KEY = {key: name for name, key in CLIENT_SETTINGS.items()}
