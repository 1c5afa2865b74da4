"""The messages Cognito would have sent (invitations, verification and password-reset codes),
rendered from the pool's current templates and kept in a bounded log, served at
GET/DELETE /_emulator/messages; codes and temporary passwords as Cognito makes them."""

from __future__ import annotations

import re
import secrets
import string
import threading
import urllib.parse
from collections import deque
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from .protocol import Environ, StartResponse, WSGIApp, attrs_of, json_response

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
    """The messages Cognito would have sent, newest last, bounded (kept with the emulator's state)."""

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

    def dump(self) -> dict[str, Any]:
        with self._lock:
            return {"next_id": self._next_id, "messages": [dict(m) for m in self._messages]}

    def load(self, data: dict[str, Any]) -> None:
        with self._lock:
            self._messages.clear()
            self._messages.extend(data.get("messages") or [])
            self._next_id = int(data.get("next_id") or len(self._messages) + 1)

    def clear(self, *, pool_id: str | None = None) -> int:
        with self._lock:
            before = len(self._messages)
            kept = [m for m in self._messages if pool_id and m["pool_id"] != pool_id]
            self._messages.clear()
            self._messages.extend(kept)
            return before - len(kept)


MESSAGE_LOG = MessageLog()


def mask_destination(value: str, medium: str) -> str:
    """Cognito's masked destination: "t***@e***.com" for an e-mail, "+*******0100" for a phone."""
    if medium == "EMAIL":
        local, _, domain = value.partition("@")
        name, dot, tld = domain.rpartition(".")
        if not name:
            name, dot, tld = domain, "", ""
        return f"{local[:1]}***@{name[:1]}***{dot}{tld}"
    return "+" + "*" * max(len(value) - 5, 0) + value[-4:]


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
        "email_subject": template.get("EmailSubject")
        or config.get("EmailVerificationSubject")
        or DEFAULT_VERIFICATION_SUBJECT,
        "email_message": template.get("EmailMessage")
        or config.get("EmailVerificationMessage")
        or DEFAULT_VERIFICATION_MESSAGE,
        "email_subject_by_link": template.get("EmailSubjectByLink") or DEFAULT_VERIFICATION_SUBJECT,
        "email_message_by_link": template.get("EmailMessageByLink")
        or "Please click the link below to verify your email address. {##Verify Email##} ",
        "sms_message": template.get("SmsMessage")
        or config.get("SmsVerificationMessage")
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
    attrs = attrs_of(user)
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
    attrs = attrs_of(user)
    recorded = []
    for medium in mediums:
        if not attrs.get("email" if medium == "EMAIL" else "phone_number"):
            continue
        text = templates["email_message"] if medium == "EMAIL" else templates["sms_message"]
        body = text.replace("{username}", _sign_in_name(pool, user)).replace("{####}", password)
        recorded.append(
            _record(
                pool=pool,
                user=user,
                kind="invitation",
                trigger=trigger,
                medium=medium,
                subject=templates["email_subject"],
                body=body,
                code=password,
            )
        )
    return recorded


def _sign_in_name(pool: Any, user: Any) -> str:
    """What the user signs in with: the e-mail/phone in pools where that is the username (their
    Username there is the sub), else the Username."""
    attrs = attrs_of(user)
    for attribute in pool.extended_config.get("UsernameAttributes") or []:
        if attrs.get(attribute):
            return attrs[attribute]
    return user.username


def verification_medium(pool: Any, user: Any) -> str | None:
    """Where Cognito sends a sign-up code: the auto-verified attribute the user has (e-mail first)."""
    auto = pool.extended_config.get("AutoVerifiedAttributes") or []
    attrs = attrs_of(user)
    if "email" in auto and attrs.get("email"):
        return "EMAIL"
    if "phone_number" in auto and attrs.get("phone_number"):
        return "SMS"
    return None


def record_verification(
    pool: Any, user: Any, code: str, trigger: str, client_id: str = "", medium: str | None = None
) -> dict | None:
    """The verification message (code, or link with CONFIRM_WITH_LINK) Cognito sends on sign-up;
    a password-reset code (`medium` given) uses the same template, always with the code."""
    link_allowed = medium is None
    medium = medium or verification_medium(pool, user)
    if medium is None:
        return None
    templates = _verification_templates(pool.extended_config)
    if medium == "SMS":
        subject, body = "", templates["sms_message"].replace("{####}", code)
    elif templates["option"] == "CONFIRM_WITH_LINK" and link_allowed:
        link = (
            f"https://{pool.id.lower().replace('_', '')}.auth.{pool.region}.amazoncognito.com/confirmUser"
            f"?client_id={client_id}&user_name={user.username}&confirmation_code={code}"
        )
        subject = templates["email_subject_by_link"]
        body = _LINK_PLACEHOLDER.sub(lambda m: f'<a href="{link}">{m.group(1)}</a>', templates["email_message_by_link"])
    else:
        subject, body = templates["email_subject"], templates["email_message"].replace("{####}", code)
    return _record(
        pool=pool,
        user=user,
        kind="verification",
        trigger=trigger,
        medium=medium,
        subject=subject,
        body=body,
        code=code,
    )


def delivery(medium: str, user: Any) -> dict[str, str]:
    """CodeDeliveryDetails as Cognito answers it (masked destination)."""
    attribute = "email" if medium == "EMAIL" else "phone_number"
    return {
        "Destination": mask_destination(attrs_of(user).get(attribute, ""), medium),
        "DeliveryMedium": medium,
        "AttributeName": attribute,
    }


def messages_endpoint(environ: Environ, start_response: StartResponse, app: WSGIApp) -> Iterable[bytes]:
    """GET /_emulator/messages[?pool_id=&username=&since=] lists the log (newest first, JSON);
    DELETE clears it (one pool with ?pool_id=)."""
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    pool_id = (query.get("pool_id") or [""])[0] or None
    method = environ.get("REQUEST_METHOD", "GET")
    if method == "DELETE":
        return json_response(start_response, {"deleted": MESSAGE_LOG.clear(pool_id=pool_id)})
    if method != "GET":
        body = b'{"message": "GET or DELETE"}'
        start_response("405 Method Not Allowed", [("Allow", "GET, DELETE"), ("Content-Length", str(len(body)))])
        return [body]
    try:
        since = int((query.get("since") or ["0"])[0])
    except ValueError:
        since = 0
    messages = MESSAGE_LOG.list(pool_id=pool_id, username=(query.get("username") or [""])[0] or None, since=since)
    return json_response(start_response, {"count": len(messages), "messages": messages})
