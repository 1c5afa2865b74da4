"""Sign-in as Cognito answers it: InitiateAuth / AdminInitiateAuth and their challenges.

USER_SRP_AUTH runs the real SRP-6a exchange against the user's stored verifier;
USER_PASSWORD_AUTH and ADMIN_USER_PASSWORD_AUTH check the password the same way; a user with a
temporary password gets NEW_PASSWORD_REQUIRED with `userAttributes` and `requiredAttributes`
(JSON strings, as the SDKs parse them); refresh tokens work. Each app client's
ExplicitAuthFlows and secret (SECRET_HASH) are enforced, and tokens follow its validities.
"""

from __future__ import annotations

import hmac
import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from moto.cognitoidp.models import COGNITO_TOTP_MFA_SECRET
from moto.cognitoidp.utils import cognito_totp, verify_totp

from directory.gateway import secret_hash

from . import passwords, srp, tokens
from .protocol import (
    STATE_LOCK,
    CognitoError,
    Environ,
    StartResponse,
    WSGIApp,
    attrs_of,
    error_response,
    find_pool,
    find_user,
    json_response,
    pool_for_client,
    read_params,
    request_region,
    set_status,
    status_of,
    touch,
)

# AuthFlow -> the ExplicitAuthFlows value that allows it, and Cognito's refusal.
FLOW_NEEDS = {
    "USER_SRP_AUTH": ("ALLOW_USER_SRP_AUTH", "USER_SRP_AUTH is not enabled for the client."),
    "USER_PASSWORD_AUTH": ("ALLOW_USER_PASSWORD_AUTH", "USER_PASSWORD_AUTH flow not enabled for this client"),
    "ADMIN_USER_PASSWORD_AUTH": ("ALLOW_ADMIN_USER_PASSWORD_AUTH", "Auth flow not enabled for this client"),
    "ADMIN_NO_SRP_AUTH": ("ALLOW_ADMIN_USER_PASSWORD_AUTH", "Auth flow not enabled for this client"),
    "REFRESH_TOKEN_AUTH": ("ALLOW_REFRESH_TOKEN_AUTH", "Refresh Token auth flow not enabled for this client"),
    "REFRESH_TOKEN": ("ALLOW_REFRESH_TOKEN_AUTH", "Refresh Token auth flow not enabled for this client"),
    "CUSTOM_AUTH": ("ALLOW_CUSTOM_AUTH", "Custom auth flow not enabled for this client"),
    "USER_AUTH": ("ALLOW_USER_AUTH", "USER_AUTH flow not enabled for this client"),
}
# Legacy ExplicitAuthFlows values and what they stand for (SRP and refresh were always on then).
LEGACY_FLOWS = {
    "ADMIN_NO_SRP_AUTH": "ALLOW_ADMIN_USER_PASSWORD_AUTH",
    "USER_PASSWORD_AUTH": "ALLOW_USER_PASSWORD_AUTH",
    "CUSTOM_AUTH_FLOW_ONLY": "ALLOW_CUSTOM_AUTH",
}
# A client created without ExplicitAuthFlows allows these (Cognito's default).
DEFAULT_FLOWS = {"ALLOW_USER_SRP_AUTH", "ALLOW_CUSTOM_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"}
CLIENT_FLOWS = {
    "USER_SRP_AUTH",
    "USER_PASSWORD_AUTH",
    "REFRESH_TOKEN_AUTH",
    "REFRESH_TOKEN",
    "CUSTOM_AUTH",
    "USER_AUTH",
}
ADMIN_FLOWS = CLIENT_FLOWS | {"ADMIN_USER_PASSWORD_AUTH", "ADMIN_NO_SRP_AUTH"} - {"USER_PASSWORD_AUTH"}
INCORRECT = "Incorrect username or password."


def allowed_flows(client: Any) -> set[str]:
    flows = set(client.extended_config.get("ExplicitAuthFlows") or [])
    if not flows:
        return set(DEFAULT_FLOWS)
    if flows & set(LEGACY_FLOWS):
        allowed = {LEGACY_FLOWS.get(f, f) for f in flows} | {"ALLOW_REFRESH_TOKEN_AUTH"}
        if "CUSTOM_AUTH_FLOW_ONLY" not in flows:
            allowed.add("ALLOW_USER_SRP_AUTH")
        return allowed
    return flows


def check_flow(client: Any, flow: str) -> None:
    needed, refusal = FLOW_NEEDS[flow]
    if needed not in allowed_flows(client):
        raise CognitoError("InvalidParameterException", refusal)
    if flow == "CUSTOM_AUTH":
        raise CognitoError(
            "InvalidParameterException", "Custom auth lambda trigger is not configured for the user pool."
        )
    if flow == "USER_AUTH":
        raise CognitoError("InvalidParameterException", "USER_AUTH (choice-based sign-in) is not emulated.")


def check_secret_hash(client: Any, usernames: Iterable[str], given: str | None) -> None:
    """A client with a secret needs SECRET_HASH = Base64(HMAC-SHA256(secret, username + client id))."""
    if not client.generate_secret:
        return
    if not given:
        raise CognitoError(
            "NotAuthorizedException", f"Client {client.id} is configured for secret but secret was not received"
        )
    if not any(hmac.compare_digest(given, secret_hash(client.secret, name, client.id)) for name in usernames if name):
        raise CognitoError("NotAuthorizedException", f"Unable to verify secret hash for client {client.id}")


@dataclass
class AuthSession:
    """A sign-in between two calls: who, through which client, and what was asked."""

    pool: Any
    client: Any
    user: Any
    challenge: str
    expires: float
    srp_a: str = ""
    srp: srp.Challenge | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Sessions:
    """Open challenges by Session (or SRP secret block); each lasts the client's AuthSessionValidity."""

    def __init__(self) -> None:
        self._items: dict[str, AuthSession] = {}
        self._lock = threading.Lock()

    def open(self, session: AuthSession, key: str | None = None) -> str:
        key = key or secrets.token_urlsafe(96)
        with self._lock:
            now = time.time()
            for stale in [k for k, s in self._items.items() if s.expires < now]:
                del self._items[stale]
            self._items[key] = session
        return key

    def take(self, key: str | None, client: Any, challenge: str) -> AuthSession:
        with self._lock:
            session = self._items.pop(key or "", None)
        if session is None or session.client.id != client.id or session.challenge != challenge:
            raise CognitoError("NotAuthorizedException", "Invalid session for the user.")
        if session.expires < time.time():
            raise CognitoError("NotAuthorizedException", "Invalid session for the user, session is expired.")
        return session

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


SESSIONS = Sessions()


def _session_expiry(client: Any) -> float:
    return time.time() + 60 * int(client.extended_config.get("AuthSessionValidity") or 3)


def base_url(environ: Environ) -> str:
    """Where the request came in: the tokens' issuer lives there (JWKS and OpenID configuration too)."""
    host = environ.get("HTTP_HOST") or f"{environ.get('SERVER_NAME', '127.0.0.1')}:{environ.get('SERVER_PORT', '')}"
    return f"{environ.get('wsgi.url_scheme', 'http')}://{host}"


def _user_or_refusal(pool: Any, client: Any, username: str) -> Any:
    try:
        return find_user(pool, username)
    except CognitoError:
        if (client.extended_config.get("PreventUserExistenceErrors") or "LEGACY") == "ENABLED":
            raise CognitoError("NotAuthorizedException", INCORRECT) from None
        raise


def _before_password(user: Any) -> None:
    if not user.enabled:
        raise CognitoError("NotAuthorizedException", "User is disabled.")
    if status_of(user) in {"EXTERNAL_PROVIDER", "ARCHIVED", "COMPROMISED", "UNKNOWN"}:
        raise CognitoError("NotAuthorizedException", INCORRECT)


def _after_password(pool: Any, client: Any, user: Any, iss: str) -> dict[str, Any]:
    """What follows a proven password: Cognito's status checks, a challenge, or the tokens."""
    status = status_of(user)
    if status == "UNCONFIRMED":
        raise CognitoError("UserNotConfirmedException", "User is not confirmed.")
    if status == "RESET_REQUIRED":
        raise CognitoError("PasswordResetRequiredException", "Password reset required for the user")
    if status == "FORCE_CHANGE_PASSWORD":
        if passwords.temporary_expired(user):
            raise CognitoError(
                "NotAuthorizedException", "Temporary password has expired and must be reset by an administrator."
            )
        return _challenge(pool, client, user, "NEW_PASSWORD_REQUIRED", new_password_parameters(pool, user))
    mfa = _mfa_challenge(pool, client, user)
    if mfa is not None:
        return mfa
    return {"ChallengeParameters": {}, "AuthenticationResult": tokens.issue(pool, client, user, iss=iss)}


def new_password_parameters(pool: Any, user: Any) -> dict[str, str]:
    attributes = {k: v for k, v in attrs_of(user).items() if k != "sub"}
    missing = [
        f"userAttributes.{name}"
        for name, schema in pool.schema_attributes.items()
        if schema.required and name != "sub" and name not in attributes
    ]
    return {
        "USER_ID_FOR_SRP": user.username,
        "requiredAttributes": json.dumps(missing),
        "userAttributes": json.dumps(attributes, ensure_ascii=False),
    }


def _challenge(pool: Any, client: Any, user: Any, name: str, parameters: dict[str, Any]) -> dict[str, Any]:
    session = SESSIONS.open(
        AuthSession(pool=pool, client=client, user=user, challenge=name, expires=_session_expiry(client))
    )
    return {"ChallengeName": name, "ChallengeParameters": parameters, "Session": session}


def _mfa_challenge(pool: Any, client: Any, user: Any) -> dict[str, Any] | None:
    """TOTP only (moto's fixed authenticator secret); SMS and e-mail MFA are not emulated."""
    enrolled = user.software_token_mfa_enabled and (
        pool.mfa_config == "ON" or user.preferred_mfa_setting == "SOFTWARE_TOKEN_MFA"
    )
    if enrolled and pool.mfa_config != "OFF":
        return _challenge(pool, client, user, "SOFTWARE_TOKEN_MFA", {})
    if pool.mfa_config == "ON" and not user.software_token_mfa_enabled:
        reply = _challenge(pool, client, user, "MFA_SETUP", {"MFAS_CAN_SETUP": '["SOFTWARE_TOKEN_MFA"]'})
        # moto's AssociateSoftwareToken / VerifySoftwareToken take the session from its own table.
        pool.backend.sessions[reply["Session"]] = (user.username, pool)
        return reply
    return None


def _password_flow(pool: Any, client: Any, params: dict[str, Any], iss: str) -> dict[str, Any]:
    auth = params.get("AuthParameters") or {}
    username = auth.get("USERNAME") or ""
    user = _user_or_refusal(pool, client, username)
    check_secret_hash(client, {username, user.username}, auth.get("SECRET_HASH"))
    _before_password(user)
    if not passwords.matches(pool, user, auth.get("PASSWORD")):
        raise CognitoError("NotAuthorizedException", INCORRECT)
    return _after_password(pool, client, user, iss)


def _srp_flow(pool: Any, client: Any, params: dict[str, Any]) -> dict[str, Any]:
    auth = params.get("AuthParameters") or {}
    username, srp_a = auth.get("USERNAME") or "", auth.get("SRP_A") or ""
    if not srp_a:
        raise CognitoError("InvalidParameterException", "Missing required parameter SRP_A")
    user = _user_or_refusal(pool, client, username)
    check_secret_hash(client, {username, user.username}, auth.get("SECRET_HASH"))
    _before_password(user)
    verifier = passwords.verifier_of(pool, user)
    if verifier is None:
        raise CognitoError("NotAuthorizedException", INCORRECT)
    try:
        challenge = srp.start(verifier, srp_a)
    except ValueError:
        raise CognitoError("InvalidParameterException", "SRP_A is not a valid value") from None
    SESSIONS.open(
        AuthSession(
            pool=pool,
            client=client,
            user=user,
            challenge="PASSWORD_VERIFIER",
            expires=_session_expiry(client),
            srp_a=srp_a,
            srp=challenge,
        ),
        key=challenge.secret_block,
    )
    return {
        "ChallengeName": "PASSWORD_VERIFIER",
        "ChallengeParameters": {
            "SALT": verifier.salt,
            "SECRET_BLOCK": challenge.secret_block,
            "SRP_B": challenge.srp_b,
            "USERNAME": user.username,
            "USER_ID_FOR_SRP": user.username,
        },
    }


def _refresh_flow(pool: Any, client: Any, params: dict[str, Any], iss: str) -> dict[str, Any]:
    auth = params.get("AuthParameters") or {}
    entry = pool.refresh_tokens.get(auth.get("REFRESH_TOKEN") or "")
    if client.generate_secret:
        names = {entry[1] if entry else "", auth.get("USERNAME") or ""}
        check_secret_hash(client, names, auth.get("SECRET_HASH"))
    _, result = tokens.refresh(pool, client, auth.get("REFRESH_TOKEN") or "", iss=iss)
    return {"ChallengeParameters": {}, "AuthenticationResult": result}


def _start(pool: Any, client: Any, params: dict[str, Any], iss: str, flows: set[str]) -> dict[str, Any]:
    flow = params.get("AuthFlow") or ""
    if flow not in flows:
        if flow in FLOW_NEEDS:
            raise CognitoError("InvalidParameterException", "Initiate Auth method not supported.")
        raise CognitoError(
            "InvalidParameterException",
            f"1 validation error detected: Value '{flow}' at 'authFlow' failed to satisfy constraint: "
            f"Member must satisfy enum value set: {sorted(FLOW_NEEDS)}",
        )
    check_flow(client, flow)
    if flow == "USER_SRP_AUTH":
        return _srp_flow(pool, client, params)
    if flow in {"REFRESH_TOKEN_AUTH", "REFRESH_TOKEN"}:
        return _refresh_flow(pool, client, params, iss)
    return _password_flow(pool, client, params, iss)


def _respond(client: Any, params: dict[str, Any], iss: str) -> dict[str, Any]:
    name = params.get("ChallengeName") or ""
    answers = params.get("ChallengeResponses") or {}
    if name == "PASSWORD_VERIFIER":
        session = SESSIONS.take(answers.get("PASSWORD_CLAIM_SECRET_BLOCK"), client, name)
    else:
        session = SESSIONS.take(params.get("Session"), client, name)
    pool, user = session.pool, session.user
    check_secret_hash(client, {answers.get("USERNAME") or "", user.username}, answers.get("SECRET_HASH"))
    if name == "PASSWORD_VERIFIER":
        verifier = passwords.verifier_of(pool, user)
        valid = (
            verifier is not None
            and session.srp is not None
            and srp.claim_is_valid(
                verifier=verifier,
                pool_id=pool.id,
                user_id=user.username,
                srp_a_hex=session.srp_a,
                challenge=session.srp,
                secret_block=answers.get("PASSWORD_CLAIM_SECRET_BLOCK") or "",
                timestamp=answers.get("TIMESTAMP") or "",
                signature=answers.get("PASSWORD_CLAIM_SIGNATURE") or "",
            )
        )
        if not valid:
            raise CognitoError("NotAuthorizedException", INCORRECT)
        _before_password(user)
        return _after_password(pool, client, user, iss)
    if name == "NEW_PASSWORD_REQUIRED":
        return _new_password(pool, client, user, answers, iss)
    if name == "SOFTWARE_TOKEN_MFA":
        try:
            verify_totp(cognito_totp(COGNITO_TOTP_MFA_SECRET), (answers.get("SOFTWARE_TOKEN_MFA_CODE") or "").encode())
        except Exception:  # noqa: BLE001 - cryptography's InvalidToken, or a malformed code
            raise CognitoError("CodeMismatchException", "Invalid code received for user") from None
        return {"ChallengeParameters": {}, "AuthenticationResult": tokens.issue(pool, client, user, iss=iss)}
    if name == "MFA_SETUP" and user.token_verified:
        return {"ChallengeParameters": {}, "AuthenticationResult": tokens.issue(pool, client, user, iss=iss)}
    raise CognitoError("InvalidParameterException", f"Challenge {name} is not emulated.")


def _new_password(pool: Any, client: Any, user: Any, answers: dict[str, Any], iss: str) -> dict[str, Any]:
    password = passwords.check_policy(pool, answers.get("NEW_PASSWORD"))
    given = {k.split(".", 1)[1]: v for k, v in answers.items() if k.startswith("userAttributes.")}
    for name in given:
        schema = pool.schema_attributes.get(name)
        if schema is None or name == "sub":
            raise CognitoError(
                "InvalidParameterException",
                f"Invalid user attributes: user.{name}: Attribute does not exist in the schema.",
            )
        if not schema.mutable and name in attrs_of(user):
            raise CognitoError("NotAuthorizedException", f"Cannot modify the non-mutable attribute {name}")
    have = {**attrs_of(user), **given}
    for name, schema in pool.schema_attributes.items():
        if schema.required and name != "sub" and not have.get(name):
            raise CognitoError("InvalidParameterException", f"Invalid attributes given, {name} is missing")
    if given:
        user.update_attributes([{"Name": k, "Value": v} for k, v in given.items()])
    passwords.set_password(pool, user, password, check=False)
    set_status(user, "CONFIRMED")
    touch(user)
    return _after_password(pool, client, user, iss)


def _handle(environ: Environ, start_response: StartResponse, work: Any) -> Iterable[bytes]:
    try:
        params = read_params(environ)
        with STATE_LOCK:
            return json_response(start_response, work(params))
    except CognitoError as exc:
        return error_response(start_response, exc)


def initiate_auth(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    def work(params: dict[str, Any]) -> dict[str, Any]:
        pool = pool_for_client(request_region(environ), params.get("ClientId") or "")
        return _start(
            pool, pool.clients[params["ClientId"]], params, tokens.issuer(base_url(environ), pool), CLIENT_FLOWS
        )

    return _handle(environ, start_response, work)


def admin_initiate_auth(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    def work(params: dict[str, Any]) -> dict[str, Any]:
        pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
        client = pool.clients.get(params.get("ClientId") or "")
        if client is None:
            raise CognitoError(
                "ResourceNotFoundException", f"User pool client {params.get('ClientId')} does not exist."
            )
        return _start(pool, client, params, tokens.issuer(base_url(environ), pool), ADMIN_FLOWS)

    return _handle(environ, start_response, work)


def respond_to_auth_challenge(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    def work(params: dict[str, Any]) -> dict[str, Any]:
        if params.get("UserPoolId"):
            pool = find_pool(request_region(environ), params["UserPoolId"])
            if params.get("ClientId") not in pool.clients:
                raise CognitoError(
                    "ResourceNotFoundException", f"User pool client {params.get('ClientId')} does not exist."
                )
        else:
            pool = pool_for_client(request_region(environ), params.get("ClientId") or "")
        return _respond(pool.clients[params["ClientId"]], params, tokens.issuer(base_url(environ), pool))

    return _handle(environ, start_response, work)
