"""The pieces a settings catalogue entry is made of: the `Setting` record, the pool document its
paths point into, and the field factories and rule helpers entries share (see settings_catalog).

The pool document is DescribeUserPool's `UserPool` record, normalised so that two readings of the
same pool compare equal however they were obtained (Cognito's answer, or the mirror's columns):
Cognito's meaning for missing keys is filled in, the schema is keyed by attribute name, and
GetUserPoolMfaConfig's answer sits under `MfaConfig` (its methods; the mode stays `MfaConfiguration`).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django import forms

from .mapping import normalise_mfa
from .validation import shape_problems

Document = dict[str, Any]
# Keys of DescribeUserPool that move by themselves: never a setting, never compared.
VOLATILE_KEYS = frozenset({"LastModifiedDate", "EstimatedNumberOfUsers", "CreationDate", "Status"})
MFA_KEY = "MfaConfig"
# Unit prefix of a custom attribute: `SchemaAttributes.custom:<name>` (the schema is keyed by name).
SCHEMA_KEY = "SchemaAttributes"
# Cognito's meaning for a missing key, as it answers DescribeUserPool for a pool created without it.
DOCUMENT_DEFAULTS: dict[str, Any] = {"MfaConfiguration": "OFF", "DeletionProtection": "INACTIVE"}

# The Cognito calls a setting can be carried by; a pool change makes them in this order.
ADD_CUSTOM_ATTRIBUTES = "AddCustomAttributes"
UPDATE_USER_POOL = "UpdateUserPool"
SET_MFA_CONFIG = "SetUserPoolMfaConfig"
TAG_RESOURCE = "TagResource/UntagResource"
CREATE_ONLY = "CreateUserPool"


@dataclass(frozen=True)
class Setting:
    """One setting: where it lives in the pool document, how the console shows and checks it, and
    which call carries it. Values here are form values (what the form's field cleans to)."""

    name: str  # the form field name (a public contract)
    label: str
    help: str
    section: str  # the console's section, also the Settings page's fieldset
    path: str  # dotted path in the pool document where Cognito keeps it
    field: Callable[[], forms.Field]
    call: str = UPDATE_USER_POOL
    # The change's unit: a PendingChange's before/after key, compared for conflicts as a whole.
    unit: str = ""
    # What the console starts a new pool with (a form value).
    default: Any = None
    # What a missing value means (a form value); `read` returns it for an absent path.
    absent: Any = None
    changeable: bool = True
    locked_reason: str = ""
    # Document -> form value, and (document, form value) -> None writing it in; defaults use `path`.
    reader: Callable[[Document], Any] | None = None
    writer: Callable[[Document, Any], None] | None = None
    # (value, every cleaned value) -> problems, each a sentence naming the rule.
    rules: tuple[Callable[[Any, dict[str, Any]], list[str]], ...] = ()
    # Form value -> text for the pool page.
    show: Callable[[Any], str] | None = None
    # Where the value goes in CreateUserPool's request (dotted; "" = the same as `path`).
    create_path: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def change_unit(self) -> str:
        return self.unit or self.path

    def read(self, document: Document) -> Any:
        if self.reader is not None:
            return self.reader(document)
        value = get_path(document, self.path)
        return self.absent if value is None else value

    def write(self, document: Document, value: Any) -> None:
        if self.writer is not None:
            self.writer(document, value)
        else:
            set_path(document, self.path, None if value in ("", None, [], {}) else value)

    def problems(self, value: Any, values: dict[str, Any]) -> list[str]:
        found: list[str] = []
        for rule in self.rules:
            found.extend(rule(value, values))
        return found

    def display(self, value: Any) -> str:
        if self.show is not None:
            return self.show(value)
        if isinstance(value, bool):
            return "yes" if value else "no"
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value) or "—"
        if isinstance(value, dict):
            return ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "—"
        return "—" if value in (None, "") else str(value)


# Paths in a document ---------------------------------------------------------------------------------


def split_path(path: str) -> list[str]:
    """`SchemaAttributes.custom:x` keeps the attribute's name whole; other paths split on dots."""
    if path.startswith(SCHEMA_KEY + "."):
        return [SCHEMA_KEY, path[len(SCHEMA_KEY) + 1:]]
    return path.split(".")


def get_path(data: Any, path: str) -> Any:
    for part in split_path(path):
        if not isinstance(data, dict):
            return None
        data = data.get(part)
    return data


def set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set a member (None removes it; parents left empty are removed too)."""
    parts = split_path(path)
    chain = [data]
    for part in parts[:-1]:
        child = chain[-1].get(part)
        if not isinstance(child, dict):
            if value is None:
                return
            child = chain[-1][part] = {}
        chain.append(child)
    if value is None:
        chain[-1].pop(parts[-1], None)
        for parent, part in zip(reversed(chain[:-1]), reversed(parts[:-1]), strict=True):
            if parent.get(part) == {}:
                parent.pop(part)
    else:
        chain[-1][parts[-1]] = copy.deepcopy(value)


def _without_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_none(v) for k, v in value.items() if v is not None}
    return value


def normalise_document(record: dict[str, Any], mfa: dict[str, Any] | None = None) -> Document:
    """A DescribeUserPool record (+ GetUserPoolMfaConfig's answer) as a comparable document."""
    document = _without_none(copy.deepcopy(record))
    for key in [k for k, v in document.items() if v in ({}, [], "")]:
        document.pop(key)
    for key, value in DOCUMENT_DEFAULTS.items():
        document.setdefault(key, value)
    admin_create = document.setdefault("AdminCreateUserConfig", {})
    admin_create.setdefault("AllowAdminCreateUserOnly", False)
    schema = document.get(SCHEMA_KEY)
    if isinstance(schema, list):
        document[SCHEMA_KEY] = {a["Name"]: {k: v for k, v in a.items() if k != "Name"} for a in schema}
    document[MFA_KEY] = normalise_mfa(mfa)
    return document


def record_from_document(document: Document) -> dict[str, Any]:
    """A document back in DescribeUserPool's shape (the schema as a list), without `MfaConfig`."""
    record = {k: copy.deepcopy(v) for k, v in document.items() if k != MFA_KEY}
    schema = record.get(SCHEMA_KEY)
    if isinstance(schema, dict):
        record[SCHEMA_KEY] = [{"Name": name, **entry} for name, entry in schema.items()]
    return record


def differences(expected: Any, actual: Any, *, skip: set[tuple[str, ...]], prefix: tuple[str, ...] = ()) -> list[str]:
    """Dotted paths where `actual` differs from `expected`, not descending into `skip` paths."""
    if prefix in skip:
        return []
    if isinstance(expected, dict) or isinstance(actual, dict):
        expected = expected if isinstance(expected, dict) else {} if expected is None else expected
        actual = actual if isinstance(actual, dict) else {} if actual is None else actual
    if isinstance(expected, dict) and isinstance(actual, dict):
        found: list[str] = []
        for key in sorted(set(expected) | set(actual)):
            if not prefix and key in VOLATILE_KEYS:
                continue
            found.extend(differences(expected.get(key), actual.get(key), skip=skip, prefix=(*prefix, key)))
        return found
    if expected in (None, {}, [], "") and actual in (None, {}, [], ""):
        return []
    return [] if expected == actual else [".".join(prefix)]


# Field factories and rules ---------------------------------------------------------------------------


def text(max_length: int | None = None, *, strip: bool = True) -> Callable[[], forms.Field]:
    return lambda: forms.CharField(
        required=False, max_length=max_length, strip=strip, widget=forms.TextInput(attrs={"class": "vTextField"})
    )


def choice(choices: list[tuple[str, str]], *, required: bool = True) -> Callable[[], forms.Field]:
    return lambda: forms.ChoiceField(choices=choices, required=required)


def multiple(choices: list[tuple[str, str]]) -> Callable[[], forms.Field]:
    return lambda: forms.MultipleChoiceField(choices=choices, required=False, widget=forms.CheckboxSelectMultiple)


def boolean() -> Callable[[], forms.Field]:
    return lambda: forms.BooleanField(required=False)


def integer(low: int, high: int) -> Callable[[], forms.Field]:
    """A whole number in Cognito's range; out of range, the error says the range (the field names itself)."""
    rule = f"Cognito allows {low} to {high}; between {low} and {high} inclusive."
    return lambda: forms.IntegerField(
        min_value=low, max_value=high, error_messages={"min_value": rule, "max_value": rule}
    )


def shaped(shape: str, what: str) -> Callable[[Any, dict[str, Any]], list[str]]:
    """A rule: a non-blank value must meet botocore's shape (length and pattern)."""

    def rule(value: Any, values: dict[str, Any]) -> list[str]:
        if value in (None, ""):
            return []
        problems = shape_problems(shape, str(value))
        return [f"{what} needs {'; '.join(problems)}."] if problems else []

    return rule


ARN_SHAPE = "ArnType"


def arn_of(service: str, what: str) -> Callable[[Any, dict[str, Any]], list[str]]:
    """A rule: a non-blank value is an ARN (Cognito's ArnType) of the given service."""
    shape_rule = shaped(ARN_SHAPE, f"{what} (an ARN)")

    def rule(value: Any, values: dict[str, Any]) -> list[str]:
        if value in (None, ""):
            return []
        problems = shape_rule(value, values)
        if not problems and str(value).split(":")[2:3] != [service]:
            problems = [f"{what} must be an ARN of {service} (arn:aws:{service}:…), not {str(value)[:60]!r}."]
        return problems

    return rule
