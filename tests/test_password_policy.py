"""Generated temporary passwords meet any pool's password policy; operator-chosen ones are checked
against it (moto does not check TemporaryPassword at all, so this is the only check before Cognito)."""

from __future__ import annotations

import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from directory import passwords

# Cognito's special characters, as its documentation lists them (independent of the module's constant).
COGNITO_SPECIALS = set('^$*.[]{}()?"!@#%&/\\,><\':;|_~`=+-')

policies = st.fixed_dictionaries(
    {"MinimumLength": st.integers(min_value=6, max_value=99)},
    optional={
        "RequireUppercase": st.booleans(),
        "RequireLowercase": st.booleans(),
        "RequireNumbers": st.booleans(),
        "RequireSymbols": st.booleans(),
        "TemporaryPasswordValidityDays": st.integers(min_value=0, max_value=365),
    },
)


def meets(password: str, policy: dict) -> bool:
    """The policy, checked here from its definition rather than with the module's own checker."""
    checks = [len(password) >= policy["MinimumLength"], len(password) <= 256, password == password.strip()]
    if policy.get("RequireUppercase"):
        checks.append(re.search("[A-Z]", password) is not None)
    if policy.get("RequireLowercase"):
        checks.append(re.search("[a-z]", password) is not None)
    if policy.get("RequireNumbers"):
        checks.append(re.search("[0-9]", password) is not None)
    if policy.get("RequireSymbols"):
        checks.append(any(c in COGNITO_SPECIALS for c in password))
    return all(checks)


@settings(max_examples=500, deadline=None)
@given(policy=policies, wrapped=st.booleans())
def test_generated_password_meets_any_policy(policy, wrapped):
    given_policy = {"PasswordPolicy": policy} if wrapped else policy
    password = passwords.generate_temporary_password(given_policy)
    assert meets(password, policy), (policy, len(password))
    assert passwords.password_problems(password, given_policy) == []
    allowed = set(string.ascii_letters + string.digits) | COGNITO_SPECIALS
    assert set(password) <= allowed
    assert len(password) >= max(16, policy["MinimumLength"])


@settings(max_examples=300, deadline=None)
@given(policy=policies, password=st.text(min_size=0, max_size=120))
def test_checker_agrees_with_the_policy(policy, password):
    """password_problems() refuses exactly the passwords the policy refuses (symbols per Cognito's list;
    a space inside counts as a symbol too, as Cognito documents)."""
    problems = passwords.password_problems(password, policy)
    stripped_ok = password == password.strip()
    expected = meets(password, policy) or (
        policy.get("RequireSymbols") and " " in password and stripped_ok
        and meets(password, {**policy, "RequireSymbols": False})
    )
    assert (problems == []) == bool(expected), (policy, password, problems)


def test_generated_passwords_differ():
    generated = {passwords.generate_temporary_password({"MinimumLength": 8}) for _ in range(200)}
    assert len(generated) == 200


def test_policy_missing_uses_cognito_default_length():
    assert len(passwords.generate_temporary_password({})) >= 16
    assert passwords.password_problems("Abcdef1", {}) == ["at least 8 characters (it has 7)"]


@pytest.mark.parametrize(
    ("password", "policy", "needs"),
    [
        ("abcdefgh12", {"MinimumLength": 8, "RequireUppercase": True}, ["an uppercase letter (A-Z)"]),
        ("ABCDEFGH12", {"MinimumLength": 8, "RequireLowercase": True}, ["a lowercase letter (a-z)"]),
        ("Abcdefghij", {"MinimumLength": 8, "RequireNumbers": True}, ["a number (0-9)"]),
        ("Abcdefgh12", {"MinimumLength": 8, "RequireSymbols": True}, ["a symbol"]),
        (" Abcdefgh12", {"MinimumLength": 8}, ["no space at the start or the end"]),
        ("Ab1!", {"MinimumLength": 12, "RequireSymbols": True}, ["at least 12 characters (it has 4)"]),
    ],
)
def test_each_rule_is_named(password, policy, needs):
    problems = passwords.password_problems(password, policy)
    assert len(problems) == len(needs)
    for problem, need in zip(problems, needs, strict=True):
        assert problem.startswith(need)
