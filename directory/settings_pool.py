"""The pool settings, one entry each, in the console's order (the catalogue's content; see settings_catalog)."""

from __future__ import annotations

import re
from email.utils import parseaddr
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from .settings_spec import (
    ADD_CUSTOM_ATTRIBUTES,
    CREATE_ONLY,
    MFA_KEY,
    SCHEMA_KEY,
    SET_MFA_CONFIG,
    TAG_RESOURCE,
    Document,
    Setting,
    arn_of,
    boolean,
    choice,
    get_path,
    integer,
    multiple,
    set_path,
    shaped,
    text,
)

Rule = Any
_email = EmailValidator()

SECTIONS = (
    "General",
    "Password policy",
    "Multi-factor authentication",
    "Account recovery",
    "Devices",
    "Sign-up",
    "E-mail",
    "SMS",
    "Lambda triggers",
    "Feature plan",
    "Tags",
    "Deletion protection",
    "Sign-in (set at creation)",
)

# Rules shared by several entries ---------------------------------------------------------------------


def _needs(other: str, wanted: set[Any], message: str) -> Rule:
    """A rule: a non-blank value needs `other` to be one of `wanted`."""

    def rule(value: Any, values: dict[str, Any]) -> list[str]:
        if value in (None, "", [], False) or other not in values:
            return []
        return [] if values.get(other) in wanted else [message]

    return rule


def _address(what: str, *, display_name: bool) -> Rule:
    def rule(value: Any, values: dict[str, Any]) -> list[str]:
        if not value:
            return []
        name, address = parseaddr(value) if display_name else ("", value)
        problems = []
        try:
            _email(address)
        except ValidationError:
            problems.append(
                f"{what} must be an e-mail address"
                + (" (or Name <address>)" if display_name else "") + f"; {value[:80]!r} is not."
            )
        forms_ok = (address, f"{name} <{address}>", f'"{name}" <{address}>')
        if display_name and not problems and value.strip() not in forms_ok:
            problems.append(f"{what} must be an address or Name <address>; {value[:80]!r} is neither.")
        return problems

    return rule


def _developer_only(what: str) -> Rule:
    return _needs("email_sending_account", {"DEVELOPER"},
                  f"{what} is used only when e-mail is sent through your SES identity (e-mail sending: DEVELOPER).")


# Password policy -------------------------------------------------------------------------------------

_POLICY = "Policies.PasswordPolicy"


def _policy(name: str, key: str, label: str, help: str, field: Any, default: Any, absent: Any) -> Setting:
    return Setting(name, label, help, "Password policy", f"{_POLICY}.{key}", field, unit=_POLICY,
                   default=default, absent=absent)


def _read_temporary_days(document: Document) -> int:
    days = get_path(document, f"{_POLICY}.TemporaryPasswordValidityDays")
    if days is None:
        # Older pools keep it in AdminCreateUserConfig; Cognito's default is 7.
        days = get_path(document, "AdminCreateUserConfig.UnusedAccountValidityDays")
    return 7 if days is None else days


# MFA ---------------------------------------------------------------------------------------------------

MFA_METHODS = [("SOFTWARE_TOKEN", "Authenticator apps"), ("SMS", "SMS message"), ("EMAIL", "E-mail message")]
_METHOD_KEYS = {"SOFTWARE_TOKEN": "SoftwareTokenMfaConfiguration", "SMS": "SmsMfaConfiguration",
                "EMAIL": "EmailMfaConfiguration"}
DEFAULT_SMS_MFA_MESSAGE = "Your authentication code is {####}."
DEFAULT_EMAIL_MFA_SUBJECT = "Your sign-in code"
DEFAULT_EMAIL_MFA_MESSAGE = "Your sign-in code is {####}."


def _read_methods(document: Document) -> list[str]:
    methods = document.get(MFA_KEY) or {}
    return [name for name, key in _METHOD_KEYS.items() if key in methods]


def _write_methods(document: Document, value: list[str]) -> None:
    methods = dict(document.get(MFA_KEY) or {})
    wanted = set(value or [])
    for name, key in _METHOD_KEYS.items():
        if name not in wanted:
            methods.pop(key, None)
        elif key not in methods:
            methods[key] = {
                "SOFTWARE_TOKEN": {"Enabled": True},
                "SMS": {
                    "SmsAuthenticationMessage": document.get("SmsAuthenticationMessage") or DEFAULT_SMS_MFA_MESSAGE
                },
                "EMAIL": {"Subject": DEFAULT_EMAIL_MFA_SUBJECT, "Message": DEFAULT_EMAIL_MFA_MESSAGE},
            }[name]
    document[MFA_KEY] = methods


def _mfa_needs_method(value: Any, values: dict[str, Any]) -> list[str]:
    if value in ("ON", "OPTIONAL") and "mfa_methods" in values and not values["mfa_methods"]:
        return [f"MFA {value} needs at least one MFA method (authenticator apps, SMS or e-mail)."]
    return []


def _email_mfa_rules(value: Any, values: dict[str, Any]) -> list[str]:
    problems = []
    if "EMAIL" in (value or []):
        if values.get("email_sending_account", "DEVELOPER") != "DEVELOPER":
            problems.append("E-mail MFA needs e-mail sent through your SES identity (e-mail sending: DEVELOPER).")
        if values.get("user_pool_tier") == "LITE":
            problems.append("E-mail MFA needs the Essentials or Plus feature plan (Cognito refuses it on Lite).")
    if "SMS" in (value or []) and "sms_role_arn" in values and not values.get("sms_role_arn"):
        problems.append("SMS MFA needs an SMS role (an IAM role Cognito uses to send through SNS).")
    return problems


def _method_message(method: str, member: str, fallback: str, also: str = "") -> tuple[Any, Any]:
    key = _METHOD_KEYS[method]

    def reader(document: Document) -> str:
        config = (document.get(MFA_KEY) or {}).get(key) or {}
        return config.get(member) or (document.get(also) if also else None) or fallback

    def writer(document: Document, value: str) -> None:
        if also:
            set_path(document, also, value or None)
        if key in (document.get(MFA_KEY) or {}):
            set_path(document, f"{MFA_KEY}.{key}.{member}", value or fallback)

    return reader, writer


def _when_method(method: str, shape: str, what: str) -> Rule:
    check = shaped(shape, what)

    def rule(value: Any, values: dict[str, Any]) -> list[str]:
        return check(value, values) if method in (values.get("mfa_methods") or []) else []

    return rule


_sms_reader, _sms_writer = _method_message("SMS", "SmsAuthenticationMessage", DEFAULT_SMS_MFA_MESSAGE,
                                           also="SmsAuthenticationMessage")
_subject_reader, _subject_writer = _method_message("EMAIL", "Subject", DEFAULT_EMAIL_MFA_SUBJECT)
_email_reader, _email_writer = _method_message("EMAIL", "Message", DEFAULT_EMAIL_MFA_MESSAGE)

# Account recovery and devices ------------------------------------------------------------------------

RECOVERY_CHOICES = [
    ("verified_email,verified_phone_number", "E-mail if available, otherwise SMS"),
    ("verified_phone_number,verified_email", "SMS if available, otherwise e-mail"),
    ("verified_email", "E-mail only"),
    ("verified_phone_number", "SMS only"),
    ("admin_only", "None: an administrator resets passwords"),
    ("", "Not set (Cognito's legacy behaviour)"),
]


def _read_recovery(document: Document) -> str:
    mechanisms = get_path(document, "AccountRecoverySetting.RecoveryMechanisms") or []
    return ",".join(m["Name"] for m in sorted(mechanisms, key=lambda m: m.get("Priority", 0)))


def _write_recovery(document: Document, value: str) -> None:
    names = [n for n in (value or "").split(",") if n]
    set_path(document, "AccountRecoverySetting",
             {"RecoveryMechanisms": [{"Priority": i, "Name": n} for i, n in enumerate(names, 1)]} if names else None)


def _recovery_rule(value: Any, values: dict[str, Any]) -> list[str]:
    if "verified_phone_number" in (value or "") and "sms_role_arn" in values and not values["sms_role_arn"]:
        return ["Recovery by SMS needs an SMS role (SMS section)."]
    return []


DEVICE_CHOICES = [("no", "Don't remember"), ("always", "Always remember"), ("user_opt_in", "User opt-in")]


def _read_devices(document: Document) -> str:
    config = document.get("DeviceConfiguration") or {}
    if not config:
        return "no"
    return "user_opt_in" if config.get("DeviceOnlyRememberedOnUserPrompt") else "always"


def _write_devices(document: Document, value: str) -> None:
    if value == "no":
        document.pop("DeviceConfiguration", None)
        return
    config = dict(document.get("DeviceConfiguration") or {})
    config.setdefault("ChallengeRequiredOnNewDevice", False)
    config["DeviceOnlyRememberedOnUserPrompt"] = value == "user_opt_in"
    document["DeviceConfiguration"] = config


# Sign-up ---------------------------------------------------------------------------------------------

VERIFIABLE = [("email", "E-mail address"), ("phone_number", "Phone number")]
CUSTOM_ATTRIBUTE_TYPES = ("String", "Number")
_CUSTOM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,20}$")


def parse_custom_attributes(value: str) -> tuple[list[dict[str, Any]], list[str]]:
    """`name[:String|Number][:immutable]` a line -> (schema entries, problems)."""
    entries, problems = [], []
    for line in (value or "").splitlines():
        line = line.strip()
        if not line:
            continue
        name, *parts = [p.strip() for p in line.removeprefix("custom:").split(":")]
        kind = next((p for p in parts if p in CUSTOM_ATTRIBUTE_TYPES), "String")
        unknown = [p for p in parts if p and p not in (*CUSTOM_ATTRIBUTE_TYPES, "immutable", "mutable")]
        if not _CUSTOM_NAME.match(name):
            problems.append(f"{name[:40]!r}: a custom attribute name is 1-20 letters, digits, _ or -.")
        elif unknown:
            problems.append(f"{line[:60]!r}: write name[:String|Number][:immutable] ({', '.join(unknown)} unknown).")
        else:
            entries.append({"Name": f"custom:{name}", "AttributeDataType": kind, "Mutable": "immutable" not in parts})
    return entries, problems


def new_custom_attributes(before: Document, after: Document) -> set[str]:
    return set(after.get(SCHEMA_KEY) or {}) - set(before.get(SCHEMA_KEY) or {})


def _write_custom(document: Document, value: str) -> None:
    entries, _ = parse_custom_attributes(value)
    schema = dict(document.get(SCHEMA_KEY) or {})
    for entry in entries:
        schema.setdefault(entry["Name"], {k: v for k, v in entry.items() if k != "Name"})
    document[SCHEMA_KEY] = schema


def _custom_rule(value: Any, values: dict[str, Any]) -> list[str]:
    entries, problems = parse_custom_attributes(value)
    existing = set(values.get("existing_custom_attributes") or ())
    problems += [f"{e['Name']} already exists; Cognito never changes or removes a custom attribute."
                 for e in entries if e["Name"] in existing]
    if len(existing) + len(entries) > 50:
        problems.append("A pool has at most 50 custom attributes.")
    return problems


def _keep_original_rule(value: Any, values: dict[str, Any]) -> list[str]:
    verified = set(values.get("auto_verified_attributes") or [])
    return [f"Keeping the original {name} while an update is pending needs {name} to be verified automatically "
            "(attribute verification)." for name in value or [] if name not in verified]


def _phone_verification_rule(value: Any, values: dict[str, Any]) -> list[str]:
    if "phone_number" in (value or []) and "sms_role_arn" in values and not values["sms_role_arn"]:
        return ["Verifying phone numbers needs an SMS role (SMS section)."]
    return []


# Messaging -------------------------------------------------------------------------------------------


def _sms_role_rule(value: Any, values: dict[str, Any]) -> list[str]:
    return ["An external id is used only with an SMS role."] if value and not values.get("sms_role_arn") else []


def _ses_needed(value: Any, values: dict[str, Any]) -> list[str]:
    if value == "DEVELOPER" and not values.get("ses_source_arn"):
        return ["Sending through your SES identity (DEVELOPER) needs its SES identity ARN (ses_source_arn)."]
    return []


def _write_sms(member: str) -> Any:
    def writer(document: Document, value: str) -> None:
        set_path(document, f"SmsConfiguration.{member}", value or None)
        if not get_path(document, "SmsConfiguration.SnsCallerArn"):
            document.pop("SmsConfiguration", None)

    return writer


# Lambda triggers -------------------------------------------------------------------------------------

TRIGGERS = (
    ("pre_sign_up", "PreSignUp", "Pre sign-up", "Runs before Cognito signs a user up: accept, refuse or auto-confirm."),
    ("custom_message", "CustomMessage", "Custom message",
     "Writes the verification, invitation and MFA messages in code instead of the templates."),
    ("post_confirmation", "PostConfirmation", "Post confirmation",
     "Runs after a user confirms the account (welcome e-mail, create the user's profile)."),
    ("pre_authentication", "PreAuthentication", "Pre authentication",
     "Runs before each sign-in: may refuse it."),
    ("post_authentication", "PostAuthentication", "Post authentication",
     "Runs after each successful sign-in (logging, analytics)."),
    ("define_auth_challenge", "DefineAuthChallenge", "Define auth challenge",
     "Custom authentication: decides the next challenge."),
    ("create_auth_challenge", "CreateAuthChallenge", "Create auth challenge",
     "Custom authentication: creates the challenge (e.g. sends a code)."),
    ("verify_auth_challenge_response", "VerifyAuthChallengeResponse", "Verify auth challenge response",
     "Custom authentication: checks the user's answer."),
    ("pre_token_generation", "PreTokenGeneration", "Pre token generation",
     "Adds, changes or removes claims before Cognito issues tokens."),
    ("user_migration", "UserMigration", "User migration",
     "Signs in users from another directory the first time and moves them into this pool."),
)
VERSIONED_TRIGGERS = (
    ("custom_sms_sender", "CustomSMSSender", "Custom SMS sender",
     "Sends Cognito's SMS messages through your own provider (needs the KMS key)."),
    ("custom_email_sender", "CustomEmailSender", "Custom e-mail sender",
     "Sends Cognito's e-mails through your own provider (needs the KMS key)."),
)


def _versioned(key: str, version: str = "V1_0") -> tuple[Any, Any]:
    def reader(document: Document) -> str:
        return get_path(document, f"LambdaConfig.{key}.LambdaArn") or ""

    def writer(document: Document, value: str) -> None:
        current = get_path(document, f"LambdaConfig.{key}") or {}
        set_path(document, f"LambdaConfig.{key}",
                 {"LambdaVersion": current.get("LambdaVersion", version), "LambdaArn": value} if value else None)

    return reader, writer


def _pre_token_writer(document: Document, value: str) -> None:
    set_path(document, "LambdaConfig.PreTokenGeneration", value or None)
    config = get_path(document, "LambdaConfig.PreTokenGenerationConfig") or {}
    set_path(document, "LambdaConfig.PreTokenGenerationConfig",
             {"LambdaVersion": config.get("LambdaVersion", "V1_0"), "LambdaArn": value} if value else None)


def _kms_rule(value: Any, values: dict[str, Any]) -> list[str]:
    senders = [values.get("lambda_custom_sms_sender"), values.get("lambda_custom_email_sender")]
    return ["A custom sender trigger needs the KMS key (lambda_kms_key_id) Cognito encrypts codes with."] if (
        any(senders) and not value) else []


def _lambda_entries() -> list[Setting]:
    entries = []
    for name, key, label, help in TRIGGERS:
        writer = _pre_token_writer if key == "PreTokenGeneration" else None
        units = ("LambdaConfig.PreTokenGenerationConfig",) if writer else ()
        entries.append(Setting(
            f"lambda_{name}", label, f"{help} A Lambda function ARN; blank: none.", "Lambda triggers",
            f"LambdaConfig.{key}", text(2048), absent="", writer=writer, extra={"units": units},
            rules=(arn_of("lambda", label),),
        ))
    for name, key, label, help in VERSIONED_TRIGGERS:
        reader, writer = _versioned(key)
        entries.append(Setting(
            f"lambda_{name}", label, f"{help} A Lambda function ARN; blank: none.", "Lambda triggers",
            f"LambdaConfig.{key}", text(2048), absent="", reader=reader, writer=writer,
            rules=(arn_of("lambda", label),),
        ))
    entries.append(Setting(
        "lambda_kms_key_id", "KMS key for custom senders",
        "The KMS key ARN Cognito encrypts codes with before passing them to a custom sender trigger.",
        "Lambda triggers", "LambdaConfig.KMSKeyID", text(2048), absent="", rules=(arn_of("kms", "KMS key"), _kms_rule),
    ))
    return entries


# Tags ------------------------------------------------------------------------------------------------


class TagsField(forms.CharField):
    """`key=value` a line <-> a dict."""

    widget = forms.Textarea(attrs={"rows": 4})

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, dict):
            return "\n".join(f"{k}={v}" for k, v in sorted(value.items()))
        return value

    def to_python(self, value: Any) -> dict[str, str]:
        if isinstance(value, dict):
            return value
        tags: dict[str, str] = {}
        for line in (super().to_python(value) or "").splitlines():
            if not line.strip():
                continue
            if "=" not in line:
                raise ValidationError(f"Tags are key=value, one a line; {line[:60]!r} has no '='.")
            key, _, tag = line.partition("=")
            tags[key.strip()] = tag.strip()
        return tags


def _tags_rule(value: Any, values: dict[str, Any]) -> list[str]:
    problems = []
    for key, tag in (value or {}).items():
        if not 1 <= len(key) <= 128:
            problems.append(f"Tag key {key[:40]!r} must be 1-128 characters.")
        elif key.lower().startswith("aws:"):
            problems.append(f"Tag key {key!r}: the aws: prefix is reserved.")
        elif not re.fullmatch(r"[\w\s+=.:/@-]+", key):
            problems.append(f"Tag key {key[:40]!r} may hold letters, digits, spaces and + - = . _ : / @ only.")
        if len(tag) > 256:
            problems.append(f"Tag {key[:40]!r}: a value is at most 256 characters.")
    if len(value or {}) > 50:
        problems.append("A pool has at most 50 tags.")
    return problems


# Creation-only settings ------------------------------------------------------------------------------

IDENTIFIERS = [("email", "E-mail address"), ("phone_number", "Phone number"), ("username", "Username")]
STANDARD_ATTRIBUTES = [(a, a) for a in (
    "address", "birthdate", "email", "family_name", "gender", "given_name", "locale", "middle_name", "name",
    "nickname", "phone_number", "picture", "preferred_username", "profile", "updated_at", "website", "zoneinfo",
)]


def _read_identifiers(document: Document) -> list[str]:
    if document.get("UsernameAttributes"):
        return list(document["UsernameAttributes"])
    return ["username", *(document.get("AliasAttributes") or [])]


def _write_identifiers(document: Document, value: list[str]) -> None:
    others = [v for v in value or [] if v != "username"]
    document.pop("UsernameAttributes", None)
    document.pop("AliasAttributes", None)
    if "username" in (value or []):
        if others:
            document["AliasAttributes"] = others
    elif others:
        document["UsernameAttributes"] = others


def _read_required(document: Document) -> list[str]:
    return [name for name, entry in (document.get(SCHEMA_KEY) or {}).items() if entry.get("Required")]


def _write_required(document: Document, value: list[str]) -> None:
    schema = dict(document.get(SCHEMA_KEY) or {})
    for name in value or []:
        kind = "Number" if name == "updated_at" else "String"
        schema[name] = {**schema.get(name, {"AttributeDataType": kind, "Mutable": True}), "Required": True}
    document[SCHEMA_KEY] = schema


def _read_existing_custom(document: Document) -> list[str]:
    return sorted(n for n in (document.get(SCHEMA_KEY) or {}) if n.startswith("custom:"))


_SIGN_IN = "Sign-in (set at creation)"


POOL_CATALOGUE: tuple[Setting, ...] = (
    Setting("pool_name", "User pool name", "1-128 letters, digits, spaces and + = , . @ - _.", "General", "Name",
            lambda: forms.CharField(max_length=128), rules=(shaped("UserPoolNameType", "The pool name"),)),
    _policy("minimum_length", "MinimumLength", "Minimum password length", "6 to 99 characters.",
            integer(6, 99), 8, 8),
    _policy("require_uppercase", "RequireUppercase", "Require an uppercase letter", "", boolean(), True, False),
    _policy("require_lowercase", "RequireLowercase", "Require a lowercase letter", "", boolean(), True, False),
    _policy("require_numbers", "RequireNumbers", "Require a number", "", boolean(), True, False),
    _policy("require_symbols", "RequireSymbols", "Require a symbol", "", boolean(), True, False),
    Setting("temporary_password_validity_days", "Temporary passwords expire after (days)", "0 to 365 days.",
            "Password policy", f"{_POLICY}.TemporaryPasswordValidityDays", integer(0, 365), unit=_POLICY,
            default=7, reader=_read_temporary_days),
    Setting("mfa_configuration", "Multi-factor authentication",
            "OFF: no MFA; OPTIONAL: users may turn it on; ON: required at every sign-in (needs a method).",
            "Multi-factor authentication", "MfaConfiguration",
            choice([("OFF", "No MFA"), ("OPTIONAL", "Optional MFA"), ("ON", "Require MFA")]),
            default="OFF", absent="OFF", rules=(_mfa_needs_method,)),
    Setting("mfa_methods", "MFA methods",
            "Authenticator apps (TOTP); SMS (needs an SMS role); e-mail (needs your SES identity and the "
            "Essentials or Plus plan). Carried by SetUserPoolMfaConfig.", "Multi-factor authentication",
            MFA_KEY, multiple(MFA_METHODS), call=SET_MFA_CONFIG, default=[], reader=_read_methods,
            writer=_write_methods, rules=(_email_mfa_rules,)),
    Setting("mfa_sms_message", "SMS MFA message", "The SMS with the sign-in code: 6-140 characters with {####}.",
            "Multi-factor authentication", f"{MFA_KEY}.SmsMfaConfiguration.SmsAuthenticationMessage",
            text(140, strip=False),
            call=SET_MFA_CONFIG, unit=MFA_KEY, default=DEFAULT_SMS_MFA_MESSAGE, reader=_sms_reader,
            writer=_sms_writer, extra={"units": ("SmsAuthenticationMessage",)},
            rules=(_when_method("SMS", "SmsVerificationMessageType", "The SMS MFA message"),)),
    Setting("mfa_email_subject", "E-mail MFA subject", "The subject of the e-mail with the sign-in code.",
            "Multi-factor authentication", f"{MFA_KEY}.EmailMfaConfiguration.Subject", text(140),
            call=SET_MFA_CONFIG, unit=MFA_KEY, default=DEFAULT_EMAIL_MFA_SUBJECT, reader=_subject_reader,
            writer=_subject_writer, rules=(_when_method("EMAIL", "EmailMfaSubjectType", "The e-mail MFA subject"),)),
    Setting("mfa_email_message", "E-mail MFA message", "The e-mail with the sign-in code: 6-20,000 characters "
            "with {####}.", "Multi-factor authentication", f"{MFA_KEY}.EmailMfaConfiguration.Message",
            lambda: forms.CharField(required=False, strip=False, widget=forms.Textarea(attrs={"rows": 3})),
            call=SET_MFA_CONFIG, unit=MFA_KEY, default=DEFAULT_EMAIL_MFA_MESSAGE, reader=_email_reader,
            writer=_email_writer, rules=(_when_method("EMAIL", "EmailMfaMessageType", "The e-mail MFA message"),)),
    Setting("account_recovery", "Account recovery", "How users who forgot their password get a code.",
            "Account recovery", "AccountRecoverySetting", choice(RECOVERY_CHOICES, required=False),
            default="verified_email", reader=_read_recovery, writer=_write_recovery, rules=(_recovery_rule,)),
    Setting("remember_devices", "Remember user devices",
            "Don't remember; always remember; or let the user choose (user opt-in).", "Devices",
            "DeviceConfiguration", choice(DEVICE_CHOICES), default="no", reader=_read_devices,
            writer=_write_devices),
    Setting("self_sign_up", "Self sign-up allowed", "Off: only administrators create users.", "Sign-up",
            "AdminCreateUserConfig.AllowAdminCreateUserOnly", boolean(), default=True,
            reader=lambda d: not get_path(d, "AdminCreateUserConfig.AllowAdminCreateUserOnly"),
            writer=lambda d, v: set_path(d, "AdminCreateUserConfig.AllowAdminCreateUserOnly", not v)),
    Setting("auto_verified_attributes", "Attributes verified automatically",
            "Cognito sends a code to verify these when a user signs up or changes them (phone needs an SMS role).",
            "Sign-up", "AutoVerifiedAttributes", multiple(VERIFIABLE), default=["email"], absent=[],
            rules=(_phone_verification_rule,)),
    Setting("keep_original_attributes", "Keep the original value active while an update is pending",
            "Until the user verifies a new value, the old one stays the one they sign in with and receive "
            "messages at (needs the attribute to be verified automatically).", "Sign-up",
            "UserAttributeUpdateSettings.AttributesRequireVerificationBeforeUpdate", multiple(VERIFIABLE),
            default=["email"], absent=[], rules=(_keep_original_rule,)),
    Setting("add_custom_attributes", "Add custom attributes",
            "One a line: name[:String|Number][:immutable], e.g. 'tier' or 'score:Number'. Add only: Cognito never "
            "changes or removes a custom attribute.", "Sign-up", SCHEMA_KEY,
            lambda: forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2})),
            call=ADD_CUSTOM_ATTRIBUTES, default="", reader=lambda d: "", writer=_write_custom,
            rules=(_custom_rule,), extra={"hidden": True}),
    Setting("email_sending_account", "E-mail sending",
            "Cognito's default sender (a few dozen e-mails a day) or your own SES identity (DEVELOPER).", "E-mail",
            "EmailConfiguration.EmailSendingAccount",
            choice([("COGNITO_DEFAULT", "Send e-mail with Cognito"), ("DEVELOPER", "Send e-mail with Amazon SES")]),
            unit="EmailConfiguration", default="COGNITO_DEFAULT", absent="COGNITO_DEFAULT", rules=(_ses_needed,)),
    Setting("ses_source_arn", "SES identity ARN", "The verified SES identity (address or domain) to send from.",
            "E-mail", "EmailConfiguration.SourceArn", text(2048), unit="EmailConfiguration", absent="",
            rules=(arn_of("ses", "The SES identity"),)),
    Setting("from_email_address", "FROM address", "An address of the SES identity, or Name <address>.", "E-mail",
            "EmailConfiguration.From", text(320), unit="EmailConfiguration", absent="",
            rules=(_address("The FROM address", display_name=True), _developer_only("A FROM address"))),
    Setting("reply_to_email_address", "REPLY-TO address", "Where replies to Cognito's e-mails go.", "E-mail",
            "EmailConfiguration.ReplyToEmailAddress", text(320), unit="EmailConfiguration", absent="",
            rules=(_address("The REPLY-TO address", display_name=False),
                   shaped("EmailAddressType", "The REPLY-TO address"))),
    Setting("ses_configuration_set", "SES configuration set", "1-64 letters, digits, _ or -.", "E-mail",
            "EmailConfiguration.ConfigurationSet", text(64), unit="EmailConfiguration", absent="",
            rules=(shaped("SESConfigurationSet", "The configuration set"),
                   _developer_only("A configuration set"))),
    Setting("sms_role_arn", "SMS role ARN", "The IAM role Cognito assumes to send SMS through SNS.", "SMS",
            "SmsConfiguration.SnsCallerArn", text(2048), unit="SmsConfiguration", absent="",
            writer=_write_sms("SnsCallerArn"), rules=(arn_of("iam", "The SMS role"),)),
    Setting("sms_external_id", "SMS external id", "The external id in the role's trust policy.", "SMS",
            "SmsConfiguration.ExternalId", text(1024), unit="SmsConfiguration", absent="",
            writer=_write_sms("ExternalId"), rules=(_sms_role_rule,)),
    *_lambda_entries(),
    Setting("user_pool_tier", "Feature plan", "Lite, Essentials or Plus (billing and features such as e-mail MFA).",
            "Feature plan", "UserPoolTier",
            choice([("", "As Cognito has it"), ("LITE", "Lite"), ("ESSENTIALS", "Essentials"), ("PLUS", "Plus")],
                   required=False), default="ESSENTIALS", absent=""),
    Setting("tags", "Tags", "key=value, one a line (at most 50). Changed with TagResource and UntagResource.",
            "Tags", "UserPoolTags", lambda: TagsField(required=False), call=TAG_RESOURCE, default={}, absent={},
            rules=(_tags_rule,)),
    Setting("deletion_protection", "Deletion protection", "ACTIVE: Cognito refuses to delete the pool.",
            "Deletion protection", "DeletionProtection", choice([("ACTIVE", "ACTIVE"), ("INACTIVE", "INACTIVE")]),
            # The console turns protection on for the pools it creates (CreateUserPool alone leaves it off).
            default="ACTIVE", absent="INACTIVE"),
    Setting("sign_in_identifiers", "Sign-in identifiers",
            "What users sign in with; with username, e-mail and phone become aliases.", _SIGN_IN,
            "UsernameAttributes", multiple(IDENTIFIERS), call=CREATE_ONLY, default=["email"], changeable=False,
            locked_reason="Cognito fixes UsernameAttributes and AliasAttributes when the pool is created.",
            reader=_read_identifiers, writer=_write_identifiers),
    Setting("case_sensitive", "Case-sensitive sign-in", "Off (the console's default): User@x and user@x are one.",
            _SIGN_IN, "UsernameConfiguration.CaseSensitive", boolean(), call=CREATE_ONLY, default=False,
            changeable=False, locked_reason="UsernameConfiguration is fixed when the pool is created."),
    Setting("required_attributes", "Required attributes", "Attributes every user must have.", _SIGN_IN,
            "SchemaAttributes.Required", multiple(STANDARD_ATTRIBUTES), call=CREATE_ONLY, default=["email"],
            changeable=False, locked_reason="Cognito never changes which attributes are required.",
            reader=_read_required, writer=_write_required),
    Setting("existing_custom_attributes", "Custom attributes", "The pool's custom attributes.", _SIGN_IN,
            SCHEMA_KEY, text(), call=CREATE_ONLY, default=[], changeable=False,
            locked_reason="A custom attribute can be added (above) but never changed or removed.",
            reader=_read_existing_custom, writer=lambda d, v: None, extra={"no_form": True}),
)
