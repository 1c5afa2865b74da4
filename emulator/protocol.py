"""What the emulator's parts share: the WSGI types, Cognito's JSON protocol (requests, answers,
errors), and lookups in moto's backend (pools, clients, users)."""

from __future__ import annotations

import io
import json
import os
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from moto.cognitoidp.models import UserStatus, cognitoidp_backends

ACCOUNT_ID = "123456789012"  # the account moto maps every fake access key to
TARGET_PREFIX = "AWSCognitoIdentityProviderService."

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
# A shim gets the request and the wrapped moto app, and either answers or calls through.
Handler = Callable[[Environ, StartResponse, WSGIApp], Iterable[bytes]]

# Shims change moto's objects from several server threads; one lock keeps each shim's
# read-check-write whole (the emulator is a dev tool: throughput is not the point).
STATE_LOCK = threading.RLock()

_CREDENTIAL_REGION = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/")


def target(operation: str) -> str:
    """The X-Amz-Target header value boto3 sends for a Cognito operation."""
    return TARGET_PREFIX + operation


def cognito_backend(region: str) -> Any:
    """moto's Cognito backend for `region` in this process (what the emulator's server serves)."""
    return cognitoidp_backends[ACCOUNT_ID][region]


class CognitoError(Exception):
    """A Cognito error answer (HTTP 400, JSON `__type` + `message`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def read_body(environ: Environ) -> bytes:
    """The request body; put back, so a shim can still call through to moto."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def read_params(environ: Environ) -> dict[str, Any]:
    try:
        params = json.loads(read_body(environ) or b"{}")
    except ValueError:
        raise CognitoError("SerializationException", "Request body is not valid JSON.") from None
    return params if isinstance(params, dict) else {}


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        # Cognito's JSON protocol sends timestamps as epoch seconds, in whole milliseconds like
        # moto's own answers (so dates compare equal across calls).
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000) / 1000
    if isinstance(value, UserStatus):
        return value.value
    return str(value)


def json_response(start_response: StartResponse, payload: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(payload, default=_json_default).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))])
    return [body]


def error_response(start_response: StartResponse, exc: CognitoError) -> list[bytes]:
    body = json.dumps({"__type": exc.code, "message": exc.message}).encode()
    start_response(
        "400 Bad Request",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("x-amzn-ErrorType", exc.code),
            ("x-amzn-ErrorMessage", exc.message.encode("ascii", "replace").decode()),
            ("Content-Length", str(len(body))),
        ],
    )
    return [body]


def request_region(environ: Environ) -> str:
    """The region of the request's SigV4 credential scope (Credential=KEY/DATE/REGION/SERVICE/...).
    Unsigned calls (InitiateAuth, SignUp … from a browser SDK) carry none: the emulator's region."""
    match = _CREDENTIAL_REGION.search(environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else (os.environ.get("AWS_REGION") or "us-east-1")


def find_pool(region: str, pool_id: str) -> Any:
    pool = cognito_backend(region).user_pools.get(pool_id)
    if pool is None:
        # A pool id names its region: an unsigned call may reach the emulator from anywhere.
        prefix = pool_id.partition("_")[0]
        if prefix and prefix != region and "-" in prefix:
            pool = cognito_backend(prefix).user_pools.get(pool_id)
    if pool is None:
        raise CognitoError("ResourceNotFoundException", f"User pool {pool_id} does not exist.")
    return pool


def pool_for_client(region: str, client_id: str) -> Any:
    """The pool that holds the app client (looked for in the request's region, then every region)."""
    regions = [region, *(r for r in cognitoidp_backends[ACCOUNT_ID] if r not in (region, "global"))]
    for name in regions:
        backend = cognitoidp_backends[ACCOUNT_ID].get(name) if name != region else cognito_backend(name)
        if backend is None:
            continue
        for pool in list(backend.user_pools.values()):
            if client_id in pool.clients:
                return pool
    raise CognitoError("ResourceNotFoundException", f"User pool client {client_id} does not exist.")


def find_user(pool: Any, username: str, *, missing: str = "User does not exist.") -> Any:
    """A user by Username, or by an e-mail / phone alias or username attribute, as Cognito finds one."""
    user = (pool.users.get(username) or pool._get_user(username)) if username else None
    if user is None and username:
        aliases = pool.extended_config.get("AliasAttributes") or []
        for candidate in list(pool.users.values()):
            lookup = candidate.attribute_lookup
            if any(lookup.get(a) == username and lookup.get(f"{a}_verified") == "true" for a in aliases):
                user = candidate
                break
        if user is None and "preferred_username" in aliases:
            user = next(
                (u for u in list(pool.users.values()) if u.attribute_lookup.get("preferred_username") == username),
                None,
            )
        if user is None and not (pool.extended_config.get("UsernameConfiguration") or {}).get("CaseSensitive", True):
            user = _case_insensitive_match(pool, username.lower(), aliases)
    if user is None:
        raise CognitoError("UserNotFoundException", missing)
    return user


def _case_insensitive_match(pool: Any, lowered: str, aliases: list[str]) -> Any:
    """In a case-insensitive pool Cognito finds Ana@Example.com as ana@example.com, whether it is the
    username, the e-mail or phone that serves as the username, or a verified alias."""
    identifiers = pool.extended_config.get("UsernameAttributes") or []
    for candidate in list(pool.users.values()):
        lookup = candidate.attribute_lookup
        if candidate.username.lower() == lowered:
            return candidate
        if any(str(lookup.get(a) or "").lower() == lowered for a in identifiers):
            return candidate
        if any(str(lookup.get(a) or "").lower() == lowered and lookup.get(f"{a}_verified") == "true" for a in aliases):
            return candidate
    return None


def status_of(user: Any) -> str:
    return str(getattr(user.status, "value", user.status))


def set_status(user: Any, status: str) -> None:
    # moto compares its own statuses by identity (`is UserStatus.CONFIRMED`): keep its enum.
    user.status = UserStatus[status] if status in UserStatus.__members__ else status


def attrs_of(user: Any) -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in user.attributes}


def touch(user: Any) -> None:
    """UserLastModifiedDate moves, as Cognito moves it on status, password and enable/disable changes."""
    user.last_modified_date = datetime.now(UTC).replace(tzinfo=None)


def call_through(app: WSGIApp, environ: Environ, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
    """moto's answer to the request (with `body`), captured instead of sent."""
    environ = dict(environ)
    environ["wsgi.input"] = io.BytesIO(body)
    environ["CONTENT_LENGTH"] = str(len(body))
    captured: dict[str, Any] = {}

    def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        captured["status"], captured["headers"] = status, headers
        return lambda data: None

    result = app(environ, capture)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return captured["status"], captured["headers"], data


def relay(start_response: StartResponse, status: str, headers: list[tuple[str, str]], data: bytes) -> list[bytes]:
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    start_response(status, [*headers, ("Content-Length", str(len(data)))])
    return [data]
