"""What moto lacks or gets wrong, answered the way Cognito does.

- ResendConfirmationCode (moto has none): client id, SecretHash, user state, a new code.
- AdminCreateUser MessageAction=RESEND (moto replaces the user: new sub, attributes and groups
  dropped): here the same user keeps everything and gets a new temporary password.
- The messages Cognito would send (invitations, verification codes) are rendered from the pool's
  current templates and kept in an in-memory log, served at GET/DELETE /_emulator/messages.
SignUp and AdminCreateUser are handled by moto; the shims call through, then record the message.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import re
import secrets
import string
import threading
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from directory.gateway import secret_hash

from .protocol import Environ, Handler, StartResponse, WSGIApp, cognito_backend, target

MESSAGE_LOG_SIZE = 500
MESSAGES_PATH = "/_emulator/messages"

# Cognito's own texts when a pool sets no template.
DEFAULT_VERIFICATION_SUBJECT = "Your verification code"
DEFAULT_VERIFICATION_MESSAGE = "Your verification code is {####}. "
DEFAULT_INVITE_SUBJECT = "Your temporary password"
DEFAULT_INVITE_MESSAGE = "Your username is {username} and temporary password is {####}. "
_LINK_PLACEHOLDER = re.compile(r"\{##(.*?)##\}", re.DOTALL)
_HTML_TAG = re.compile(r"<[a-zA-Z!/][^>]*>")
_SYMBOLS = "^$*.[]{}()?\"!@#%&/\\,><':;|_~`=+-"


class MessageLog:
    """The messages Cognito would have sent, newest last, bounded (a dev tool: memory only)."""

    def __init__(self, size: int = MESSAGE_LOG_SIZE) -> None:
        self._messages: deque[dict[str, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()
        self._next_id = 1

    def add(self, **message: Any) -> dict[str, Any]:
        with self._lock:
            record = {"id": self._next_id, "time": datetime.now(UTC).isoformat(timespec="milliseconds"), **message}
            self._next_id += 1
            self._messages.append(record)
            return dict(record)

    def list(self, *, pool_id: str | None = None, username: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        """Newest first."""
        with self._lock:
            items = list(self._messages)
        return [
            dict(m)
            for m in reversed(items)
            if (not pool_id or m["pool_id"] == pool_id)
            and (not username or username in (m.get("username"), m.get("to")))
            and m["id"] > since
        ]

    def clear(self, *, pool_id: str | None = None) -> int:
        with self._lock:
            before = len(self._messages)
            kept = [m for m in self._messages if pool_id and m["pool_id"] != pool_id]
            self._messages.clear()
            self._messages.extend(kept)
            return before - len(kept)


MESSAGE_LOG = MessageLog()


class _ShimError(Exception):
    """A Cognito error answer (HTTP 400, JSON `__type` + `message`)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _read_body(environ: Environ) -> bytes:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    # Put the bytes back, so a shim can still call through to moto.
    environ["wsgi.input"] = io.BytesIO(body)
    return body


def _json_response(start_response: StartResponse, payload: Any, status: str = "200 OK") -> list[bytes]:
    body = json.dumps(payload, default=_json_default).encode()
    start_response(status, [("Content-Type", "application/x-amz-json-1.1"), ("Content-Length", str(len(body)))])
    return [body]


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        # Cognito's JSON protocol sends timestamps as epoch seconds.
        # Whole milliseconds, like moto's own answers (so dates compare equal across calls).
        return int((value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp() * 1000) / 1000
    return str(value)


def _error(start_response: StartResponse, exc: _ShimError) -> list[bytes]:
    return _json_response(start_response, {"__type": exc.code, "message": exc.message}, "400 Bad Request")


def _region(environ: Environ) -> str:
    """The region of the request's SigV4 credential scope (Credential=KEY/DATE/REGION/SERVICE/...)."""
    match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
    return match.group(1) if match else (os.environ.get("AWS_REGION") or "us-east-1")


def _pool(region: str, pool_id: str) -> Any:
    pool = cognito_backend(region).user_pools.get(pool_id)
    if pool is None:
        raise _ShimError("ResourceNotFoundException", f"User pool {pool_id} does not exist.")
    return pool


def _pool_for_client(region: str, client_id: str) -> Any:
    for pool in list(cognito_backend(region).user_pools.values()):
        if client_id in pool.clients:
            return pool
    raise _ShimError("ResourceNotFoundException", f"User pool client {client_id} does not exist.")


def _call_through(app: WSGIApp, environ: Environ, body: bytes) -> tuple[str, list[tuple[str, str]], bytes]:
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


def _relay(start_response: StartResponse, status: str, headers: list[tuple[str, str]], data: bytes) -> list[bytes]:
    headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
    start_response(status, [*headers, ("Content-Length", str(len(data)))])
    return [data]


def mask_destination(value: str, medium: str) -> str:
    """Cognito's masked destination: "t***@e***.com" for an e-mail, "+*******0100" for a phone."""
    if medium == "EMAIL":
        local, _, domain = value.partition("@")
        name, dot, tld = domain.rpartition(".")
        if not name:
            name, dot, tld = domain, "", ""
        return f"{local[:1]}***@{name[:1]}***{dot}{tld}"
    return "+" + "*" * max(len(value) - 5, 0) + value[-4:]


def _attrs(user: Any) -> dict[str, str]:
    return {a["Name"]: a["Value"] for a in user.attributes}


def new_code() -> str:
    """A 6-digit code, as Cognito sends (leading zeros included)."""
    return f"{secrets.randbelow(10**6):06d}"


def new_temporary_password(policy: dict[str, Any] | None) -> str:
    """A temporary password satisfying the pool's password policy (Cognito generates one too)."""
    policy = policy or {}
    length = max(int(policy.get("MinimumLength") or 8), 12)
    pools = [string.ascii_lowercase, string.ascii_uppercase, string.digits, _SYMBOLS]
    chars = [secrets.choice(p) for p in pools]  # every class: fits any policy
    alphabet = "".join(pools)
    chars += [secrets.choice(alphabet) for _ in range(length - len(chars))]
    secrets.SystemRandom().shuffle(chars)
    return "".join(chars)


def _looks_html(text: str) -> bool:
    return bool(_HTML_TAG.search(text))


def _verification_templates(config: dict[str, Any]) -> dict[str, str]:
    """The pool's verification message: VerificationMessageTemplate, else the older
    EmailVerificationMessage/Subject and SmsVerificationMessage, else Cognito's defaults."""
    template = config.get("VerificationMessageTemplate") or {}
    return {
        "option": template.get("DefaultEmailOption") or "CONFIRM_WITH_CODE",
        "email_subject": template.get("EmailSubject") or config.get("EmailVerificationSubject")
        or DEFAULT_VERIFICATION_SUBJECT,
        "email_message": template.get("EmailMessage") or config.get("EmailVerificationMessage")
        or DEFAULT_VERIFICATION_MESSAGE,
        "email_subject_by_link": template.get("EmailSubjectByLink") or DEFAULT_VERIFICATION_SUBJECT,
        "email_message_by_link": template.get("EmailMessageByLink")
        or "Please click the link below to verify your email address. {##Verify Email##} ",
        "sms_message": template.get("SmsMessage") or config.get("SmsVerificationMessage")
        or DEFAULT_VERIFICATION_MESSAGE,
    }


def _invite_templates(config: dict[str, Any]) -> dict[str, str]:
    template = (config.get("AdminCreateUserConfig") or {}).get("InviteMessageTemplate") or {}
    return {
        "email_subject": template.get("EmailSubject") or DEFAULT_INVITE_SUBJECT,
        "email_message": template.get("EmailMessage") or DEFAULT_INVITE_MESSAGE,
        "sms_message": template.get("SMSMessage") or DEFAULT_INVITE_MESSAGE,
    }


def _record(
    *,
    pool: Any,
    user: Any,
    kind: str,
    trigger: str,
    medium: str,
    subject: str,
    body: str,
    code: str,
) -> dict[str, Any]:
    attrs = _attrs(user)
    to = attrs.get("email", "") if medium == "EMAIL" else attrs.get("phone_number", "")
    return MESSAGE_LOG.add(
        pool_id=pool.id,
        pool_name=pool.name,
        kind=kind,
        trigger=trigger,
        medium=medium,
        to=to,
        username=user.username,
        sub=user.id,
        subject=subject if medium == "EMAIL" else "",
        body=body,
        html=medium == "EMAIL" and _looks_html(body),
        code=code,
    )


def record_invitation(pool: Any, user: Any, password: str, mediums: Iterable[str], trigger: str) -> list[dict]:
    """The invitation Cognito sends on AdminCreateUser (not SUPPRESS) and RESEND, per medium."""
    templates = _invite_templates(pool.extended_config)
    attrs = _attrs(user)
    recorded = []
    for medium in mediums:
        if not attrs.get("email" if medium == "EMAIL" else "phone_number"):
            continue
        text = templates["email_message"] if medium == "EMAIL" else templates["sms_message"]
        body = text.replace("{username}", _sign_in_name(pool, user)).replace("{####}", password)
        recorded.append(
            _record(
                pool=pool, user=user, kind="invitation", trigger=trigger, medium=medium,
                subject=templates["email_subject"], body=body, code=password,
            )
        )
    return recorded


def _sign_in_name(pool: Any, user: Any) -> str:
    """What the user signs in with: the e-mail/phone in pools where that is the username (their
    Username there is the sub), else the Username."""
    attrs = _attrs(user)
    for attribute in pool.extended_config.get("UsernameAttributes") or []:
        if attrs.get(attribute):
            return attrs[attribute]
    return user.username


def _verification_medium(pool: Any, user: Any) -> str | None:
    """Where Cognito sends a sign-up code: the auto-verified attribute the user has (e-mail first)."""
    auto = pool.extended_config.get("AutoVerifiedAttributes") or []
    attrs = _attrs(user)
    if "email" in auto and attrs.get("email"):
        return "EMAIL"
    if "phone_number" in auto and attrs.get("phone_number"):
        return "SMS"
    return None


def record_verification(pool: Any, user: Any, code: str, trigger: str, client_id: str = "") -> dict | None:
    """The sign-up verification message (code, or link with CONFIRM_WITH_LINK) Cognito sends."""
    medium = _verification_medium(pool, user)
    if medium is None:
        return None
    templates = _verification_templates(pool.extended_config)
    if medium == "SMS":
        subject, body = "", templates["sms_message"].replace("{####}", code)
    elif templates["option"] == "CONFIRM_WITH_LINK":
        link = (
            f"https://{pool.id.lower().replace('_', '')}.auth.{pool.region}.amazoncognito.com/confirmUser"
            f"?client_id={client_id}&user_name={user.username}&confirmation_code={code}"
        )
        subject = templates["email_subject_by_link"]
        body = _LINK_PLACEHOLDER.sub(lambda m: f'<a href="{link}">{m.group(1)}</a>', templates["email_message_by_link"])
    else:
        subject, body = templates["email_subject"], templates["email_message"].replace("{####}", code)
    return _record(
        pool=pool, user=user, kind="verification", trigger=trigger, medium=medium, subject=subject, body=body,
        code=code,
    )


def _check_secret_hash(pool: Any, client_id: str, username: str, given: str | None) -> None:
    client = pool.clients[client_id]
    if not client.generate_secret:
        return
    if not given:
        raise _ShimError(
            "NotAuthorizedException", f"Client {client_id} is configured for secret but secret was not received"
        )
    if not hmac.compare_digest(given, secret_hash(client.secret, username, client_id)):
        raise _ShimError("NotAuthorizedException", f"Unable to verify secret hash for client {client_id}")


def _delivery(medium: str, user: Any) -> dict[str, str]:
    attribute = "email" if medium == "EMAIL" else "phone_number"
    return {
        "Destination": mask_destination(_attrs(user).get(attribute, ""), medium),
        "DeliveryMedium": medium,
        "AttributeName": attribute,
    }


def resend_confirmation_code(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """ResendConfirmationCode as Cognito answers it (moto has none)."""
    params = json.loads(_read_body(environ) or b"{}")
    client_id, username = params.get("ClientId", ""), params.get("Username", "")
    try:
        pool = _pool_for_client(_region(environ), client_id)
        _check_secret_hash(pool, client_id, username, params.get("SecretHash"))
        user = pool._get_user(username)
        if user is None:
            raise _ShimError("UserNotFoundException", "Username/client id combination not found.")
        if str(getattr(user.status, "value", user.status)) != "UNCONFIRMED":
            raise _ShimError("InvalidParameterException", "User is already confirmed.")
        medium = _verification_medium(pool, user)
        if medium is None:
            raise _ShimError("InvalidParameterException", "Cannot resend codes. Auto verification not turned on.")
    except _ShimError as exc:
        return _error(start_response, exc)
    code = new_code()
    user.confirmation_code = code
    record_verification(pool, user, code, "ResendConfirmationCode", client_id)
    return _json_response(start_response, {"CodeDeliveryDetails": _delivery(medium, user)})


def sign_up(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """SignUp through moto (after Cognito's SecretHash check), then the verification message."""
    body = _read_body(environ)
    params = json.loads(body or b"{}")
    client_id = params.get("ClientId", "")
    region = _region(environ)
    try:
        pool = _pool_for_client(region, client_id)
        _check_secret_hash(pool, client_id, params.get("Username", ""), params.get("SecretHash"))
    except _ShimError as exc:
        if exc.code == "ResourceNotFoundException":
            return app(environ, start_response)  # moto's own answer
        return _error(start_response, exc)
    status, headers, data = _call_through(app, environ, body)
    if not status.startswith("200"):
        return _relay(start_response, status, headers, data)
    answer = json.loads(data)
    user = next((u for u in list(pool.users.values()) if u.id == answer.get("UserSub")), None)
    if user is not None and str(getattr(user.status, "value", user.status)) == "UNCONFIRMED":
        code = new_code()
        user.confirmation_code = code
        if record_verification(pool, user, code, "SignUp", client_id) is not None:
            answer["CodeDeliveryDetails"] = _delivery(_verification_medium(pool, user) or "EMAIL", user)
            data = json.dumps(answer).encode()
    return _relay(start_response, status, headers, data)


def admin_create_user(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """AdminCreateUser: RESEND keeps the user (moto would replace it); otherwise moto creates the
    user, with a generated temporary password when none is given, and the invitation is recorded."""
    body = _read_body(environ)
    params = json.loads(body or b"{}")
    action = params.get("MessageAction")
    mediums = params.get("DesiredDeliveryMediums") or ["SMS"]  # Cognito's default
    region = _region(environ)
    if action == "RESEND":
        return _resend_invitation(start_response, region, params, mediums)
    try:
        pool = _pool(region, params.get("UserPoolId", ""))
    except _ShimError:
        return app(environ, start_response)  # moto's own answer
    password = params.get("TemporaryPassword")
    if not password:
        password = new_temporary_password((pool.extended_config.get("Policies") or {}).get("PasswordPolicy"))
        params["TemporaryPassword"] = password
        body = json.dumps(params).encode()
    status, headers, data = _call_through(app, environ, body)
    if status.startswith("200") and action != "SUPPRESS":
        user = pool.users.get(json.loads(data)["User"]["Username"])
        if user is not None:
            record_invitation(pool, user, password, mediums, "AdminCreateUser")
    return _relay(start_response, status, headers, data)


def _resend_invitation(
    start_response: StartResponse, region: str, params: dict[str, Any], mediums: list[str]
) -> Iterable[bytes]:
    try:
        pool = _pool(region, params.get("UserPoolId", ""))
        user = pool._get_user(params.get("Username", ""))
        if user is None:
            raise _ShimError("UserNotFoundException", "User does not exist.")
        if str(getattr(user.status, "value", user.status)) != "FORCE_CHANGE_PASSWORD":
            raise _ShimError(
                "UnsupportedUserStateException",
                f"Resend not possible. {user.username} status is not FORCE_CHANGE_PASSWORD.",
            )
        attrs = _attrs(user)
        if not any(attrs.get("email" if m == "EMAIL" else "phone_number") for m in mediums):
            wanted = " or ".join("email" if m == "EMAIL" else "phone_number" for m in mediums)
            raise _ShimError("InvalidParameterException", f"User has no {wanted} to deliver the invitation to.")
    except _ShimError as exc:
        return _error(start_response, exc)
    password = params.get("TemporaryPassword") or new_temporary_password(
        (pool.extended_config.get("Policies") or {}).get("PasswordPolicy")
    )
    # Same user object: sub, attributes, groups and creation date stay; only the password is new.
    user.password = password
    record_invitation(pool, user, password, mediums, "AdminCreateUser RESEND")
    return _json_response(start_response, {"User": user.to_json(extended=True)})


def messages_endpoint(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """GET /_emulator/messages[?pool_id=&username=&since=] lists the log (newest first, JSON);
    DELETE clears it (one pool with ?pool_id=)."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    pool_id = (query.get("pool_id") or [""])[0] or None
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "DELETE":
        return _json_response(start_response, {"deleted": MESSAGE_LOG.clear(pool_id=pool_id)})
    if method != "GET":
        body = b'{"message": "GET or DELETE"}'
        start_response("405 Method Not Allowed", [("Allow", "GET, DELETE"), ("Content-Length", str(len(body)))])
        return [body]
    try:
        since = int((query.get("since") or ["0"])[0])
    except ValueError:
        since = 0
    messages = MESSAGE_LOG.list(pool_id=pool_id, username=(query.get("username") or [""])[0] or None, since=since)
    return _json_response(start_response, {"count": len(messages), "messages": messages})


# X-Amz-Target -> handler, the middleware's default: add a shim (a throttling fault ...) by adding one entry.
SHIMS: dict[str, Handler] = {
    target("ResendConfirmationCode"): resend_confirmation_code,
    target("SignUp"): sign_up,
    target("AdminCreateUser"): admin_create_user,
}
# Non-AWS paths the middleware answers itself (whatever handlers it was built with).
PATHS: dict[str, Handler] = {MESSAGES_PATH: messages_endpoint}
