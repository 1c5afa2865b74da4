"""Every pool setting an operator sees here, declared once (`POOL_CATALOGUE`), and the app-client keys.

An entry (`settings_spec.Setting`) says: the form field name, label and help, the console section,
where Cognito keeps the value (a path in the pool document: DescribeUserPool's record plus
GetUserPoolMfaConfig's methods under `MfaConfig`), how to read and write it, its rules, the console's
default, the call that carries it, and whether it can change after creation (and if not, why).
From these entries come:

- the Settings page's form (`form_fields`) and the pool page's display (`display_rows`);
- validation (`check_values`: each problem names the field and the rule);
- the change: `apply_values` writes the operator's values into a copy of the pool's document and
  `changed_units` gives the PendingChange's before/after (also the review diff and the audit);
- the push: `unit_value` reads the same units from Cognito's answer, and the calls that carry them;
- the mirror (directory/mirror.py writes a change's units into the pool's document and re-derives
  the columns).

For a create form (the console's "Create user pool"), two functions:

(a) `form_fields(settings, initial=None)` -> {name: django form field} for any catalogue settings
    (entries or names), labelled and explained by the catalogue, initial = the console's default
    for a new pool (or `initial`'s value: a clone passes `read_values(document_from_pool(pool))`).
    `EDITABLE` is "every setting of the Settings page"; the creation-only entries are
    `sign_in_identifiers`, `case_sensitive`, `required_attributes` (their help says they can never
    change). `check_values(values)` applies the same cross-setting rules as the Settings page.
(b) `create_request_parts(values)` turns cleaned values of such fields into
    `{"create": CreateUserPool keyword arguments, "mfa": SetUserPoolMfaConfig keyword arguments
    (without UserPoolId) or None}`: send `create_user_pool(**parts["create"])`, then, if
    `parts["mfa"]`, `set_user_pool_mfa_config(UserPoolId=<new id>, **parts["mfa"])` (CreateUserPool
    carries MFA OFF until a method exists). Tags travel in UserPoolTags, `add_custom_attributes`
    in Schema; settings not in `values` keep Cognito's defaults.

The entries themselves are in settings_pool.py (`POOL_CATALOGUE`, in the console's order); what an
entry is, and the pool document, in settings_spec.py.
Adding a setting is one entry in `POOL_CATALOGUE` (docs/ARCHITECTURE.md, "How to add a setting").
"""

from __future__ import annotations

import copy
from typing import Any

from django import forms

from .models import UserPool
from .settings_pool import CUSTOM_ATTRIBUTE_TYPES, POOL_CATALOGUE, SECTIONS, new_custom_attributes
from .settings_spec import (
    ADD_CUSTOM_ATTRIBUTES,
    CREATE_ONLY,
    MFA_KEY,
    SCHEMA_KEY,
    SET_MFA_CONFIG,
    TAG_RESOURCE,
    UPDATE_USER_POOL,
    Document,
    Setting,
    get_path,
    normalise_document,
    record_from_document,
    set_path,
)

__all__ = [
    "ADD_CUSTOM_ATTRIBUTES", "CLIENT_FIELD_BY_KEY", "CLIENT_SETTINGS", "CREATE_ONLY", "CUSTOM_ATTRIBUTE_TYPES",
    "EDITABLE", "LOCKED", "POOL_CATALOGUE", "POOL_SETTING_FIELDS", "POOL_SETTINGS_BY_NAME", "SECTIONS",
    "SET_MFA_CONFIG", "TAG_RESOURCE", "UPDATE_USER_POOL", "apply_values", "changed_units", "check_values",
    "create_request_parts", "display_rows", "document_from_pool", "form_fields", "mfa_and_document",
    "mfa_request", "read_values", "record_from_document", "same_value", "set_path", "settings_of_units",
    "unit_value", "units_by_call",
]

POOL_SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in POOL_CATALOGUE}
EDITABLE: tuple[Setting, ...] = tuple(s for s in POOL_CATALOGUE if s.changeable)
LOCKED: tuple[Setting, ...] = tuple(s for s in POOL_CATALOGUE if not s.changeable)

# The UserPool columns a settings or template change writes (and a discard puts back). Saves use
# exactly these, so they never write back a stale sync lease or last_synced_at.
POOL_SETTING_FIELDS = [
    "name", "password_policy", "temporary_password_validity_days", "mfa_configuration", "mfa_methods",
    "allow_admin_create_user_only", "deletion_protection", "verification_message_template",
    "admin_create_user_config", "auto_verified_attributes", "user_attribute_update_settings", "schema",
    "email_configuration", "sms_configuration", "lambda_config", "account_recovery_setting",
    "device_configuration", "user_pool_tier", "tags", "raw",
]

# DescribeUserPool keys the mirror keeps in columns of their own (the rest stays in `raw`).
_SMS_KEYS = ("SmsConfiguration", "SmsVerificationMessage", "SmsAuthenticationMessage", "SmsConfigurationFailure")


def document_from_pool(pool: UserPool) -> Document:
    """The pool's document as the mirror holds it (its columns win over `raw`)."""
    record: dict[str, Any] = {k: v for k, v in (pool.raw or {}).items() if k not in _SMS_KEYS}
    policy = dict(pool.password_policy or {})
    admin_create = dict(pool.admin_create_user_config or {})
    admin_create["AllowAdminCreateUserOnly"] = bool(pool.allow_admin_create_user_only)
    record.update({
        "Id": pool.pool_id, "Name": pool.name, "Arn": pool.arn or record.get("Arn"),
        "UsernameAttributes": pool.username_attributes, "AliasAttributes": pool.alias_attributes,
        "SchemaAttributes": pool.schema, "AutoVerifiedAttributes": pool.auto_verified_attributes,
        "Policies": {**(record.get("Policies") or {}), "PasswordPolicy": policy},
        "MfaConfiguration": pool.mfa_configuration, "AdminCreateUserConfig": admin_create,
        "VerificationMessageTemplate": pool.verification_message_template,
        "EmailConfiguration": pool.email_configuration, "LambdaConfig": pool.lambda_config,
        "UserAttributeUpdateSettings": pool.user_attribute_update_settings,
        "AccountRecoverySetting": pool.account_recovery_setting, "DeletionProtection": pool.deletion_protection,
        "UserPoolTier": pool.user_pool_tier, "UserPoolTags": pool.tags,
        "DeviceConfiguration": pool.device_configuration,
        **(pool.sms_configuration or {}),
    })
    if pool.username_case_sensitive is not None:
        record["UsernameConfiguration"] = {"CaseSensitive": pool.username_case_sensitive}
    return normalise_document(record, pool.mfa_methods)


def mfa_and_document(record: dict[str, Any], mfa: dict[str, Any] | None) -> Document:
    """Cognito's answers (DescribeUserPool's record, GetUserPoolMfaConfig) as a document."""
    return normalise_document(record, mfa)


def read_values(document: Document, settings: tuple[Setting, ...] = POOL_CATALOGUE) -> dict[str, Any]:
    """Form values of the settings, as the document holds them."""
    return {s.name: s.read(document) for s in settings}


def form_fields(
    settings: tuple[Setting, ...] | list[str] = EDITABLE, *, initial: dict[str, Any] | None = None
) -> dict[str, forms.Field]:
    """Django form fields for catalogue settings (entries or names), labelled and explained as the
    catalogue says, with `initial` values (default: the console's defaults for a new pool)."""
    chosen = [POOL_SETTINGS_BY_NAME[s] if isinstance(s, str) else s for s in settings]
    fields: dict[str, forms.Field] = {}
    for setting in chosen:
        field = setting.field()
        field.label = setting.label
        field.help_text = setting.help
        value = setting.default if initial is None else initial.get(setting.name, setting.default)
        field.initial = value
        if not setting.changeable:
            field.help_text = f"{setting.help} Cannot be changed after the pool is created: {setting.locked_reason}"
        fields[setting.name] = field
    return fields


def check_values(values: dict[str, Any], settings: tuple[Setting, ...] | None = None) -> dict[str, list[str]]:
    """Each setting's rules against every value (Cognito's prerequisites and shapes): field -> problems."""
    errors: dict[str, list[str]] = {}
    for setting in settings or POOL_CATALOGUE:
        if setting.name in values:
            problems = setting.problems(values[setting.name], values)
            if problems:
                errors[setting.name] = problems
    return errors


def same_value(a: Any, b: Any) -> bool:
    """Equal as settings: lists of names compare as sets (Cognito keeps its own order)."""
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return sorted(map(str, a)) == sorted(map(str, b))
    return a == b


def apply_values(document: Document, values: dict[str, Any]) -> Document:
    """A copy of the document with each setting whose value differs written in (catalogue order, so
    a method's defaults are in place before its messages are compared)."""
    wanted = copy.deepcopy(document)
    for setting in POOL_CATALOGUE:
        if setting.name in values and not same_value(setting.read(wanted), values[setting.name]):
            setting.write(wanted, values[setting.name])
    return wanted


def _units() -> list[str]:
    units: list[str] = []
    for setting in POOL_CATALOGUE:
        if setting.call in (ADD_CUSTOM_ATTRIBUTES, CREATE_ONLY):
            continue  # custom attributes are units one by one; creation-only settings never change
        for unit in (setting.change_unit, *setting.extra.get("units", ())):
            if unit not in units:
                units.append(unit)
    return units


def unit_value(document: Document, unit: str) -> Any:
    """A change unit's value in a document (a custom attribute by the members AddCustomAttributes sets)."""
    value = get_path(document, unit)
    if unit.startswith(SCHEMA_KEY + ".") and isinstance(value, dict):
        return {k: value[k] for k in ("AttributeDataType", "Mutable") if k in value}
    return value


def changed_units(before: Document, after: Document) -> tuple[dict[str, Any], dict[str, Any]]:
    """(before, after) keyed by change unit, for the units that differ: a PendingChange's own."""
    units = _units()
    units.extend(f"{SCHEMA_KEY}.{name}" for name in sorted(new_custom_attributes(before, after)))
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for unit in units:
        if unit_value(before, unit) != unit_value(after, unit):
            old[unit], new[unit] = unit_value(before, unit), unit_value(after, unit)
    return old, new


def settings_of_units(units: list[str]) -> list[Setting]:
    """The catalogue settings a change's units hold."""
    wanted = set(units)
    return [s for s in POOL_CATALOGUE if {s.change_unit, *s.extra.get("units", ())} & wanted]


def units_by_call(units: list[str]) -> dict[str, list[str]]:
    """Which call carries each unit (anything not in the catalogue is UpdateUserPool's)."""
    calls: dict[str, list[str]] = {}
    for unit in units:
        if unit.startswith(SCHEMA_KEY + "."):
            call = ADD_CUSTOM_ATTRIBUTES
        elif unit == MFA_KEY:
            call = SET_MFA_CONFIG
        elif unit == "UserPoolTags":
            call = TAG_RESOURCE
        else:
            call = UPDATE_USER_POOL
        calls.setdefault(call, []).append(unit)
    return calls


def mfa_request(document: Document) -> dict[str, Any]:
    """SetUserPoolMfaConfig's arguments (but UserPoolId) for the document's mode and methods."""
    methods = copy.deepcopy(document.get(MFA_KEY) or {})
    request: dict[str, Any] = {"MfaConfiguration": document.get("MfaConfiguration") or "OFF"}
    request["SoftwareTokenMfaConfiguration"] = {
        "Enabled": bool((methods.get("SoftwareTokenMfaConfiguration") or {}).get("Enabled"))
    }
    if "SmsMfaConfiguration" in methods:
        sms = dict(methods["SmsMfaConfiguration"] or {})
        if document.get("SmsConfiguration"):
            sms["SmsConfiguration"] = document["SmsConfiguration"]
        request["SmsMfaConfiguration"] = sms
    for key in ("EmailMfaConfiguration", "WebAuthnConfiguration"):
        if methods.get(key):
            request[key] = methods[key]
    return request


def create_request_parts(values: dict[str, Any]) -> dict[str, Any]:
    """Cleaned form values of catalogue settings -> {"create": CreateUserPool keyword arguments,
    "mfa": SetUserPoolMfaConfig keyword arguments (without UserPoolId) or None}. Settings not in
    `values` keep Cognito's own defaults; tags travel in UserPoolTags."""
    document = normalise_document({})
    document.pop("AdminCreateUserConfig", None)
    wanted = document
    for setting in POOL_CATALOGUE:
        if setting.name in values:
            setting.write(wanted, values[setting.name])
    record = record_from_document(wanted)
    create: dict[str, Any] = {}
    for key, value in record.items():
        if value in (None, {}, []):
            continue
        if key == "Name":
            create["PoolName"] = value
        elif key == SCHEMA_KEY:
            # CreateUserPool names custom attributes without the `custom:` Cognito puts in front.
            create["Schema"] = [{**a, "Name": a["Name"].removeprefix("custom:")} for a in value]
        elif key == "UsernameConfiguration":
            create["UsernameConfiguration"] = value
        else:
            create[key] = value
    mfa = None
    if wanted.get(MFA_KEY):
        mfa = mfa_request(wanted)
        # CreateUserPool may only say OFF until a method exists; SetUserPoolMfaConfig sets the mode.
        create["MfaConfiguration"] = "OFF"
    return {"create": create, "mfa": mfa}


def display_rows(pool: UserPool) -> list[tuple[str, str, str, str]]:
    """(section, label, value as text, locked reason or "") for each catalogue setting, for the pool page."""
    document = document_from_pool(pool)
    rows = []
    for setting in POOL_CATALOGUE:
        if setting.extra.get("hidden"):
            continue
        value = setting.read(document)
        labels = {str(k): str(v) for k, v in getattr(setting.field(), "choices", ()) if k != ""}
        if labels and isinstance(value, list):
            value = [labels.get(str(v), v) for v in value]
        elif labels and value not in ("", None):
            value = labels.get(str(value), value)
        rows.append((setting.section, setting.label, setting.display(value), setting.locked_reason))
    return rows


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
