"""Test users: one created inside the request with a temporary password shown once, many created
from a pattern or a CSV as a background bulk job, and the expiry that deletes them again."""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
import string
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import regex
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from . import audit
from .gateway import CognitoError, CognitoGateway, CognitoNotFound, CognitoThrottled, CognitoUnavailable
from .mapping import SECRET_KEYS, diff, user_fields, user_hash, without_secrets
from .models import BulkJob, CognitoGroup, CognitoUser, GroupMembership, UserPool
from .validation import E164, READ_ONLY_ATTRIBUTES, validate_user_attributes

logger = logging.getLogger(__name__)

# Cognito's special characters for password policies (a non-leading, non-trailing space counts too).
COGNITO_SYMBOLS = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-"
# What generated passwords draw symbols from: Cognito's set without quotes, backslash and
# backtick, which get mangled when an operator pastes the password into a shell, CSV or chat.
GENERATED_SYMBOLS = "^$*.[]{}()?!@#%&/,><:;|_~=+-"
# Cognito's MinimumLength when a policy does not say; generated passwords are never shorter than 16.
DEFAULT_MIN_LENGTH = 8
GENERATED_MIN_LENGTH = 16
MAX_PASSWORD_LENGTH = 256

DELIVERY_CHOICES = ("EMAIL", "SMS", "SUPPRESS")
MAX_EXPIRES_IN_DAYS = 365
BULK_OPERATION = "create_test_users"
BULK_MAX_ROWS = 1000
# Bulk progress (and per-row results) are written every this many rows.
BULK_PROGRESS_EVERY = 10
# A bulk job paused by throttling this many times is given up.
BULK_MAX_PAUSES = 20
EXPIRE_BATCH = 1000

# Cognito's Username pattern ([\p{L}\p{M}\p{S}\p{N}\p{P}]+): no spaces or control characters.
USERNAME_PATTERN = regex.compile(r"[\p{L}\p{M}\p{S}\p{N}\p{P}]+")
MAX_USERNAME_LENGTH = 128
# Form and CSV keys that are options of the creation, not user attributes.
OPTION_KEYS = frozenset({"username", "temporary_password", "delivery", "email_verified", "groups", "expires_in_days"})
# Cognito's standard attributes: real pools list them all in SchemaAttributes, moto only those
# given at creation, so they are accepted (as optional strings) even when the schema omits them.
STANDARD_ATTRIBUTES = (
    "address", "birthdate", "email", "family_name", "gender", "given_name", "locale", "middle_name", "name",
    "nickname", "phone_number", "picture", "preferred_username", "profile", "zoneinfo", "website",
)
IDENTIFIER_LABELS = {
    "email": "e-mail address",
    "phone_number": "phone number",
    "preferred_username": "preferred username",
}


# Passwords -----------------------------------------------------------------------------------------------


def password_rules(policy: Mapping[str, Any] | None) -> dict[str, Any]:
    """A pool's PasswordPolicy dict, whether given bare or wrapped as {"PasswordPolicy": {...}}."""
    policy = dict(policy or {})
    return dict(policy.get("PasswordPolicy", policy))


def minimum_length(policy: Mapping[str, Any] | None) -> int:
    return int(password_rules(policy).get("MinimumLength") or DEFAULT_MIN_LENGTH)


@sensitive_variables("chars")
def generate_temporary_password(policy: Mapping[str, Any] | None) -> str:
    """A random password (from `secrets`) that meets the pool's policy: at least its minimum
    length (and 16), and one character of every class, whether the policy requires it or not."""
    length = max(minimum_length(policy), GENERATED_MIN_LENGTH)
    classes = (string.ascii_uppercase, string.ascii_lowercase, string.digits, GENERATED_SYMBOLS)
    alphabet = "".join(classes)
    chars = [secrets.choice(c) for c in classes]
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


@sensitive_variables("password")
def password_problems(password: str, policy: Mapping[str, Any] | None) -> list[str]:
    """What a password lacks under a pool's policy, as phrases that never repeat the password."""
    rules = password_rules(policy)
    minimum = minimum_length(policy)
    problems: list[str] = []
    if len(password) < minimum:
        problems.append(f"at least {minimum} characters (it has {len(password)})")
    if len(password) > MAX_PASSWORD_LENGTH:
        problems.append(f"at most {MAX_PASSWORD_LENGTH} characters (it has {len(password)})")
    if password != password.strip():
        problems.append("no space at the start or the end")
    checks = (
        ("RequireUppercase", string.ascii_uppercase, "an uppercase letter (A-Z)"),
        ("RequireLowercase", string.ascii_lowercase, "a lowercase letter (a-z)"),
        ("RequireNumbers", string.digits, "a number (0-9)"),
        ("RequireSymbols", COGNITO_SYMBOLS + " ", "a symbol (one of " + " ".join(COGNITO_SYMBOLS) + ")"),
    )
    for key, allowed, label in checks:
        if rules.get(key) and not any(c in allowed for c in password):
            problems.append(label)
    return problems


# Log redaction ---------------------------------------------------------------------------------------------


class RedactRequestSecrets(logging.Filter):
    """botocore logs every request's parameters at DEBUG ("Making request ... with params"), body
    included: the AdminCreateUser body carries the temporary password. This filter removes secret
    keys from logged request bodies before any handler sees the record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(_redact(arg) for arg in record.args)
        elif isinstance(record.args, Mapping):
            record.args = _redact(record.args)
        return True


def _redact(value: Any) -> Any:
    if isinstance(value, Mapping):
        if "body" in value:
            return {**value, "body": _redact_body(value["body"])}
        return value
    if isinstance(value, bytes | str):
        return _redact_body(value)
    return value


def _redact_body(body: Any) -> Any:
    if not isinstance(body, bytes | str):
        return body
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    if not any(key in text for key in SECRET_KEYS):
        return body
    try:
        cleaned = json.dumps(without_secrets(json.loads(text)))
    except ValueError:
        cleaned = "<redacted: carried a secret>"
    return cleaned.encode() if isinstance(body, bytes) else cleaned


_redaction = RedactRequestSecrets()
REDACTED_LOGGERS = ("botocore.endpoint", "botocore.httpsession", "botocore.parsers", "urllib3.connectionpool")


def install_log_redaction() -> None:
    """Attach the redaction filter to botocore's request loggers (idempotent)."""
    for name in REDACTED_LOGGERS:
        target = logging.getLogger(name)
        if _redaction not in target.filters:
            target.addFilter(_redaction)


install_log_redaction()


# Validation shared by single and bulk creation -------------------------------------------------------------


@dataclass
class NewUser:
    """A validated request to create one test user (the password, if any, is held only here)."""

    username: str
    attributes: dict[str, str]
    identifier_field: str
    delivery: str
    groups: list[CognitoGroup]
    expires_in_days: int | None
    temporary_password: str = field(default="", repr=False)

    @property
    def mediums(self) -> list[str]:
        # DesiredDeliveryMediums defaults to SMS in Cognito, so it is always sent.
        if self.delivery in {"EMAIL", "SMS"}:
            return [self.delivery]
        return ["SMS"] if self.attributes.get("phone_number") and not self.attributes.get("email") else ["EMAIL"]

    def expires_at(self, now: datetime | None = None) -> datetime | None:
        if not self.expires_in_days:
            return None
        return (now or timezone.now()) + timedelta(days=self.expires_in_days)


def schema_with_standard(pool: UserPool) -> UserPool:
    """An unsaved copy of the pool whose schema also lists every standard attribute (see STANDARD_ATTRIBUTES)."""
    schema = [dict(a) for a in pool.schema or []]
    known = {a.get("Name") for a in schema}
    for name in STANDARD_ATTRIBUTES:
        if name not in known:
            schema.append({"Name": name, "AttributeDataType": "String", "Mutable": True, "Required": False})
    for name in ("email_verified", "phone_number_verified"):
        if name not in known:
            schema.append({"Name": name, "AttributeDataType": "Boolean", "Mutable": True, "Required": False})
    return UserPool(pool_id=pool.pool_id, region=pool.region, schema=schema)


def creatable_attributes(pool: UserPool) -> list[dict[str, Any]]:
    """Schema definitions an operator may set when creating a user (Cognito-managed ones left out)."""
    return [
        a for a in schema_with_standard(pool).schema
        if a.get("Name")
        and a["Name"] not in READ_ONLY_ATTRIBUTES
        and a["Name"] not in {"email_verified", "phone_number_verified", "updated_at"}
        and not a["Name"].startswith("dev:")
        and not a.get("DeveloperOnlyAttribute")
    ]


def required_attributes(pool: UserPool) -> list[str]:
    return [a["Name"] for a in creatable_attributes(pool) if a.get("Required")]


def _is_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def _labels(names: Iterable[str]) -> str:
    return " or ".join(IDENTIFIER_LABELS.get(n, n) for n in names)


def sign_in_attributes(pool: UserPool) -> list[str]:
    """Attributes that identify a user at sign-in and so must be unique: username attributes and aliases."""
    names = [*(pool.username_attributes or []), *(pool.alias_attributes or [])]
    return [n for n in ("email", "phone_number", "preferred_username") if n in names]


def _collect_attributes(data: Mapping[str, Any]) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for key, value in data.items():
        if key in OPTION_KEYS or key.startswith("_"):
            continue
        text = "" if value is None else str(value).strip()
        if text:
            attributes[key] = text
    return attributes


def _resolve_groups(pool: UserPool, groups: Iterable[Any], add) -> list[CognitoGroup]:
    resolved: list[CognitoGroup] = []
    by_name = {g.name: g for g in CognitoGroup.objects.filter(pool=pool)}
    for group in groups or ():
        name = group.name if isinstance(group, CognitoGroup) else str(group)
        found = by_name.get(name)
        if found is None or (isinstance(group, CognitoGroup) and group.pool_id != pool.pk):
            add("groups", f"groups: {name!r} is not a group of this pool (sync the pool if it is new).")
        else:
            resolved.append(found)
    return resolved


@sensitive_variables("data", "password")
def prepare_new_user(pool: UserPool, data: Mapping[str, Any]) -> tuple[NewUser, dict[str, list[str]]]:
    """Check one creation request against the pool's settings, without calling Cognito.

    moto checks none of this (password policy, E.164, required attributes), and Cognito checks it
    only after some of the work is done, so everything is checked here first. Returns the request
    and {field: [messages]}; each message names the field and the rule.
    """
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        if message not in errors.setdefault(name, []):
            errors[name].append(message)

    attributes = _collect_attributes(data)
    username = str(data.get("username") or "").strip()
    delivery = str(data.get("delivery") or "EMAIL")
    signs_in_by = [a for a in (pool.username_attributes or []) if a in {"email", "phone_number"}]
    identifier_field = "username"

    # Which identifier signs in decides what the Username sent to Cognito is.
    if signs_in_by:
        label = _labels(signs_in_by)
        if username:
            if "email" in signs_in_by and "@" in username:
                if attributes.get("email") and attributes["email"].lower() != username.lower():
                    add("username", f"username: this pool uses the e-mail address as the username, so username "
                                    f"must be the same as email ({attributes['email']}) or be left blank.")
                attributes.setdefault("email", username)
            elif "phone_number" in signs_in_by and username.startswith("+"):
                if attributes.get("phone_number") and attributes["phone_number"] != username:
                    add("username", "username: this pool uses the phone number as the username, so username "
                                    "must be the same as phone_number or be left blank.")
                attributes.setdefault("phone_number", username)
            else:
                add("username", f"username: this pool signs in by {label}; leave username blank (the {label} "
                                f"becomes the username) or enter the {label}.")
        if "email" in signs_in_by and attributes.get("email"):
            username, identifier_field = attributes["email"], "email"
        elif "phone_number" in signs_in_by and attributes.get("phone_number"):
            username, identifier_field = attributes["phone_number"], "phone_number"
        else:
            target = signs_in_by[0]
            add(target, f"{target} is required: this pool uses the {label} as the username.")
    elif not username:
        add("username", "username is required: this pool signs in by username.")
    elif len(username) > MAX_USERNAME_LENGTH:
        add("username", f"username is {len(username)} characters long; Cognito allows at most {MAX_USERNAME_LENGTH}.")
    elif not USERNAME_PATTERN.fullmatch(username):
        add("username", "username may contain letters, numbers, symbols and punctuation only "
                        "(no spaces or control characters).")
    else:
        aliases = pool.alias_attributes or []
        if "email" in aliases and _is_email(username):
            add("username", "username cannot be an e-mail address: this pool has e-mail as a sign-in alias, "
                            "so Cognito refuses e-mail-shaped usernames. Put the address in email.")
        if "phone_number" in aliases and E164.match(username):
            add("username", "username cannot be a phone number: this pool has the phone number as a sign-in alias.")

    if delivery not in DELIVERY_CHOICES:
        add("delivery", f"delivery must be one of {', '.join(DELIVERY_CHOICES)}.")
    if delivery == "EMAIL" and not attributes.get("email"):
        add("email", "email is required when the invitation is delivered by EMAIL.")
    if delivery == "SMS" and not attributes.get("phone_number"):
        add("phone_number", "phone_number is required when the invitation is delivered by SMS "
                            "(the user has no phone number).")
    if data.get("email_verified"):
        if attributes.get("email"):
            attributes["email_verified"] = "true"
        else:
            add("email_verified", "email_verified: there is no email to mark verified.")

    for name in required_attributes(pool):
        if not attributes.get(name):
            add(name, f"{name} is required by this pool.")
    to_check = {k: v for k, v in attributes.items() if k not in errors}
    try:
        validate_user_attributes(schema_with_standard(pool), to_check, creating=True)
    except ValidationError as exc:
        for name, messages in exc.message_dict.items():
            for message in messages:
                add(name, message)

    password = str(data.get("temporary_password") or "")
    if password:
        problems = password_problems(password, pool.password_policy)
        if problems:
            add("temporary_password", "temporary_password does not meet this pool's password policy: it needs "
                                      + "; ".join(problems) + ".")

    groups = _resolve_groups(pool, data.get("groups") or (), add)

    expires = data.get("expires_in_days")
    expires_in_days: int | None = None
    if expires not in (None, ""):
        try:
            expires_in_days = int(expires)
        except (TypeError, ValueError):
            add("expires_in_days", "expires_in_days must be a whole number of days.")
        else:
            if not 1 <= expires_in_days <= MAX_EXPIRES_IN_DAYS:
                add("expires_in_days",
                    f"expires_in_days must be between 1 and {MAX_EXPIRES_IN_DAYS} (or blank: never).")

    new = NewUser(
        username=username,
        attributes=attributes,
        identifier_field=identifier_field,
        delivery=delivery,
        groups=groups,
        expires_in_days=expires_in_days,
        temporary_password=password,
    )
    return new, errors


def _escape_filter(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


def find_in_mirror(pool: UserPool, new: NewUser) -> tuple[str, CognitoUser] | None:
    """(field, user) of a mirrored user that already holds the new user's username or a sign-in attribute."""
    users = CognitoUser.objects.filter(pool=pool)
    if not pool.username_attributes:
        lookup = "username" if pool.username_case_sensitive else "username__iexact"
        found = users.filter(**{lookup: new.username}).first()
        if found is not None:
            return "username", found
    for name in sign_in_attributes(pool):
        value = new.attributes.get(name)
        if not value:
            continue
        lookup = {"email": "email__iexact", "phone_number": "phone_number"}.get(name, f"attributes__{name}")
        found = users.filter(**{lookup: value}).first()
        if found is not None:
            return name, found
    return None


def find_in_cognito(pool: UserPool, new: NewUser, gw: CognitoGateway) -> tuple[str, dict[str, Any]] | None:
    """(field, record) of a user Cognito already holds with the new user's username or a sign-in
    attribute. Uses ListUsers filters (AdminGetUser is billed as an active user)."""
    if not pool.username_attributes:
        record = gw.get_user(pool.pool_id, new.username)
        if record is not None:
            return "username", record
    for name in sign_in_attributes(pool):
        value = new.attributes.get(name)
        if not value:
            continue
        for candidate in dict.fromkeys([value, value.lower()] if name == "email" else [value]):
            for page in gw.list_users(pool.pool_id, filter=f'{name} = "{_escape_filter(candidate)}"'):
                if page:
                    return name, page[0]
                break
    return None


def _taken_message(name: str, value: str, holder: str, *, where: str) -> str:
    if name == "username":
        return f"username: a user named {holder} already exists in this pool ({where})."
    return (f"{name}: {value} is already used by user {holder} ({where}); this pool signs in by "
            f"{IDENTIFIER_LABELS.get(name, name)}, so each one can belong to one user only.")


def _cognito_errors(exc: CognitoError, new: NewUser) -> dict[str, list[str]]:
    """Cognito's refusal as {field: [message]} on the field it concerns."""
    code, message = exc.code, exc.message
    if code == "UsernameExistsException":
        return {new.identifier_field: [f"{new.identifier_field}: Cognito says a user {new.username} already exists "
                                       f"in this pool (UsernameExistsException)."]}
    if code == "AliasExistsException":
        name = "phone_number" if "phone" in message.lower() else "email"
        return {name: [f"{name}: another user already signs in with this {IDENTIFIER_LABELS[name]} "
                       f"(AliasExistsException: {message})."]}
    if code == "InvalidPasswordException":
        return {"temporary_password": [f"temporary_password: Cognito refused it: {message}"]}
    if code == "InvalidParameterException":
        # "Invalid phone number format.", "Attributes did not conform to the schema: name: ...":
        # the field is found by its name (or its words), longest names first.
        for name in ["username", *sorted(new.attributes, key=len, reverse=True)]:
            words = regex.escape(name).replace("_", "[_ ]")
            if regex.search(rf"(?<![\w:]){words}(?!\w)", message, flags=regex.IGNORECASE):
                return {name: [f"{name}: Cognito refused the request: {message}"]}
    return {NON_FIELD_ERRORS: [f"Cognito did not create the user ({code or 'error'}): {message} Nothing was created."]}


# Writing the mirror and the audit log ------------------------------------------------------------------------


def _record_created(
    *,
    pool: UserPool,
    record: Mapping[str, Any],
    new: NewUser,
    actor: str,
    added: list[CognitoGroup],
    failed: dict[str, str],
    source: str,
    detail: Mapping[str, Any],
) -> CognitoUser:
    """Mirror row (a test user), `created` event, memberships and their events, in one transaction."""
    fields = user_fields(record)
    correlation = str(uuid.uuid4())
    with transaction.atomic():
        user = CognitoUser.objects.filter(pool=pool, username=fields["username"]).first() or CognitoUser(pool=pool)
        for name, value in fields.items():
            setattr(user, name, value)
        user.content_hash = user_hash(fields)
        user.is_test_user = True
        user.test_user_expires_at = new.expires_at()
        user.save()
        audit.record(
            action="created",
            object_type="user",
            object_id=user.username,
            object_repr=user.email or user.username,
            pool_id=pool.pool_id,
            changes=diff({}, fields),
            detail={
                "operation": "user.create_test_user",
                "sub": user.sub,
                "test_user": True,
                "expires_at": user.test_user_expires_at,
                "delivery": new.delivery,
                "groups": [g.name for g in new.groups],
                **detail,
            },
            source=source,
            actor=actor,
            correlation_id=correlation,
        )
        for group in added:
            GroupMembership.objects.get_or_create(group=group, user=user)
            audit.record(
                action="group_added",
                object_type="user",
                object_id=user.username,
                object_repr=user.email or user.username,
                pool_id=pool.pool_id,
                changes={"group": [None, group.name]},
                detail={"group": group.name, "test_user": True},
                source=source,
                actor=actor,
                correlation_id=correlation,
            )
        for name, error in failed.items():
            audit.record(
                action="group_add_failed",
                object_type="user",
                object_id=user.username,
                object_repr=user.email or user.username,
                pool_id=pool.pool_id,
                detail={"group": name, "error": error, "test_user": True},
                outcome=audit.Outcome.FAILED,
                source=source,
                actor=actor,
                correlation_id=correlation,
            )
    return user


def _add_to_groups(
    pool: UserPool, username: str, groups: list[CognitoGroup], gw: CognitoGateway
) -> tuple[list[CognitoGroup], dict[str, str]]:
    added: list[CognitoGroup] = []
    failed: dict[str, str] = {}
    for group in groups:
        try:
            gw.admin_add_user_to_group(pool.pool_id, username, group.name)
        except CognitoError as exc:
            failed[group.name] = str(exc)
        else:
            added.append(group)
    return added, failed


# One test user, inside the request ----------------------------------------------------------------------------


@dataclass
class CreatedTestUser:
    """What the result page shows once: the new user and its temporary password (never stored)."""

    user: CognitoUser
    temporary_password: str = field(repr=False)
    generated: bool
    groups_added: list[str]
    groups_failed: dict[str, str]


@sensitive_variables("data", "new", "password")
def test_user_create(
    *, pool: UserPool, data: Mapping[str, Any], actor: str, gateway: CognitoGateway | None = None
) -> CreatedTestUser:
    """Create one test user with AdminCreateUser, called inside the request because the temporary
    password may rest nowhere (not in the outbox, not in a task message). Checks the pool's rules,
    the mirror and Cognito first so nothing is half-created; then adds the groups
    (AdminAddUserToGroup each) and writes the mirror row and audit events. Not idempotent: a second
    call finds the user and is refused with a field error.

    Raises ValidationError({field: [message]}) for bad input and for Cognito's refusals.
    """
    install_log_redaction()
    new, errors = prepare_new_user(pool, data)
    if errors:
        raise ValidationError(errors)
    gw = gateway or CognitoGateway(pool.region, purpose="interactive")
    try:
        taken = find_in_mirror(pool, new)
        if taken is not None:
            name, user = taken
            errors[name] = [_taken_message(name, new.attributes.get(name, new.username), user.username,
                                           where="in the mirror")]
        else:
            found = find_in_cognito(pool, new, gw)
            if found is not None:
                name, record = found
                errors[name] = [_taken_message(name, new.attributes.get(name, new.username), record["Username"],
                                               where="in Cognito, not yet in the mirror: sync the pool")]
        for group in new.groups:
            try:
                gw.get_group(pool.pool_id, group.name)
            except CognitoNotFound:
                errors.setdefault("groups", []).append(
                    f"groups: {group.name!r} no longer exists in Cognito (sync the pool)."
                )
    except CognitoError as exc:
        raise ValidationError(f"Could not check Cognito before creating the user: {exc}. Nothing was created.")
    if errors:
        raise ValidationError(errors)

    generated = not new.temporary_password
    password = new.temporary_password or generate_temporary_password(pool.password_policy)
    try:
        record = gw.admin_create_user(
            pool.pool_id,
            new.username,
            attributes=new.attributes,
            delivery=new.mediums,
            temporary_password=password,
            suppress=new.delivery == "SUPPRESS",
        )
    except CognitoError as exc:
        raise ValidationError(_cognito_errors(exc, new)) from None
    added, failed = _add_to_groups(pool, record["Username"], new.groups, gw)
    user = _record_created(
        pool=pool,
        record=record,
        new=new,
        actor=actor,
        added=added,
        failed=failed,
        source=audit.Source.ADMIN,
        detail={"temporary_password": "generated" if generated else "chosen by the operator"},
    )
    return CreatedTestUser(
        user=user,
        temporary_password=password,
        generated=generated,
        groups_added=[g.name for g in added],
        groups_failed=failed,
    )


# Many test users, in the background -----------------------------------------------------------------------------


def expand_pattern(pattern: str, n: int) -> str:
    # str.replace, not str.format: an operator's braces must not reach format().
    return pattern.replace("{n}", str(n))


def pattern_rows(spec: Mapping[str, Any]) -> list[dict[str, str]]:
    """The rows a pattern spec stands for: {"start", "count", "username", "email", "name", "phone_number"}."""
    start, count = int(spec.get("start", 1)), int(spec.get("count") or 0)
    rows = []
    for n in range(start, start + count):
        row = {}
        for key in ("username", "email", "name", "phone_number"):
            if spec.get(key):
                row[key] = expand_pattern(str(spec[key]), n)
        rows.append(row)
    return rows


def job_rows(job: BulkJob) -> list[dict[str, str]]:
    params = job.params or {}
    if "pattern" in params:
        return pattern_rows(params["pattern"])
    return [dict(r) for r in params.get("rows") or []]


def _refuse_passwords(keys: Iterable[str]) -> None:
    bad = sorted(k for k in keys if "password" in k.lower() or k in SECRET_KEYS)
    if bad:
        raise ValidationError({"csv_file": [
            f"csv_file: column(s) {', '.join(bad)} refused: bulk test users get their temporary password from "
            f"Cognito's invitation, never from this project. Remove the column."
        ]})


def parse_csv(pool: UserPool, content: bytes) -> list[dict[str, str]]:
    """Rows of an uploaded CSV: columns are `username` and attribute names; a password column is refused."""
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ValidationError({"csv_file": ["csv_file: the file is not UTF-8 text."]}) from None
    reader = csv.DictReader(io.StringIO(text))
    headers = [h.strip() for h in reader.fieldnames or [] if h is not None]
    if not headers:
        raise ValidationError({"csv_file": ["csv_file: the file is empty; the first line must name the columns."]})
    _refuse_passwords(headers)
    known = {"username", *(a["Name"] for a in creatable_attributes(pool))}
    unknown = [h for h in headers if h not in known]
    if unknown:
        raise ValidationError({"csv_file": [
            f"csv_file: unknown column(s) {', '.join(unknown)}; columns must be username or attributes of this "
            f"pool ({', '.join(sorted(known))})."
        ]})
    rows: list[dict[str, str]] = []
    for raw in reader:
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if k is not None}
        if not any(row.values()):
            continue
        rows.append({k: v for k, v in row.items() if v})
        if len(rows) > BULK_MAX_ROWS:
            raise ValidationError({"csv_file": [f"csv_file: at most {BULK_MAX_ROWS} rows per upload."]})
    if not rows:
        raise ValidationError({"csv_file": ["csv_file: the file has no rows below its header."]})
    return rows


def test_users_bulk_start(
    *,
    pool: UserPool,
    actor: str,
    options: Mapping[str, Any],
    pattern: Mapping[str, Any] | None = None,
    rows: list[dict[str, str]] | None = None,
) -> BulkJob:
    """Queue the creation of many test users (a BulkJob run by a worker). Either `pattern`
    ({"start", "count", "username", "email", "name", "phone_number"} with `{n}`) or CSV `rows`.
    `options`: delivery, email_verified, groups (names), expires_in_days. No password is taken:
    Cognito generates and delivers each one. Nothing is sent to Cognito here."""
    errors: dict[str, list[str]] = {}
    if (pattern is None) == (rows is None):
        raise ValidationError("Give either a pattern or CSV rows.")
    if rows is not None:
        _refuse_passwords({k for row in rows for k in row})
        if not 1 <= len(rows) <= BULK_MAX_ROWS:
            errors["csv_file"] = [f"csv_file: between 1 and {BULK_MAX_ROWS} rows (it has {len(rows)})."]
        all_rows = rows
    else:
        spec = {k: v for k, v in dict(pattern or {}).items() if v not in (None, "")}
        count = int(spec.get("count") or 0)
        start = int(spec.get("start", 1))
        if not 1 <= count <= BULK_MAX_ROWS:
            errors["count"] = [f"count must be between 1 and {BULK_MAX_ROWS}."]
        if start < 0:
            errors["start"] = ["start must be 0 or more."]
        patterned = [k for k in ("username", "email", "phone_number") if spec.get(k)]
        if count > 1 and not any("{n}" in str(spec[k]) for k in patterned):
            target = f"{patterned[0]}_pattern" if patterned else "email_pattern"
            errors[target] = [f"{target} must contain {{n}} so that each of the {count} users is different."]
        pattern = spec
        all_rows = pattern_rows({**spec, "count": min(count, 1)}) if count >= 1 else []
    option_data = {
        "delivery": options.get("delivery") or "EMAIL",
        "email_verified": bool(options.get("email_verified")),
        "groups": [g.name if isinstance(g, CognitoGroup) else str(g) for g in options.get("groups") or ()],
        "expires_in_days": options.get("expires_in_days"),
    }
    if pattern is not None and all_rows and not errors:
        # The first row stands for all of them: a pattern that yields a bad user is refused now.
        _, row_errors = prepare_new_user(pool, {**all_rows[0], **option_data})
        for name, messages in row_errors.items():
            target = {
                "username": "username_pattern", "email": "email_pattern", "name": "name_pattern",
                "phone_number": "phone_pattern",
            }.get(name, name)
            errors.setdefault(target, []).extend(messages)
    else:
        _, option_errors = prepare_new_user(pool, {"username": "x", **option_data, "delivery": "SUPPRESS"})
        for name in ("groups", "expires_in_days"):
            if name in option_errors:
                errors[name] = option_errors[name]
    if errors:
        raise ValidationError(errors)
    params: dict[str, Any] = {**option_data}
    if pattern is not None:
        params["pattern"] = dict(pattern)
        total = int(pattern["count"])
    else:
        params["rows"] = rows
        total = len(rows or [])
    from .services import _safe_delay
    from .tasks import run_bulk_job

    with transaction.atomic():
        job = BulkJob.objects.create(
            pool=pool, operation=BULK_OPERATION, params=params, user_ids=[], total=total, actor=actor,
            results={"rows": {}, "created": 0, "skipped": 0, "failed": 0},
        )
        audit.record(
            action="bulk_requested",
            object_type="bulk_job",
            object_id=str(job.pk),
            pool_id=pool.pool_id,
            detail={"operation": BULK_OPERATION, "users": total, "source": "pattern" if pattern else "csv",
                    **{k: v for k, v in option_data.items()}},
            source=audit.Source.ADMIN,
            actor=actor,
            outcome=audit.Outcome.PENDING,
        )
        transaction.on_commit(lambda: _safe_delay(run_bulk_job, job.pk))
    return job


def _row_result(new: NewUser | None, row: Mapping[str, str], status: str, **extra: Any) -> dict[str, Any]:
    return {
        "status": status,
        "username": (new.username if new else "") or row.get("username") or row.get("email") or "",
        "email": row.get("email", ""),
        **extra,
    }


def _existing_row(
    job: BulkJob, new: NewUser, row: Mapping[str, str], found: tuple[str, dict[str, Any]]
) -> dict[str, Any]:
    """A row whose user Cognito already holds (and the mirror does not)."""
    name, record = found
    created = user_fields(record)["remote_created_at"]
    if created is not None and created >= job.created_at - timedelta(seconds=5):
        # Made by this job before a crash lost its mirror row: adopt it rather than fail the row.
        user = _record_created(pool=job.pool, record=record, new=new, actor=job.actor, added=[], failed={},
                               source=audit.Source.WORKER, detail={"bulk_job": job.pk, "adopted": True})
        return _row_result(new, row, "created", username=user.username, adopted=True)
    return _row_result(new, row, "failed", error=_taken_message(
        name, new.attributes.get(name, new.username), record["Username"], where="in Cognito"))


def _bulk_row(job: BulkJob, row: Mapping[str, str], options: Mapping[str, Any], gw: CognitoGateway) -> dict[str, Any]:
    """Create one row's user. Throttling and an unreachable Cognito propagate (the job pauses)."""
    pool = job.pool
    new, errors = prepare_new_user(pool, {**row, **options})
    if errors:
        return _row_result(new, row, "failed", error="; ".join(m for ms in errors.values() for m in ms))
    taken = find_in_mirror(pool, new)
    if taken is not None:
        name, user = taken
        if user.is_test_user:
            # A redelivered job (or a second upload) meets users it already made: not an error.
            return _row_result(new, row, "skipped", username=user.username, reason="already a test user")
        return _row_result(new, row, "failed", error=_taken_message(name, new.attributes.get(name, new.username),
                                                                      user.username, where="in the mirror"))
    # ListUsers (30 rps, the scarcest quota) is only spent up front where Cognito would not refuse a
    # duplicate itself: an alias is unique only once verified. Elsewhere Cognito's
    # UsernameExistsException says it, and the lookup happens only then.
    if pool.alias_attributes:
        found = find_in_cognito(pool, new, gw)
        if found is not None:
            return _existing_row(job, new, row, found)
    try:
        # No TemporaryPassword: Cognito generates it and delivers it (or not, with SUPPRESS).
        record = gw.admin_create_user(
            pool.pool_id, new.username, attributes=new.attributes, delivery=new.mediums,
            suppress=new.delivery == "SUPPRESS",
        )
    except (CognitoThrottled, CognitoUnavailable):
        raise
    except CognitoError as exc:
        if exc.code in {"UsernameExistsException", "AliasExistsException"}:
            found = find_in_cognito(pool, new, gw)
            if found is not None:
                return _existing_row(job, new, row, found)
        messages = _cognito_errors(exc, new)
        return _row_result(new, row, "failed", error="; ".join(m for ms in messages.values() for m in ms))
    added, failed = _add_to_groups(pool, record["Username"], new.groups, gw)
    user = _record_created(pool=pool, record=record, new=new, actor=job.actor, added=added, failed=failed,
                           source=audit.Source.WORKER, detail={"bulk_job": job.pk})
    result = _row_result(new, row, "created", username=user.username)
    if failed:
        result["groups_failed"] = failed
    return result


def test_users_bulk_run(*, job: BulkJob, gateway: CognitoGateway | None = None) -> BulkJob:
    """Create a bulk job's users one row at a time (AdminCreateUser without a password, then the
    groups), recording each row's outcome in BulkJob.results. Safe to run twice: rows already done
    are not revisited, and a user that already exists as a test user is skipped. Throttling pauses
    the job (back to `queued`); the outbox sweeper resumes it where it stopped."""
    BulkJob.objects.filter(pk=job.pk, status=BulkJob.Status.QUEUED).update(status=BulkJob.Status.RUNNING)
    job.refresh_from_db()
    pool = job.pool
    gw = gateway or CognitoGateway(pool.region)
    rows = job_rows(job)
    params = job.params or {}
    options = {k: params.get(k) for k in ("delivery", "email_verified", "groups", "expires_in_days")}
    results: dict[str, Any] = {"rows": {}, "created": 0, "skipped": 0, "failed": 0, **(job.results or {})}
    processed = min(job.processed, len(rows))

    def save(**extra: Any) -> None:
        BulkJob.objects.filter(pk=job.pk).update(
            processed=processed, skipped=results["skipped"], results=results, **extra
        )

    for index in range(processed, len(rows)):
        try:
            outcome = _bulk_row(job, rows[index], options, gw)
        except (CognitoThrottled, CognitoUnavailable) as exc:
            results["pauses"] = int(results.get("pauses", 0)) + 1
            if results["pauses"] > BULK_MAX_PAUSES:
                save(status=BulkJob.Status.FAILED, finished_at=timezone.now(),
                     error=f"Gave up at row {index + 1} after {BULK_MAX_PAUSES} pauses: {exc}")
            else:
                save(status=BulkJob.Status.QUEUED, error=f"Paused at row {index + 1} ({exc}); resumes shortly.")
            job.refresh_from_db()
            return job
        results["rows"][str(index + 1)] = outcome
        results[{"created": "created", "skipped": "skipped"}.get(outcome["status"], "failed")] += 1
        processed = index + 1
        if processed % BULK_PROGRESS_EVERY == 0:
            save()
    failures = [f"row {n}: {r.get('error', '')}" for n, r in results["rows"].items() if r["status"] == "failed"]
    save(status=BulkJob.Status.DONE, finished_at=timezone.now(), error="\n".join(failures[:200]))
    audit.record(
        action="bulk_finished",
        object_type="bulk_job",
        object_id=str(job.pk),
        pool_id=pool.pool_id,
        detail={"operation": BULK_OPERATION, "created": results["created"], "skipped": results["skipped"],
                "failed": results["failed"]},
        outcome=audit.Outcome.FAILED if results["failed"] else audit.Outcome.OK,
        source=audit.Source.WORKER,
        actor=job.actor,
    )
    job.refresh_from_db()
    return job


# Expiry ------------------------------------------------------------------------------------------------------


def test_users_expire(*, now: datetime | None = None, actor: str = "") -> int:
    """Request the deletion of every test user whose expiry has passed, through the outbox's
    idempotent delete (services.cognito_user_delete: AdminDeleteUser by a worker, the mirror row
    goes when Cognito confirms), with an `expired` audit event each. Users already on their way
    out are not requested twice. Returns the number of deletions requested."""
    from .services import cognito_user_delete

    now = now or timezone.now()
    due = (
        CognitoUser.objects.filter(is_test_user=True, test_user_expires_at__lte=now)
        .select_related("pool")
        .order_by("test_user_expires_at", "pk")[:EXPIRE_BATCH]
    )
    requested = 0
    for user in due:
        with transaction.atomic():
            change = cognito_user_delete(user=user, actor=actor, source=audit.Source.WORKER)
            if change is None:
                continue
            audit.record(
                action="expired",
                object_type="user",
                object_id=user.username,
                object_repr=user.email or user.username,
                pool_id=user.pool.pool_id,
                detail={"expired_at": user.test_user_expires_at, "change": change.pk, "test_user": True},
                source=audit.Source.WORKER,
                actor=actor,
                correlation_id=str(change.correlation_id),
            )
            requested += 1
    if requested:
        logger.info("requested the deletion of %d expired test user(s)", requested)
    return requested


# These are services, not tests: keep pytest from collecting them when a test module imports them.
for _service in (test_user_create, test_users_bulk_start, test_users_bulk_run, test_users_expire):
    _service.__test__ = False  # type: ignore[attr-defined]
