"""Users' own account calls and the admin calls that set passwords, as Cognito answers them.

SignUp (refused on admin-only pools, password policy, SecretHash), ConfirmSignUp and
ConfirmForgotPassword (the code that was sent, failed attempts counted, e-mail verified in
auto-verifying pools), ResendConfirmationCode, ForgotPassword, ChangePassword,
AdminSetUserPassword, AdminCreateUser (policy-checked temporary password; RESEND keeps the
user), AdminResetUserPassword. Passwords are kept only as SRP verifiers (passwords.py).
"""

from __future__ import annotations

import hmac
import json
import time
from collections.abc import Callable, Iterable
from typing import Any

from moto.cognitoidp.models import cognitoidp_backends

from . import messages, passwords, tokens
from .protocol import (
    ACCOUNT_ID,
    STATE_LOCK,
    CognitoError,
    Environ,
    StartResponse,
    WSGIApp,
    attrs_of,
    call_through,
    error_response,
    find_pool,
    find_user,
    json_response,
    pool_for_client,
    read_body,
    read_params,
    relay,
    request_region,
    set_status,
    status_of,
    touch,
)
from .signin import check_secret_hash

CODE_ATTEMPTS = 5  # wrong codes before Cognito stops accepting one (LimitExceededException)
SIGN_UP_CODE_SECONDS = 24 * 3600
RESET_CODE_SECONDS = 3600


# --------------------------------------------------------------------------- codes


def issue_code(user: Any, purpose: str, lifetime: int) -> str:
    code = messages.new_code()
    user.emulator_code = {"purpose": purpose, "code": code, "expires": time.time() + lifetime, "failures": 0}
    user.confirmation_code = None  # moto's own field: never consulted by the emulator
    return code


def check_code(user: Any, purpose: str, given: str | None) -> None:
    """The code sent last for `purpose`; every wrong one counts, and after CODE_ATTEMPTS none is taken."""
    stored = getattr(user, "emulator_code", None)
    if not stored or stored["purpose"] != purpose:
        raise CognitoError("CodeMismatchException", "Invalid verification code provided, please try again.")
    if stored["failures"] >= CODE_ATTEMPTS:
        raise CognitoError("LimitExceededException", "Attempt limit exceeded, please try after some time.")
    if stored["expires"] < time.time():
        raise CognitoError("ExpiredCodeException", "Invalid code provided, please request a code again.")
    if not hmac.compare_digest(str(given or ""), stored["code"]):
        stored["failures"] += 1
        raise CognitoError("CodeMismatchException", "Invalid verification code provided, please try again.")
    user.emulator_code = None


# --------------------------------------------------------------------------- helpers


def _handled(work: Callable[[Environ, dict[str, Any], WSGIApp], Any]) -> Callable[..., Iterable[bytes]]:
    """A shim from `work(environ, params, app)`: its dict is the answer, CognitoError an error answer."""

    def handler(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
        try:
            params = read_params(environ)
            with STATE_LOCK:
                result = work(environ, params, app)
        except CognitoError as exc:
            return error_response(start_response, exc)
        if isinstance(result, tuple):  # moto's own answer, relayed
            return relay(start_response, *result)
        return json_response(start_response, result)

    handler.__name__ = work.__name__
    handler.__doc__ = work.__doc__
    return handler


def _client(environ: Environ, params: dict[str, Any]) -> tuple[Any, Any]:
    pool = pool_for_client(request_region(environ), params.get("ClientId") or "")
    return pool, pool.clients[params["ClientId"]]


def _user_for_client(pool: Any, client: Any, username: str) -> Any:
    try:
        return find_user(pool, username, missing="Username/client id combination not found.")
    except CognitoError:
        if (client.extended_config.get("PreventUserExistenceErrors") or "LEGACY") == "ENABLED":
            raise CognitoError(
                "CodeMismatchException", "Invalid verification code provided, please try again."
            ) from None
        raise


def _required_missing(pool: Any, attributes: dict[str, str]) -> None:
    for name, schema in pool.schema_attributes.items():
        if schema.required and name != "sub" and not attributes.get(name):
            raise CognitoError(
                "InvalidParameterException",
                f"Attributes did not conform to the schema: {name}: The attribute is required",
            )


# --------------------------------------------------------------------------- self-service


@_handled
def sign_up(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """SignUp: admin-only pools refuse it; SecretHash, policy and required attributes checked; moto
    creates the user; the emulator keeps the verifier and sends the code (message log)."""
    pool, client = _client(environ, params)
    username = params.get("Username") or ""
    check_secret_hash(client, {username}, params.get("SecretHash"))
    if (pool.extended_config.get("AdminCreateUserConfig") or {}).get("AllowAdminCreateUserOnly"):
        raise CognitoError("NotAuthorizedException", "SignUp is not permitted for this user pool")
    password = passwords.check_policy(pool, params.get("Password"))
    given = {a["Name"]: a["Value"] for a in params.get("UserAttributes") or []}
    for attribute in pool.extended_config.get("UsernameAttributes") or []:
        looks_like = "@" in username if attribute == "email" else username.startswith("+")
        if looks_like:  # the e-mail / phone that is the username counts as that attribute
            given.setdefault(attribute, username)
    _required_missing(pool, given)
    status, headers, data = call_through(app, environ, read_body(environ))
    if not status.startswith("200"):
        return status, headers, data
    answer = json.loads(data)
    user = next(u for u in list(pool.users.values()) if u.id == answer["UserSub"])
    passwords.set_password(pool, user, password, check=False)
    answer.pop("CodeDeliveryDetails", None)
    medium = messages.verification_medium(pool, user)
    if medium is not None:
        code = issue_code(user, "signup", SIGN_UP_CODE_SECONDS)
        messages.record_verification(pool, user, code, "SignUp", client.id)
        answer["CodeDeliveryDetails"] = messages.delivery(medium, user)
    answer["UserConfirmed"] = False
    return answer


@_handled
def confirm_sign_up(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """ConfirmSignUp with the code that was sent; in a pool that auto-verifies the attribute the
    code went to, that attribute becomes verified."""
    pool, client = _client(environ, params)
    username = params.get("Username") or ""
    user = _user_for_client(pool, client, username)
    check_secret_hash(client, {username, user.username}, params.get("SecretHash"))
    if status_of(user) != "UNCONFIRMED":
        raise CognitoError("NotAuthorizedException", f"User cannot be confirmed. Current status is {status_of(user)}")
    check_code(user, "signup", params.get("ConfirmationCode"))
    medium = messages.verification_medium(pool, user)
    set_status(user, "CONFIRMED")
    if medium is not None:
        user.update_attributes(
            [{"Name": "email_verified" if medium == "EMAIL" else "phone_number_verified", "Value": "true"}]
        )
    touch(user)
    return {}


@_handled
def resend_confirmation_code(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """ResendConfirmationCode (moto has none): client id, SecretHash, user state, a new code."""
    pool, client = _client(environ, params)
    username = params.get("Username") or ""
    check_secret_hash(client, {username}, params.get("SecretHash"))
    user = find_user(pool, username, missing="Username/client id combination not found.")
    if status_of(user) != "UNCONFIRMED":
        raise CognitoError("InvalidParameterException", "User is already confirmed.")
    medium = messages.verification_medium(pool, user)
    if medium is None:
        raise CognitoError("InvalidParameterException", "Cannot resend codes. Auto verification not turned on.")
    code = issue_code(user, "signup", SIGN_UP_CODE_SECONDS)
    messages.record_verification(pool, user, code, "ResendConfirmationCode", client.id)
    return {"CodeDeliveryDetails": messages.delivery(medium, user)}


def recovery_medium(pool: Any, user: Any) -> str:
    """Where a password-reset code goes: AccountRecoverySetting's first usable verified attribute
    (without one, Cognito's legacy order: phone, then e-mail)."""
    setting = (pool.extended_config.get("AccountRecoverySetting") or {}).get("RecoveryMechanisms") or [
        {"Priority": 1, "Name": "verified_phone_number"},
        {"Priority": 2, "Name": "verified_email"},
    ]
    attrs = attrs_of(user)
    for mechanism in sorted(setting, key=lambda m: m.get("Priority", 0)):
        if mechanism["Name"] == "admin_only":
            raise CognitoError("NotAuthorizedException", "Contact administrator to reset password.")
        attribute = "email" if mechanism["Name"] == "verified_email" else "phone_number"
        if attrs.get(attribute) and attrs.get(f"{attribute}_verified") == "true":
            return "EMAIL" if attribute == "email" else "SMS"
    raise CognitoError(
        "InvalidParameterException",
        "Cannot reset password for the user as there is no registered/verified email or phone_number",
    )


def send_reset_code(pool: Any, user: Any, trigger: str, client_id: str = "") -> dict[str, str]:
    medium = recovery_medium(pool, user)
    code = issue_code(user, "reset", RESET_CODE_SECONDS)
    messages.record_verification(pool, user, code, trigger, client_id, medium=medium)
    return messages.delivery(medium, user)


@_handled
def forgot_password(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """ForgotPassword: a reset code to the recovery medium (in the message log)."""
    pool, client = _client(environ, params)
    username = params.get("Username") or ""
    user = find_user(pool, username, missing="Username/client id combination not found.")
    check_secret_hash(client, {username, user.username}, params.get("SecretHash"))
    if not user.enabled:
        raise CognitoError("NotAuthorizedException", "User is disabled.")
    if status_of(user) == "FORCE_CHANGE_PASSWORD":
        raise CognitoError("NotAuthorizedException", "User password cannot be reset in the current state.")
    return {"CodeDeliveryDetails": send_reset_code(pool, user, "ForgotPassword", client.id)}


@_handled
def confirm_forgot_password(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """ConfirmForgotPassword with the code that was sent and a password that meets the policy."""
    pool, client = _client(environ, params)
    username = params.get("Username") or ""
    user = _user_for_client(pool, client, username)
    check_secret_hash(client, {username, user.username}, params.get("SecretHash"))
    password = passwords.check_policy(pool, params.get("Password"))
    check_code(user, "reset", params.get("ConfirmationCode"))
    passwords.set_password(pool, user, password, check=False)
    if status_of(user) in {"RESET_REQUIRED", "FORCE_CHANGE_PASSWORD"}:
        set_status(user, "CONFIRMED")
    return {}


@_handled
def change_password(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """ChangePassword with a valid access token and the current password."""
    token = params.get("AccessToken") or ""
    for backend_pool in _all_pools():
        if token in backend_pool.access_tokens:
            pool = backend_pool
            break
    else:
        raise CognitoError("NotAuthorizedException", "Invalid Access Token")
    if tokens.access_expiry(pool).get(token, 0) < time.time():
        raise CognitoError("NotAuthorizedException", "Access Token has expired")
    user = find_user(pool, pool.access_tokens[token][1])
    if not passwords.matches(pool, user, params.get("PreviousPassword")):
        raise CognitoError("NotAuthorizedException", "Incorrect username or password.")
    passwords.set_password(pool, user, params.get("ProposedPassword") or "")
    return {}


def _all_pools() -> list[Any]:
    return [
        pool
        for region, backend in cognitoidp_backends[ACCOUNT_ID].items()
        if region != "global"
        for pool in list(backend.user_pools.values())
    ]


# --------------------------------------------------------------------------- admin calls


@_handled
def admin_set_user_password(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """AdminSetUserPassword: policy checked; permanent -> CONFIRMED, else a new temporary password."""
    pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
    user = find_user(pool, params.get("Username") or "")
    permanent = bool(params.get("Permanent"))
    passwords.set_password(pool, user, params.get("Password") or "", temporary=not permanent)
    set_status(user, "CONFIRMED" if permanent else "FORCE_CHANGE_PASSWORD")
    return {}


@_handled
def admin_reset_user_password(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """AdminResetUserPassword: RESET_REQUIRED, and a reset code to the recovery medium."""
    pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
    user = find_user(pool, params.get("Username") or "")
    if not user.enabled:
        raise CognitoError("NotAuthorizedException", "User is disabled.")
    if status_of(user) not in {"CONFIRMED", "RESET_REQUIRED"}:
        raise CognitoError("NotAuthorizedException", "User password cannot be reset in the current state.")
    send_reset_code(pool, user, "AdminResetUserPassword")
    set_status(user, "RESET_REQUIRED")
    touch(user)
    return {}


@_handled
def admin_create_user(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """AdminCreateUser: RESEND keeps the user (moto would replace it); otherwise moto creates the
    user with a temporary password (the given one, policy-checked, or one made to the policy), the
    emulator keeps its verifier and records the invitation (unless SUPPRESS)."""
    action = params.get("MessageAction")
    mediums = params.get("DesiredDeliveryMediums") or ["SMS"]  # Cognito's default
    pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
    if action == "RESEND":
        return _resend_invitation(pool, params, mediums)
    _refuse_case_twin(pool, params.get("Username") or "")
    password = params.get("TemporaryPassword")
    if password:
        passwords.check_policy(pool, password)
    else:
        password = messages.new_temporary_password(passwords.policy_of(pool))
        params["TemporaryPassword"] = password
    status, headers, data = call_through(app, environ, json.dumps(params).encode())
    if not status.startswith("200"):
        return status, headers, data
    user = pool.users[json.loads(data)["User"]["Username"]]
    passwords.set_password(pool, user, password, temporary=True, check=False)
    if action != "SUPPRESS":
        messages.record_invitation(pool, user, password, mediums, "AdminCreateUser")
    return {"User": user.to_json(extended=True)}


def _refuse_case_twin(pool: Any, username: str) -> None:
    """In a case-insensitive pool, Ana@Example.com and ana@example.com are one user: Cognito refuses the second."""
    if (pool.extended_config.get("UsernameConfiguration") or {}).get("CaseSensitive", True) or not username:
        return
    try:
        find_user(pool, username)
    except CognitoError:
        return
    raise CognitoError("UsernameExistsException", "An account with the given username already exists.")


def _resend_invitation(pool: Any, params: dict[str, Any], mediums: list[str]) -> dict[str, Any]:
    user = find_user(pool, params.get("Username") or "")
    if status_of(user) != "FORCE_CHANGE_PASSWORD":
        raise CognitoError(
            "UnsupportedUserStateException",
            f"Resend not possible. {user.username} status is not FORCE_CHANGE_PASSWORD.",
        )
    attrs = attrs_of(user)
    if not any(attrs.get("email" if m == "EMAIL" else "phone_number") for m in mediums):
        wanted = " or ".join("email" if m == "EMAIL" else "phone_number" for m in mediums)
        raise CognitoError("InvalidParameterException", f"User has no {wanted} to deliver the invitation to.")
    password = params.get("TemporaryPassword")
    if password:
        passwords.check_policy(pool, password)
    else:
        password = messages.new_temporary_password(passwords.policy_of(pool))
    # Same user object: sub, attributes, groups and creation date stay; the old password stops working.
    passwords.set_password(pool, user, password, temporary=True, check=False)
    messages.record_invitation(pool, user, password, mediums, "AdminCreateUser RESEND")
    return {"User": user.to_json(extended=True)}


def touching(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """moto's answer to an admin call on one user (enable, disable, confirm …), after which the
    user's UserLastModifiedDate moves, as Cognito moves it (moto does not)."""
    try:
        params = read_params(environ)
        with STATE_LOCK:
            status, headers, data = call_through(app, environ, read_body(environ))
            if status.startswith("200"):
                pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
                touch(find_user(pool, params.get("Username") or ""))
    except CognitoError as exc:
        return error_response(start_response, exc)
    return relay(start_response, status, headers, data)
