"""Applying a pool change: the calls that carry its units, and the check that nothing else moved.

A change's units (settings_catalog) are written into the pool's document as Cognito has it now
(DescribeUserPool + GetUserPoolMfaConfig). Then, in this order and only when the change holds
what they carry: AddCustomAttributes; a full-config UpdateUserPool built from that document
(UpdateUserPool resets whatever it is not given); SetUserPoolMfaConfig (the mode and every
method); TagResource / UntagResource. Afterwards the whole document is read again and compared
with what was expected, so a setting lost anywhere (sign-in identifiers, schema, a trigger …)
fails the change, naming it. A call that fails ends the change as failed, naming the call.
"""

from __future__ import annotations

import copy
from typing import Any

from ..gateway import CognitoError, CognitoGateway, full_update_request
from ..mapping import jsonable
from ..models import PendingChange
from ..settings_catalog import (
    ADD_CUSTOM_ATTRIBUTES,
    POOL_CATALOGUE,
    SET_MFA_CONFIG,
    TAG_RESOURCE,
    UPDATE_USER_POOL,
    mfa_and_document,
    mfa_request,
    record_from_document,
    set_path,
    settings_of_units,
    unit_value,
    units_by_call,
)
from ..settings_spec import MFA_KEY, SCHEMA_KEY, Document, differences, split_path

State = dict[str, Any]


class VerificationFailed(CognitoError):
    """A pool change moved settings it was not meant to touch, or did not land."""


def pool_document(gw: CognitoGateway, pool_id: str) -> Document:
    """The pool's document as Cognito holds it now."""
    return mfa_and_document(jsonable(gw.describe_user_pool(pool_id)), gw.get_user_pool_mfa_config(pool_id))


def pool_state(change: PendingChange, gw: CognitoGateway) -> State:
    document = pool_document(gw, change.pool.pool_id)
    return {unit: unit_value(document, unit) for unit in change.fields}


def expected_document(document: Document, after: dict[str, Any]) -> Document:
    expected = copy.deepcopy(document)
    for unit, value in after.items():
        if unit.startswith(SCHEMA_KEY + ".") and value is not None:
            value = {**(get_schema(expected, unit) or {}), **value}
        set_path(expected, unit, value)
    return expected


def get_schema(document: Document, unit: str) -> dict[str, Any] | None:
    return (document.get(SCHEMA_KEY) or {}).get(unit.split(".", 1)[1])


def pool_call(change: PendingChange, gw: CognitoGateway) -> None:
    pool_id = change.pool.pool_id
    after: dict[str, Any] = change.payload["after"]
    described = jsonable(gw.describe_user_pool(pool_id))
    before = mfa_and_document(described, gw.get_user_pool_mfa_config(pool_id))
    expected = expected_document(before, after)
    calls = units_by_call(list(after))
    if ADD_CUSTOM_ATTRIBUTES in calls:
        gw.add_custom_attributes(pool_id, [
            {"Name": unit.split(".", 1)[1].removeprefix("custom:"), **after[unit]}
            for unit in calls[ADD_CUSTOM_ATTRIBUTES]
        ])
    if UPDATE_USER_POOL in calls or not calls:
        request_document = copy.deepcopy(expected)
        if SET_MFA_CONFIG in calls:
            # The mode changes with its methods (SetUserPoolMfaConfig): MFA ON before a method exists is refused.
            request_document["MfaConfiguration"] = before.get("MfaConfiguration")
        set_path(request_document, "UserPoolTags", before.get("UserPoolTags"))
        accepted = gw.accepted_keys("UpdateUserPool")
        gw.update_user_pool(full_update_request("UpdateUserPool", record_from_document(request_document), accepted))
    if SET_MFA_CONFIG in calls:
        gw.set_user_pool_mfa_config(pool_id, mfa_request(expected))
    if TAG_RESOURCE in calls:
        old, new = before.get("UserPoolTags") or {}, expected.get("UserPoolTags") or {}
        added = {k: v for k, v in new.items() if old.get(k) != v}
        removed = sorted(set(old) - set(new))
        if added:
            gw.tag_resource(described["Arn"], added)
        if removed:
            gw.untag_resource(described["Arn"], removed)
    verify(change, expected, pool_document(gw, pool_id))


def _name(path: str) -> str:
    for setting in POOL_CATALOGUE:
        if path == setting.path or path.startswith(setting.path + "."):
            return f"{path} ({setting.label})"
    return path


def verify(change: PendingChange, expected: Document, actual: Document) -> None:
    """Raise VerificationFailed naming every setting that moved without being asked to, or did not land."""
    units = list(change.payload["after"])
    skip = {tuple(split_path(unit)) for unit in units}
    if MFA_KEY in units:
        # SetUserPoolMfaConfig also sets the mode and the pool's SMS authentication message.
        skip |= {("MfaConfiguration",), ("SmsAuthenticationMessage",)}
    moved = [_name(path) for path in differences(expected, actual, skip=skip)]
    missed = [
        setting.name for setting in settings_of_units(units)
        if setting.changeable and setting.read(expected) != setting.read(actual)
    ]
    missed += [unit for unit in units if unit.startswith(SCHEMA_KEY + ".")
               and unit_value(expected, unit) != unit_value(actual, unit)]
    problems = []
    if moved:
        problems.append(f"settings other than the intended ones changed: {', '.join(moved)}")
    if missed:
        problems.append(f"settings that did not take the requested value: {', '.join(missed)}")
    if problems:
        raise VerificationFailed("; ".join(problems), code="VerificationFailed", operation="UpdateUserPool")


# The UserPool columns a change's units live in (a re-read audits what moved in the other columns).
_COLUMNS_BY_KEY = {
    "Name": {"name"},
    "Policies": {"password_policy", "temporary_password_validity_days"},
    "MfaConfiguration": {"mfa_configuration"},
    MFA_KEY: {"mfa_methods", "mfa_configuration", "sms_configuration"},
    "AdminCreateUserConfig": {"admin_create_user_config", "allow_admin_create_user_only",
                              "temporary_password_validity_days"},
    "DeletionProtection": {"deletion_protection"},
    "VerificationMessageTemplate": {"verification_message_template"},
    "EmailVerificationMessage": {"verification_message_template"},
    "EmailVerificationSubject": {"verification_message_template"},
    "SmsVerificationMessage": {"verification_message_template", "sms_configuration"},
    "SmsAuthenticationMessage": {"sms_configuration"},
    "SmsConfiguration": {"sms_configuration"},
    "EmailConfiguration": {"email_configuration"},
    "AutoVerifiedAttributes": {"auto_verified_attributes"},
    "UserAttributeUpdateSettings": {"user_attribute_update_settings"},
    "AccountRecoverySetting": {"account_recovery_setting"},
    "DeviceConfiguration": {"device_configuration"},
    "LambdaConfig": {"lambda_config"},
    "UserPoolTier": {"user_pool_tier"},
    "UserPoolTags": {"tags"},
    SCHEMA_KEY: {"schema"},
}


def pool_columns_for_units(units: list[str]) -> set[str]:
    """The UserPool columns a change's units touch."""
    columns: set[str] = set()
    for unit in units:
        columns |= _COLUMNS_BY_KEY.get(split_path(unit)[0], set())
    return columns
