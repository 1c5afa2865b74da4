"""Cognito's password rules: checking a password against a pool's policy, and generating one that meets it."""

from __future__ import annotations

import secrets
import string
from collections.abc import Mapping
from typing import Any

from django.views.decorators.debug import sensitive_variables

# Cognito's special characters for password policies (a non-leading, non-trailing space counts too).
COGNITO_SYMBOLS = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-"
# What generated passwords draw symbols from: Cognito's set without quotes, backslash and
# backtick, which get mangled when an operator pastes the password into a shell, CSV or chat.
GENERATED_SYMBOLS = "^$*.[]{}()?!@#%&/,><:;|_~=+-"
# Cognito's MinimumLength when a policy does not say; generated passwords are never shorter than 16.
DEFAULT_MIN_LENGTH = 8
GENERATED_MIN_LENGTH = 16
MAX_PASSWORD_LENGTH = 256


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
