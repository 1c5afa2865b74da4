"""Input rules operators' edits must meet before anything is written (Cognito's own limits)."""

from __future__ import annotations

import re
from typing import Any

import regex
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator, URLValidator

from .gateway import service_shape
from .models import UserPool

E164 = re.compile(r"^\+[1-9]\d{1,14}$")
# Cognito's attribute values are at most 2048 characters.
MAX_ATTRIBUTE_LENGTH = 2048
# Attributes Cognito manages itself; an operator cannot write them.
READ_ONLY_ATTRIBUTES = {"sub", "identities", "cognito:user_status", "cognito:mfa_enabled"}
_email = EmailValidator()


def schema_by_name(pool: UserPool) -> dict[str, dict[str, Any]]:
    return {a["Name"]: a for a in pool.schema}


def validate_user_attributes(pool: UserPool, attributes: dict[str, str], *, creating: bool = False) -> dict[str, str]:
    """Check attribute names and values against the pool's schema; returns the cleaned dict.

    Raises ValidationError({attribute: [message]}) naming the attribute and the rule.
    """
    schema = schema_by_name(pool)
    errors: dict[str, list[str]] = {}
    cleaned: dict[str, str] = {}
    for name, raw_value in attributes.items():
        value = "" if raw_value is None else str(raw_value).strip()
        definition = schema.get(name)
        if name in READ_ONLY_ATTRIBUTES:
            errors.setdefault(name, []).append(f"{name} is managed by Cognito and cannot be changed.")
            continue
        if definition is None:
            errors.setdefault(name, []).append(f"{name} is not an attribute of this pool's schema.")
            continue
        if not creating and definition.get("Mutable") is False:
            errors.setdefault(name, []).append(f"{name} is immutable in this pool: it can only be set at creation.")
            continue
        if definition.get("Required") and not value:
            errors.setdefault(name, []).append(f"{name} is required by this pool and cannot be blank.")
            continue
        if len(value) > MAX_ATTRIBUTE_LENGTH:
            errors.setdefault(name, []).append(
                f"{name} is {len(value)} characters long; Cognito allows at most {MAX_ATTRIBUTE_LENGTH}."
            )
            continue
        constraints = definition.get("StringAttributeConstraints") or {}
        if value and constraints:
            low, high = (
                int(constraints.get("MinLength") or 0),
                int(constraints.get("MaxLength") or MAX_ATTRIBUTE_LENGTH),
            )
            if not low <= len(value) <= high:
                errors.setdefault(name, []).append(
                    f"{name} must be between {low} and {high} characters (it has {len(value)})."
                )
                continue
        numbers = definition.get("NumberAttributeConstraints") or {}
        if value and definition.get("AttributeDataType") == "Number":
            try:
                number = int(value)
            except ValueError:
                errors.setdefault(name, []).append(f"{name} must be a whole number.")
                continue
            if (
                numbers.get("MinValue")
                and number < int(numbers["MinValue"])
                or (numbers.get("MaxValue") and number > int(numbers["MaxValue"]))
            ):
                errors.setdefault(name, []).append(
                    f"{name} must be between {numbers.get('MinValue')} and {numbers.get('MaxValue')}."
                )
                continue
        if value and definition.get("AttributeDataType") == "Boolean" and value not in {"true", "false"}:
            errors.setdefault(name, []).append(f"{name} must be true or false.")
            continue
        if name == "email" and value:
            try:
                _email(value)
            except ValidationError:
                errors.setdefault(name, []).append(f"email: {value!r} is not a valid e-mail address.")
                continue
        if name == "phone_number" and value and not E164.match(value):
            errors.setdefault(name, []).append(
                f"phone_number: {value!r} is not in E.164 format (+ then country code and number, e.g. +14155550100)."
            )
            continue
        if name in {"email_verified", "phone_number_verified"} and value not in {"true", "false"}:
            errors.setdefault(name, []).append(f"{name} must be true or false.")
            continue
        cleaned[name] = value
    if errors:
        raise ValidationError(errors)
    return cleaned


GROUP_NAME = re.compile(r"^[\w+=,.@-]{1,128}$", re.UNICODE)


def shape_problems(shape_name: str, value: str) -> list[str]:
    """What Cognito's request model (botocore's cognito-idp shape) refuses in a string value:
    its length range and its pattern, which must match the whole value."""
    meta = service_shape(shape_name).metadata
    problems = []
    if "min" in meta and len(value) < meta["min"]:
        problems.append(f"at least {meta['min']} character(s)")
    if "max" in meta and len(value) > meta["max"]:
        problems.append(f"at most {meta['max']} characters (it has {len(value)})")
    pattern = meta.get("pattern")
    if pattern and value and not regex.fullmatch(pattern, value):
        problems.append(f"only characters Cognito's {shape_name} allows (pattern {pattern})")
    return problems


def validate_group(
    *, name: str | None = None, description: str = "", precedence: int | None = None, role_arn: str = ""
) -> None:
    errors: dict[str, list[str]] = {}
    if name is not None and (not GROUP_NAME.match(name) or shape_problems("GroupNameType", name)):
        errors["name"] = ["Group name must be 1-128 letters, digits or + = , . @ - _ (no spaces or line breaks)."]
    if description and len(description) > 2048:
        errors["description"] = [f"Description is {len(description)} characters; Cognito allows at most 2048."]
    if precedence is not None and not 0 <= precedence <= 2_147_483_647:
        errors["precedence"] = ["Precedence must be a whole number from 0 to 2147483647."]
    if role_arn and not re.match(r"^arn:[\w+=/,.@-]+:iam::\d{12}:role/[\w+=/,.@-]+$", role_arn):
        errors["role_arn"] = ["Role ARN must look like arn:aws:iam::123456789012:role/name."]
    if errors:
        raise ValidationError(errors)


def validate_urls(field: str, urls: list[str]) -> None:
    validator = URLValidator(schemes=["https", "http"])
    for url in urls:
        if problems := shape_problems("RedirectUrlType", url):
            raise ValidationError({field: [f"{url[:80]!r}: a redirect URL needs {'; '.join(problems)}."]})
        try:
            validator(url)
        except ValidationError:
            raise ValidationError({field: [f"{url!r} is not a valid URL."]})
        if url.startswith("http://") and not re.match(r"^http://(localhost|127\.0\.0\.1)(:\d+)?(/|$)", url):
            raise ValidationError({field: [f"{url!r}: Cognito requires https except for http://localhost."]})
        if "#" in url:
            raise ValidationError({field: [f"{url!r}: Cognito does not allow a fragment (#) in a redirect URL."]})
