"""Users' passwords as Cognito keeps them: the pool's policy checked on every call that sets one,
an SRP verifier stored instead of the password, temporary passwords that expire."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from . import srp
from .protocol import CognitoError, touch

# Cognito's special characters (a space inside the password counts too).
SYMBOLS = set("^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+- ")
DEFAULT_POLICY = {
    "MinimumLength": 8,
    "RequireUppercase": True,
    "RequireLowercase": True,
    "RequireNumbers": True,
    "RequireSymbols": True,
    "TemporaryPasswordValidityDays": 7,
}


def policy_of(pool: Any) -> dict[str, Any]:
    policy = dict(DEFAULT_POLICY)
    policy.update(((pool.extended_config.get("Policies") or {}).get("PasswordPolicy")) or {})
    return policy


def policy_problem(pool: Any, password: str) -> str | None:
    """Cognito's InvalidPasswordException text for the first rule the password breaks, else None."""
    policy = policy_of(pool)
    if password != password.strip() or len(password) > 256:
        return (
            "Password did not conform with policy: Password must satisfy regular expression pattern: ^[\\S]+.*[\\S]+$"
        )
    if len(password) < int(policy.get("MinimumLength") or 8):
        return "Password did not conform with policy: Password not long enough"
    rules = (
        ("RequireLowercase", r"[a-z]", "Password must have lowercase characters"),
        ("RequireUppercase", r"[A-Z]", "Password must have uppercase characters"),
        ("RequireNumbers", r"[0-9]", "Password must have numeric characters"),
    )
    for key, pattern, message in rules:
        if policy.get(key) and not re.search(pattern, password):
            return f"Password did not conform with policy: {message}"
    if policy.get("RequireSymbols") and not SYMBOLS.intersection(password.strip()):
        return "Password did not conform with policy: Password must have symbol characters"
    return None


def check_policy(pool: Any, password: str | None) -> str:
    if not password:
        raise CognitoError("InvalidPasswordException", "Password did not conform with policy: Password not long enough")
    problem = policy_problem(pool, password)
    if problem:
        raise CognitoError("InvalidPasswordException", problem)
    return password


def set_password(pool: Any, user: Any, password: str, *, temporary: bool = False, check: bool = True) -> None:
    """Keep the password's SRP verifier (never the password) and when a temporary one expires."""
    if check:
        check_policy(pool, password)
    user.emulator_verifier = srp.make_verifier(pool.id, user.username, password).to_json()
    user.password = None  # moto keeps passwords in clear; the emulator keeps only the verifier
    if temporary:
        days = int(policy_of(pool).get("TemporaryPasswordValidityDays") or 7)
        user.emulator_temporary_until = (datetime.now(UTC) + timedelta(days=days)).timestamp()
    else:
        user.emulator_temporary_until = None
    touch(user)


def adopt(pool: Any, user: Any) -> None:
    """A password moto stored in clear (a call the emulator passed through) becomes a verifier."""
    if getattr(user, "password", None):
        user.emulator_verifier = srp.make_verifier(pool.id, user.username, user.password).to_json()
        user.password = None
        if not hasattr(user, "emulator_temporary_until"):
            user.emulator_temporary_until = None


def verifier_of(pool: Any, user: Any) -> srp.Verifier | None:
    adopt(pool, user)
    stored = getattr(user, "emulator_verifier", None)
    return srp.Verifier.from_json(stored) if stored else None


def matches(pool: Any, user: Any, password: str | None) -> bool:
    verifier = verifier_of(pool, user)
    return bool(password) and verifier is not None and srp.password_matches(verifier, pool.id, user.username, password)


def temporary_expired(user: Any) -> bool:
    until = getattr(user, "emulator_temporary_until", None)
    return until is not None and until < datetime.now(UTC).timestamp()
