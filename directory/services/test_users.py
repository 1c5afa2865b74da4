"""Test users: one created inside the request with a temporary password shown once, the checks
every creation shares (single or bulk), and the expiry that deletes them again. Bulk creation
is in test_users_bulk.py."""

from __future__ import annotations

import logging
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

from .. import audit
from ..gateway import CognitoError, CognitoGateway, CognitoNotFound
from ..log_redaction import install_log_redaction
from ..mapping import diff, user_fields, user_hash
from ..models import CognitoGroup, CognitoUser, GroupMembership, PendingChange, UserPool
from ..passwords import generate_temporary_password, password_problems
from ..validation import E164, READ_ONLY_ATTRIBUTES, validate_user_attributes
from .users import cognito_user_delete

logger = logging.getLogger(__name__)

DELIVERY_CHOICES = ("EMAIL", "SMS", "SUPPRESS")
MAX_EXPIRES_IN_DAYS = 365
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


def default_delivery(pool: UserPool) -> str:
    """The invitation's delivery a new test user gets unless the operator picks another: EMAIL where the
    pool's users have an e-mail address (it signs in by, aliases, auto-verifies or requires `email`),
    else SMS where users have a phone number and the pool can send SMS, else SUPPRESS."""
    attributes = {
        *(pool.username_attributes or []), *(pool.alias_attributes or []), *(pool.auto_verified_attributes or []),
        *required_attributes(pool),
    }
    if "email" in attributes:
        return "EMAIL"
    if "phone_number" in attributes and (pool.sms_configuration or {}).get("SnsCallerArn"):
        return "SMS"
    return "SUPPRESS"


def _is_email(value: str) -> bool:
    try:
        validate_email(value)
    except ValidationError:
        return False
    return True


def identifier_labels(names: Iterable[str]) -> str:
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
        label = identifier_labels(signs_in_by)
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


def taken_message(name: str, value: str, holder: str, *, where: str) -> str:
    if name == "username":
        return f"username: a user named {holder} already exists in this pool ({where})."
    return (f"{name}: {value} is already used by user {holder} ({where}); this pool signs in by "
            f"{IDENTIFIER_LABELS.get(name, name)}, so each one can belong to one user only.")


def cognito_errors(exc: CognitoError, new: NewUser) -> dict[str, list[str]]:
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


def record_created(
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
            action=audit.Action.CREATED,
            object_type="user",
            object_id=user.username,
            object_repr=user.email or user.username,
            pool_id=pool.pool_id,
            changes=diff({}, fields),
            detail={
                "operation": PendingChange.Operation.USER_CREATE_TEST_USER,
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
                action=audit.Action.GROUP_ADDED,
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
                action=audit.Action.GROUP_ADD_FAILED,
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


def add_to_groups(
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
            errors[name] = [taken_message(name, new.attributes.get(name, new.username), user.username,
                                           where="in the mirror")]
        else:
            found = find_in_cognito(pool, new, gw)
            if found is not None:
                name, record = found
                errors[name] = [taken_message(name, new.attributes.get(name, new.username), record["Username"],
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
        raise ValidationError(cognito_errors(exc, new)) from None
    added, failed = add_to_groups(pool, record["Username"], new.groups, gw)
    user = record_created(
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



# Expiry ------------------------------------------------------------------------------------------------------


def test_users_expire(*, now: datetime | None = None, actor: str = "") -> int:
    """Request the deletion of every test user whose expiry has passed, through the outbox's
    idempotent delete (users.cognito_user_delete: AdminDeleteUser by a worker, the mirror row
    goes when Cognito confirms), with an `expired` audit event each. Users already on their way
    out are not requested twice. Returns the number of deletions requested."""
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
                action=audit.Action.EXPIRED,
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
for _service in (test_user_create, test_users_expire):
    _service.__test__ = False  # type: ignore[attr-defined]
