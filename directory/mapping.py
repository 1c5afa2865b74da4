"""Cognito JSON <-> model fields: pure functions, canonical JSON and content hashes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

# Keys that must never be kept anywhere (database, audit log, logs, task arguments).
SECRET_KEYS = frozenset(
    {
        "ClientSecret",
        "TemporaryPassword",
        "Password",
        "ProposedPassword",
        "PreviousPassword",
        "SecretHash",
        "AccessToken",
        "RefreshToken",
        "IdToken",
        "Session",
        "SecretAccessKey",
    }
)

# Attributes mirrored as typed columns on CognitoUser (the rest live in `attributes` only).
# The attributes a user row keeps in columns of their own too (`user_fields_and_nul` spells them
# out, with email_verified and phone_number_verified as booleans).
USER_TYPED_ATTRIBUTES = {
    "sub": "sub",
    "email": "email",
    "phone_number": "phone_number",
    "name": "name",
}


_SCALARS = frozenset({str, bool, int, float, type(None)})


def jsonable(value: Any) -> Any:
    """Turn a boto3 structure into plain JSON types (datetimes become ISO 8601 strings)."""
    kind = type(value)
    if kind in _SCALARS:  # most values: no ABC isinstance checks
        return value
    if kind is dict:
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


# Keys whose members merely share a secret's name (TokenValidityUnits' AccessToken: "hours").
NOT_SECRET_CONTAINERS = frozenset({"TokenValidityUnits", "token_validity_units"})


def without_secrets(value: Any) -> Any:
    """A copy of a structure with every secret-bearing key removed, at any depth."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, Mapping):
        return {
            k: (v if k in NOT_SECRET_CONTAINERS else without_secrets(v))
            for k, v in value.items()
            if k not in SECRET_KEYS
        }
    if isinstance(value, list | tuple):
        return [without_secrets(v) for v in value]
    return value


def canonical_json(value: Any) -> str:
    return json.dumps(jsonable(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """sha256 of the canonical JSON of a mapped record: equal hashes mean nothing to write."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


def to_datetime(value: Any) -> dt.datetime | None:
    """A timezone-aware datetime in UTC (`dt.UTC`), whatever zone botocore parsed it in."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is dt.UTC:
            return value
        return value.astimezone(dt.UTC) if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, tz=dt.UTC)
    return dt.datetime.fromisoformat(str(value))


def _truthy(value: Any) -> bool:
    return str(value).lower() == "true"


# Pools ---------------------------------------------------------------------------------


def normalise_mfa(mfa: Mapping[str, Any] | None) -> dict[str, Any]:
    """GetUserPoolMfaConfig's methods as the mirror keeps them: a disabled method is absent, and the
    SMS method's copy of the pool's SmsConfiguration is left out (the pool's own is the setting)."""
    methods = {k: v for k, v in jsonable(dict(mfa or {})).items() if v is not None}
    methods.pop("MfaConfiguration", None)
    methods.pop("ResponseMetadata", None)
    if not (methods.get("SoftwareTokenMfaConfiguration") or {}).get("Enabled"):
        methods.pop("SoftwareTokenMfaConfiguration", None)
    sms = methods.get("SmsMfaConfiguration")
    if isinstance(sms, dict):
        methods["SmsMfaConfiguration"] = {k: v for k, v in sms.items() if k != "SmsConfiguration" and v is not None}
    return {k: v for k, v in methods.items() if v != {} or k == "SmsMfaConfiguration"}


def pool_fields(
    record: Mapping[str, Any], *, region: str, mfa: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Model fields of a UserPool from DescribeUserPool's `UserPool` (and, when given,
    GetUserPoolMfaConfig's answer: the MFA methods)."""
    raw = jsonable(without_secrets(record))
    admin_create = raw.get("AdminCreateUserConfig") or {}
    policies = raw.get("Policies") or {}
    password_policy = policies.get("PasswordPolicy") or {}
    validity = password_policy.get("TemporaryPasswordValidityDays")
    if validity is None:
        validity = admin_create.get("UnusedAccountValidityDays")
    case = (raw.get("UsernameConfiguration") or {}).get("CaseSensitive")
    return {
        "pool_id": raw["Id"],
        "region": region,
        "name": raw.get("Name", ""),
        "arn": raw.get("Arn", ""),
        "status": raw.get("Status", "") or "",
        "username_attributes": raw.get("UsernameAttributes") or [],
        "alias_attributes": raw.get("AliasAttributes") or [],
        "username_case_sensitive": case,
        "schema": raw.get("SchemaAttributes") or [],
        "auto_verified_attributes": raw.get("AutoVerifiedAttributes") or [],
        "password_policy": password_policy,
        "mfa_configuration": raw.get("MfaConfiguration") or "OFF",
        "admin_create_user_config": admin_create,
        "allow_admin_create_user_only": bool(admin_create.get("AllowAdminCreateUserOnly", False)),
        "temporary_password_validity_days": validity,
        "verification_message_template": raw.get("VerificationMessageTemplate") or {},
        "email_configuration": raw.get("EmailConfiguration") or {},
        "sms_configuration": {
            k: raw[k]
            for k in (
                "SmsConfiguration",
                "SmsVerificationMessage",
                "SmsAuthenticationMessage",
                "SmsConfigurationFailure",
            )
            if k in raw
        },
        "lambda_config": raw.get("LambdaConfig") or {},
        "user_attribute_update_settings": raw.get("UserAttributeUpdateSettings") or {},
        "account_recovery_setting": raw.get("AccountRecoverySetting") or {},
        "device_configuration": raw.get("DeviceConfiguration") or {},
        **({"mfa_methods": normalise_mfa(mfa)} if mfa is not None else {}),
        "deletion_protection": raw.get("DeletionProtection") or "",
        "user_pool_tier": raw.get("UserPoolTier") or "",
        "tags": raw.get("UserPoolTags") or {},
        "estimated_number_of_users": int(raw.get("EstimatedNumberOfUsers") or 0),
        "remote_created_at": to_datetime(raw.get("CreationDate")),
        "remote_modified_at": to_datetime(raw.get("LastModifiedDate")),
        "raw": raw,
    }


# The pool's estimate moves with every sign-up; it is shown but does not make a pool "changed".
POOL_HASH_EXCLUDE = frozenset({"estimated_number_of_users", "raw"})


def pool_hash(fields: Mapping[str, Any]) -> str:
    return content_hash({k: v for k, v in fields.items() if k not in POOL_HASH_EXCLUDE})


# App clients -----------------------------------------------------------------------------


def client_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """Model fields of an AppClient from DescribeUserPoolClient. The secret is dropped here."""
    has_secret = bool(record.get("ClientSecret"))
    raw = jsonable(without_secrets(record))
    return {
        "client_id": raw["ClientId"],
        "name": raw.get("ClientName", ""),
        "has_secret": has_secret,
        "explicit_auth_flows": raw.get("ExplicitAuthFlows") or [],
        "refresh_token_validity": raw.get("RefreshTokenValidity"),
        "access_token_validity": raw.get("AccessTokenValidity"),
        "id_token_validity": raw.get("IdTokenValidity"),
        "token_validity_units": raw.get("TokenValidityUnits") or {},
        "auth_session_validity": raw.get("AuthSessionValidity"),
        "read_attributes": raw.get("ReadAttributes") or [],
        "write_attributes": raw.get("WriteAttributes") or [],
        "callback_urls": raw.get("CallbackURLs") or [],
        "logout_urls": raw.get("LogoutURLs") or [],
        "default_redirect_uri": raw.get("DefaultRedirectURI") or "",
        "allowed_oauth_flows": raw.get("AllowedOAuthFlows") or [],
        "allowed_oauth_scopes": raw.get("AllowedOAuthScopes") or [],
        "allowed_oauth_flows_user_pool_client": bool(raw.get("AllowedOAuthFlowsUserPoolClient", False)),
        "supported_identity_providers": raw.get("SupportedIdentityProviders") or [],
        "prevent_user_existence_errors": raw.get("PreventUserExistenceErrors") or "",
        "enable_token_revocation": raw.get("EnableTokenRevocation"),
        "enable_propagate_additional_user_context_data": raw.get("EnablePropagateAdditionalUserContextData"),
        "remote_created_at": to_datetime(raw.get("CreationDate")),
        "remote_modified_at": to_datetime(raw.get("LastModifiedDate")),
        "raw": raw,
    }


def record_hash(fields: Mapping[str, Any]) -> str:
    return content_hash({k: v for k, v in fields.items() if k != "raw"})


# Groups ------------------------------------------------------------------------------------


def group_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    raw = jsonable(record)
    return {
        "name": raw["GroupName"],
        "description": raw.get("Description") or "",
        "precedence": raw.get("Precedence"),
        "role_arn": raw.get("RoleArn") or "",
        "remote_created_at": to_datetime(raw.get("CreationDate")),
        "remote_modified_at": to_datetime(raw.get("LastModifiedDate")),
        "raw": raw,
    }


# Users ---------------------------------------------------------------------------------------

USER_FIELDS = (
    "username",
    "sub",
    "email",
    "email_verified",
    "phone_number",
    "phone_number_verified",
    "name",
    "status",
    "enabled",
    "attributes",
    "mfa_options",
    "remote_created_at",
    "remote_modified_at",
)


# PostgreSQL stores no NUL character in text or jsonb (its COPY of a whole batch fails on one):
# a value holding one is mirrored with U+FFFD in its place, and the pull names the user.
NUL = "\x00"
NUL_REPLACEMENT = "\ufffd"


def storable(value: str) -> str:
    return value.replace(NUL, NUL_REPLACEMENT) if NUL in value else value


def holds_nul(record: Mapping[str, Any]) -> bool:
    """Whether a ListUsers / AdminGetUser record has an attribute value the database cannot store as is."""
    return any(NUL in (a.get("Value") or "") for a in record.get("Attributes", record.get("UserAttributes")) or ())


def attributes_dict(items: Iterable[Mapping[str, str]] | None) -> dict[str, str]:
    return {a["Name"]: storable(a.get("Value", "")) for a in items or ()}


def user_fields(record: Mapping[str, Any]) -> dict[str, Any]:
    """Model fields of a CognitoUser from a ListUsers (`Attributes`) or AdminGetUser
    (`UserAttributes`) record."""
    return user_fields_and_nul(record)[0]


def user_fields_and_nul(record: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """`user_fields(record)`, and whether an attribute value held a NUL (`holds_nul`), in one pass:
    a pull maps every user it lists."""
    items = record.get("Attributes", record.get("UserAttributes")) or ()
    attributes = {a["Name"]: a.get("Value", "") for a in items}
    # Values are strings from botocore; a None (or another type) takes the general checks.
    nul = False
    try:
        nul = NUL in "".join(attributes.values())
    except TypeError:
        nul = holds_nul(record)
    if nul:
        attributes = attributes_dict(items)
    mfa = record.get("MFAOptions")
    created, modified = record.get("UserCreateDate"), record.get("UserLastModifiedDate")
    get = attributes.get
    fields: dict[str, Any] = {
        "username": record["Username"],
        "status": record.get("UserStatus") or "UNKNOWN",
        "enabled": bool(record.get("Enabled", True)),
        "attributes": attributes,
        "mfa_options": jsonable(mfa) if mfa else [],
        "remote_created_at": created if type(created) is dt.datetime and created.tzinfo is dt.UTC
        else to_datetime(created),
        "remote_modified_at": modified if type(modified) is dt.datetime and modified.tzinfo is dt.UTC
        else to_datetime(modified),
        "sub": get("sub", ""),
        "email": get("email", ""),
        "phone_number": get("phone_number", ""),
        "name": get("name", ""),
        "email_verified": _truthy(get("email_verified", "false")),
        "phone_number_verified": _truthy(get("phone_number_verified", "false")),
    }
    return fields, nul


def _iso(value: dt.datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat()


_USER_DATETIMES = ("remote_created_at", "remote_modified_at")


def user_hash(fields: Mapping[str, Any]) -> str:
    """`content_hash(fields)` for a user's fields, without the generic recursive walk.

    A pull hashes every user it lists. The fields of `user_fields` are JSON types but for
    two datetimes in UTC, which orjson writes exactly as `_iso` does, so orjson's sorted
    compact output is byte for byte the canonical JSON (and so the same hash as rows
    stored before). Anything else (another zone, a value orjson refuses) takes the
    general path.
    """
    created, modified = fields.get("remote_created_at"), fields.get("remote_modified_at")
    if (created is None or getattr(created, "tzinfo", None) is dt.UTC) and (
        modified is None or getattr(modified, "tzinfo", None) is dt.UTC
    ):
        try:
            return hashlib.sha256(orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)).hexdigest()
        except TypeError:  # orjson.JSONEncodeError: e.g. a lone surrogate or a big int
            pass
    return content_hash(fields)


# The keys of `user_fields` in sorted order, `attributes` (which sorts first) left out.
_USER_KEYS_SORTED = tuple(sorted(k for k in USER_FIELDS if k != "attributes"))


def _user_json(key: str, value: Any) -> Any:
    # A user field's JSON value: its datetimes (UTC from `to_datetime`) as `_iso` writes them.
    if value is not None and key in _USER_DATETIMES:
        return value.isoformat() if value.tzinfo is dt.UTC else _iso(value)
    return value


def user_created_changes(fields: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`created_changes(fields)` of `user_fields`: the same changes in the same order."""
    attributes = fields["attributes"]
    changes = {
        f"attributes.{name}": [None, attributes[name]] for name in sorted(attributes) if attributes[name] is not None
    }
    for key in _USER_KEYS_SORTED:
        value = fields[key]
        if value is not None:
            changes[key] = [None, _user_json(key, value)]
    return changes


def user_diff(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`diff(before, after)` of two `user_fields` dicts: the same changes in the same order."""
    changes: dict[str, list[Any]] = {}
    old_attributes, new_attributes = before["attributes"] or {}, after["attributes"] or {}
    if old_attributes != new_attributes:
        for name in sorted(old_attributes.keys() | new_attributes.keys()):
            old, new = old_attributes.get(name), new_attributes.get(name)
            if old != new:
                changes[f"attributes.{name}"] = [old, new]
    for key in _USER_KEYS_SORTED:
        old, new = before.get(key), after.get(key)
        if old != new:
            changes[key] = [_user_json(key, old), _user_json(key, new)]
    return changes


def created_changes(fields: Mapping[str, Any]) -> dict[str, list[Any]]:
    """`diff({}, fields)` for a new object, in one pass: {field: [None, value]}."""
    changes: dict[str, list[Any]] = {}
    for key in sorted(fields):
        if key == "raw":
            continue
        value = fields[key]
        if key == "attributes" and isinstance(value, dict):
            for attr in sorted(value):
                if value[attr] is not None:
                    changes[f"attributes.{attr}"] = [None, value[attr]]
            continue
        if value is None:
            continue
        if type(value) not in _PLAIN:
            value = _iso(value) if isinstance(value, dt.datetime) else jsonable(value)
        changes[key] = [None, value]
    return changes


_PLAIN = frozenset({str, bool, int, float})


# Diffs ----------------------------------------------------------------------------------------


def diff(before: Mapping[str, Any], after: Mapping[str, Any], *, skip: Iterable[str] = ("raw",)) -> dict:
    """Field-level changes {field: [before, after]} between two field dicts (JSON-ready).

    A user's `attributes` is diffed per attribute (`attributes.<name>`), so the audit log
    says which attribute moved rather than repeating the whole dict.
    """
    skipped = set(skip)
    changes: dict[str, list[Any]] = {}
    for key in sorted(set(before) | set(after)):
        if key in skipped:
            continue
        old, new = before.get(key), after.get(key)
        if old == new:  # equal values have equal JSON forms: skip the walk (most of a user's fields)
            continue
        old, new = jsonable(old), jsonable(new)
        if old == new:
            continue
        if key == "attributes" and isinstance(old, dict | type(None)) and isinstance(new, dict | type(None)):
            old, new = old or {}, new or {}
            for attr in sorted(set(old) | set(new)):
                if old.get(attr) != new.get(attr):
                    changes[f"attributes.{attr}"] = [old.get(attr), new.get(attr)]
            continue
        changes[key] = [old, new]
    return changes


def model_values(obj: Any, fields: Iterable[str]) -> dict[str, Any]:
    return {f: getattr(obj, f) for f in fields}
