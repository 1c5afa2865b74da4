"""Pools and app clients as Cognito shapes and keeps them, and each pool's well-known endpoints.

- CreateUserPool refuses UsernameAttributes together with AliasAttributes, as Cognito does.
- Pool ids are `<region>_<9 letters and digits>` and client ids 26 lowercase letters and digits,
  derived from the creation request (so the demo seed's ids are the same every time) and never
  colliding with an existing one (moto's HASH ids replaced a twin).
- A full-config UpdateUserPool keeps what the request cannot carry (sign-in identifiers, case
  sensitivity, schema, name unless PoolName is given: botocore's UserPoolType members that
  UpdateUserPoolRequest lacks), resets the rest as Cognito does, and moves LastModifiedDate.
- MFA reads the same through DescribeUserPool and GetUserPoolMfaConfig (pool_config.py sets it).
- DeleteUserPool is refused while deletion protection is ACTIVE.
- ExplicitAuthFlows never mixes legacy and ALLOW_ values (Cognito refuses it).
- GET /<pool id>/.well-known/jwks.json and openid-configuration answer for the pool's tokens.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import string
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import botocore.session
from moto.cognitoidp.models import CognitoIdpUserPool, CognitoIdpUserPoolClient
from moto.core.exceptions import JsonRESTError

from . import tokens
from .protocol import (
    ACCOUNT_ID,
    STATE_LOCK,
    CognitoError,
    Environ,
    StartResponse,
    WSGIApp,
    call_through,
    cognito_backend,
    error_response,
    find_pool,
    json_response,
    read_body,
    read_params,
    relay,
    request_region,
)
from .signin import LEGACY_FLOWS, base_url

_ALPHANUMERIC = string.digits + string.ascii_letters
_CLIENT_ALPHABET = string.digits + string.ascii_lowercase
WELL_KNOWN = re.compile(
    r"^/(?P<pool_id>[a-z]{2}(?:-[a-z]+)+-\d_[0-9A-Za-z]+)/\.well-known/(?P<doc>jwks\.json|openid-configuration)$"
)


def _kept_on_update() -> frozenset[str]:
    model = botocore.session.get_session().get_service_model("cognito-idp")
    described = set(model.shape_for("UserPoolType").members)
    updatable = set(model.operation_model("UpdateUserPool").input_shape.members)
    return frozenset(described - updatable)


KEPT_ON_UPDATE = _kept_on_update()


def _encode(digest: bytes, alphabet: str, length: int) -> str:
    number = int.from_bytes(digest, "big")
    chars = []
    for _ in range(length):
        number, index = divmod(number, len(alphabet))
        chars.append(alphabet[index])
    return "".join(chars)


def pool_id_for(region: str, seed: str, taken: Iterable[str]) -> str:
    """`<region>_` + 9 letters and digits, from the creation request; the next one if taken."""
    taken = set(taken)
    for attempt in range(1000):
        digest = hashlib.sha256(f"{region}|{seed}|{attempt}".encode()).digest()
        candidate = f"{region}_{_encode(digest, _ALPHANUMERIC, 9)}"
        if candidate not in taken:
            return candidate
    raise CognitoError("LimitExceededException", "No pool id left for this request.")


def client_id_for(seed: str, taken: Iterable[str]) -> str:
    taken = set(taken)
    for attempt in range(1000):
        candidate = _encode(hashlib.sha256(f"{seed}|{attempt}".encode()).digest(), _CLIENT_ALPHABET, 26)
        if candidate not in taken:
            return candidate
    raise CognitoError("LimitExceededException", "No client id left for this pool.")


def _moto_errors(exc: JsonRESTError) -> CognitoError:
    return CognitoError(exc.error_type, exc.message)


def _handled(work: Any) -> Any:
    def handler(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
        try:
            params = read_params(environ)
            with STATE_LOCK:
                result = work(environ, params, app)
        except JsonRESTError as exc:
            return error_response(start_response, _moto_errors(exc))
        except CognitoError as exc:
            return error_response(start_response, exc)
        if isinstance(result, tuple):
            return relay(start_response, *result)
        return json_response(start_response, result)

    handler.__name__ = work.__name__
    handler.__doc__ = work.__doc__
    return handler


@_handled
def create_user_pool(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """CreateUserPool with a Cognito-shaped id (moto's checks and defaults otherwise)."""
    region = request_region(environ)
    backend = cognito_backend(region)
    name = params.pop("PoolName", None)
    if not name:
        raise CognitoError("InvalidParameterException", "PoolName is required.")
    if params.get("UsernameAttributes") and params.get("AliasAttributes"):
        raise CognitoError(
            "InvalidParameterException",
            "Only one of the aliasAttributes or usernameAttributes can be set in a User Pool.",
        )
    seed = json.dumps([name, params], sort_keys=True, default=str)
    pool = CognitoIdpUserPool(ACCOUNT_ID, region, name, params)
    pool.id = pool_id_for(region, seed, backend.user_pools)
    pool.arn = f"{pool.arn.rsplit('/', 1)[0]}/{pool.id}"
    pool.extended_config["MfaConfiguration"] = pool.mfa_config
    backend.user_pools[pool.id] = pool
    return {"UserPool": pool.to_json(extended=True)}


@_handled
def update_user_pool(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """UpdateUserPool: everything it can carry is reset to the request (as Cognito does); what it
    cannot carry stays; MFA stays in step with GetUserPoolMfaConfig."""
    pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
    kept = {k: copy.deepcopy(v) for k, v in pool.extended_config.items() if k in KEPT_ON_UPDATE}
    status, headers, data = call_through(app, environ, read_body(environ))
    if not status.startswith("200"):
        return status, headers, data
    config = pool.extended_config
    new_name = config.pop("PoolName", None)
    config.pop("UserPoolId", None)
    if new_name:
        pool.name = new_name
    for key in KEPT_ON_UPDATE:
        config.pop(key, None)
    config.update(kept)
    pool.mfa_config = config.get("MfaConfiguration") or "OFF"
    config["MfaConfiguration"] = pool.mfa_config
    pool.last_modified_date = datetime.now(UTC).replace(tzinfo=None)
    return {}


def check_flows(flows: Iterable[str] | None) -> None:
    flows = set(flows or [])
    if flows & set(LEGACY_FLOWS) and any(f.startswith("ALLOW_") for f in flows):
        raise CognitoError(
            "InvalidParameterException", "ExplicitAuthFlows cannot mix legacy values with ALLOW_ values."
        )


def client_secret() -> str:
    """51 lowercase letters and digits, like Cognito's."""
    return "".join(secrets.choice(_CLIENT_ALPHABET) for _ in range(51))


@_handled
def create_user_pool_client(environ: Environ, params: dict[str, Any], app: WSGIApp) -> Any:
    """CreateUserPoolClient with a unique Cognito-shaped id and secret."""
    pool = find_pool(request_region(environ), params.pop("UserPoolId", None) or "")
    generate_secret = bool(params.pop("GenerateSecret", False))
    check_flows(params.get("ExplicitAuthFlows"))
    client = CognitoIdpUserPoolClient(pool.id, generate_secret, params)
    client.id = client_id_for(json.dumps([pool.id, generate_secret, params], sort_keys=True, default=str), pool.clients)
    client.secret = client_secret()
    pool.clients[client.id] = client
    return {"UserPoolClient": client.to_json(extended=True)}


def update_user_pool_client(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    try:
        check_flows(read_params(environ).get("ExplicitAuthFlows"))
    except CognitoError as exc:
        return error_response(start_response, exc)
    return app(environ, start_response)


def well_known(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """/<pool id>/.well-known/jwks.json (the pool's signing keys) and openid-configuration."""
    match = WELL_KNOWN.match(environ.get("PATH_INFO", ""))
    assert match is not None  # the middleware routes only matching paths here
    pool_id = match["pool_id"]
    try:
        with STATE_LOCK:
            pool = find_pool(pool_id.partition("_")[0], pool_id)
            if match["doc"] == "jwks.json":
                document = tokens.jwks(pool)
            else:
                iss = tokens.issuer(base_url(environ), pool)
                document = {
                    "issuer": iss,
                    "jwks_uri": f"{iss}/.well-known/jwks.json",
                    "subject_types_supported": ["public"],
                    "id_token_signing_alg_values_supported": ["RS256"],
                    "response_types_supported": ["code", "token"],
                    "scopes_supported": ["openid", "email", "phone", "profile"],
                    "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
                    "claims_supported": [
                        "sub",
                        "iss",
                        "aud",
                        "email",
                        "email_verified",
                        "cognito:username",
                        "cognito:groups",
                        "token_use",
                        "auth_time",
                    ],
                }
    except CognitoError as exc:
        return error_response(start_response, exc)
    body = json.dumps(document).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def delete_user_pool(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """DeleteUserPool refused while deletion protection is on, as Cognito refuses it (moto deletes)."""
    try:
        params = read_params(environ)
        with STATE_LOCK:
            pool = find_pool(request_region(environ), params.get("UserPoolId") or "")
            if pool.extended_config.get("DeletionProtection") == "ACTIVE":
                raise CognitoError(
                    "InvalidParameterException",
                    "The user pool cannot be deleted because deletion protection is activated. "
                    "Deletion protection must be inactivated first.",
                )
            status, headers, data = call_through(app, environ, read_body(environ))
    except CognitoError as exc:
        return error_response(start_response, exc)
    return relay(start_response, status, headers, data)
