"""Local Cognito for development: moto's server behind a shim middleware, plus demo data (never in prod)."""

from __future__ import annotations

import hmac
import io
import json
import logging
import os
import random
import re
import secrets
import string
import threading
import unicodedata
import urllib.parse
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .gateway import secret_hash as _secret_hash

ACCOUNT_ID = "123456789012"  # the account moto maps every fake access key to
TARGET_PREFIX = "AWSCognitoIdentityProviderService."

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
# A shim gets the request and the wrapped moto app, and either answers or calls through.
Handler = Callable[[Environ, StartResponse, WSGIApp], Iterable[bytes]]


def target(operation: str) -> str:
    """The X-Amz-Target header value boto3 sends for a Cognito operation."""
    return TARGET_PREFIX + operation


# X-Amz-Target -> handler: add a shim (a throttling fault ...) by adding one entry. The issue-4
# shims (ResendConfirmationCode, SignUp, AdminCreateUser) are registered in "shims: resend, message log".
SHIMS: dict[str, Handler] = {}


class EmulatorMiddleware:
    """WSGI middleware in front of moto that routes selected Cognito operations to shims."""

    def __init__(self, app: WSGIApp, handlers: dict[str, Handler] | None = None) -> None:
        self.app = app
        self.handlers: dict[str, Handler] = dict(SHIMS if handlers is None else handlers)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        handler = self.handlers.get(environ.get("HTTP_X_AMZ_TARGET", ""))
        if handler is None and environ.get("PATH_INFO") in PATHS:
            handler = PATHS[environ["PATH_INFO"]]  # the emulator's own endpoints (message log)
        if handler is None:
            return self.app(environ, start_response)
        return handler(environ, start_response, self.app)


def build_app(handlers: dict[str, Handler] | None = None) -> EmulatorMiddleware:
    """moto's all-services WSGI app wrapped in the shim middleware."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    return EmulatorMiddleware(DomainDispatcherApplication(create_backend_app), handlers)


@dataclass
class EmulatorServer:
    """A running emulator: werkzeug's threaded server in a daemon thread."""

    server: Any
    thread: threading.Thread
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)


def start_server(port: int = 0, host: str = "127.0.0.1", quota: bool | None = None) -> EmulatorServer:
    """Serve build_app() on host:port (0: a free port) and return once it accepts requests.
    `quota` (default: $COGNITO_EMULATOR_QUOTA) enforces Cognito's request rates (QuotaMiddleware)."""
    from moto.moto_server.werkzeug_app import MotoRequestHandler
    from werkzeug.serving import make_server

    # HASH ids derive from the creation request (region, name, settings) instead of being random,
    # so the demo pools and clients keep their ids across restarts: the mirror does not churn and
    # a frontend's pasted client id stays valid. Caveat: two identical clients in one pool collide.
    os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_ID_STRATEGY", "HASH")
    os.environ.setdefault("MOTO_COGNITO_IDP_USER_POOL_CLIENT_ID_STRATEGY", "HASH")
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    app: WSGIApp = build_app()
    if quota_mode(quota):
        app = QuotaMiddleware(app)
    server = make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler)
    thread = threading.Thread(target=server.serve_forever, name="cognito-emulator", daemon=True)
    thread.start()
    return EmulatorServer(server=server, thread=thread, host=host)


# --------------------------------------------------------------------------- moto shims


def set_user_status(pool_id: str, username: str, status: str, region: str = "us-east-1") -> None:
    """Set a user's status inside moto's in-process backend (for statuses its API cannot produce).

    Works only in the process that hosts the moto server (or inside mock_aws). `username` is
    the Cognito Username (the sub in e-mail pools) or, as in Cognito, an e-mail/phone alias.
    """
    from moto.cognitoidp.models import UserStatus, cognitoidp_backends

    try:
        pool = cognitoidp_backends[ACCOUNT_ID][region].user_pools[pool_id]
    except KeyError:
        raise LookupError(
            f"user pool {pool_id} is not in this process's moto backend ({region}); "
            "set_user_status only works where the moto server runs"
        ) from None
    user = pool.users.get(username) or pool._get_user(username)
    if user is None:
        raise LookupError(f"user {username!r} not found in {pool_id}")
    # moto compares its own statuses by identity (`is UserStatus.CONFIRMED`): keep its enum.
    user.status = UserStatus[status] if status in UserStatus.__members__ else status


# --------------------------------------------------------------------------- demo data

# Seed 002's verification e-mail exactly as pasted into the console, `{{####}}` included
# (it contains the `{####}` placeholder). Trailing spaces of the original are written \x20.
ESHOP_VERIFICATION_HTML = """<table width="100%" cellpadding="0" cellspacing="0" style="background-color: #f0f2f5; padding: 40px 0;">
  <tr>
    <td align="center">
      <table width="100%" style="max-width:600px; background-color:#ffffff; border-radius:8px; overflow:hidden; font-family:Arial,sans-serif; box-shadow:0 4px 12px rgba(0,0,0,0.1);">
\x20\x20\x20\x20\x20\x20\x20\x20
        <tr>
          <td style="background: linear-gradient(135deg, #06bbcc 0%, #2E86C1 100%); padding: 30px; text-align:center;">
            <h1 style="margin:0; color:#ffffff; font-size:24px; font-weight:normal;">
              Welcome to <strong>eSHOP-FCJ</strong>
            </h1>
          </td>
        </tr>

        <tr>
          <td style="padding: 30px; color: #333333; font-size: 16px; line-height:1.6;">
            <p>Hello <strong>User!</strong>,</p>
            <p>
              To complete your registration, please enter the verification code below:
            </p>

            <p style="text-align:center; margin: 30px 0;">
              <span style="
                display:inline-block;
                background-color:#06bbcc;
                color:#ffffff;
                font-size:28px;
                font-weight:bold;
                padding:15px 30px;
                border-radius:6px;
                border:2px solid #06bbcc;
                letter-spacing:4px;
              ">
                {{####}}
              </span>
            </p>

            <p style="color:#7f8c8d; font-size:14px; text-align:center;">
              This code will <strong>expire in 5 minutes</strong>.
            </p>

            <p style="margin-top:30px;">
              We are committed to protecting your information and privacy.
            </p>

            <p style="margin-top:30px;">
              Best regards,<br>
              <em>The eSHOP-FCJ Team</em>
            </p>
          </td>
        </tr>

        <tr>
          <td style="background-color:#f0f2f5; padding:20px 30px; text-align:center; font-size:12px; color:#95a5a6;">
            © 2024 eSHOP-FCJ.\x20\x20
            <a href="https://your-domain.com" style="color:#06bbcc; text-decoration:none;">Visit our site</a> |
            <a href="mailto:support@your-domain.com" style="color:#06bbcc; text-decoration:none;">support@eshopfcj.com</a>
          </td>
        </tr>

      </table>
    </td>
  </tr>
</table>"""  # noqa: E501 - verbatim

ALL_STATUSES = (
    "CONFIRMED",
    "UNCONFIRMED",
    "FORCE_CHANGE_PASSWORD",
    "RESET_REQUIRED",
    "EXTERNAL_PROVIDER",
    "ARCHIVED",
    "COMPROMISED",
    "UNKNOWN",
)
# After one user of each status, the rest are drawn with these weights.
_STATUS_WEIGHTS = (60, 10, 9, 5, 6, 3, 3, 4)
SHIMMED_STATUSES = frozenset({"EXTERNAL_PROVIDER", "ARCHIVED", "COMPROMISED", "UNKNOWN"})

DEMO_PASSWORD = "Demo-Passw0rd!2024"  # satisfies every demo pool's policy
SPA_FLOWS = ["ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
SERVER_FLOWS = ["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]

FIRST_NAMES = [
    "Zoë", "José", "Łukasz", "Amélie", "Søren", "Nguyễn", "Ana", "Björn", "Chloé", "Dmitri",
    "Émile", "Fatima", "Giulia", "Hiroshi", "Ingrid", "Jürgen", "Kofi", "Leïla", "Mateo", "Noémie",
    "Olga", "Priya", "Quentin", "Renée", "Siobhán", "Tomás", "Uma", "Wojciech", "Xiu", "Yusuf",
]  # fmt: skip
LAST_NAMES = [
    "Ångström", "Núñez", "Żółć", "Dubois", "Kierkegaard", "Văn An", "García", "Öberg", "Lefèvre",
    "Ivanov", "Zola", "Haddad", "Rossi", "Tanaka", "Bergström", "Müller", "Mensah", "Benali",
    "Fernández", "Girard", "Petrova", "Sharma", "Moreau", "Lévesque", "O'Brien", "Ó Murchú",
]  # fmt: skip
# Always among the first users, so even a small seed shows them.
FEATURED_NAMES = [
    "Zoë Ångström",
    "李小龍",
    "Łukasz Żółć",
    "José Núñez",
    "Þórður Ægisson",
    "Müller-Lüdenscheidt",
]
DEPARTMENTS = ["Engineering", "Finance", "People & Culture", "Sales", "Support", "Légal"]
DOMAINS = ["example.com", "example.org", "example.net"]


@dataclass
class DemoPool:
    """One demo pool: CreateUserPool arguments, its app clients and groups."""

    name: str
    config: dict[str, Any]
    clients: list[dict[str, Any]]
    groups: list[tuple[str, int | None, str]]
    email_username: bool = False
    admin_only: bool = False
    mfa: dict[str, Any] | None = None
    custom_department: bool = False


def _schema(*names: str) -> list[dict[str, Any]]:
    return [{"Name": n, "AttributeDataType": "String", "Required": True, "Mutable": True} for n in names]


_GROUPS = [
    ("admins", 1, "Full administrative access"),
    ("editors", 5, "Can edit content"),
    ("customers", 10, "Signed-up customers"),
]


def demo_pools() -> list[DemoPool]:
    """The demo pools, modelled on the console walkthroughs operators follow (seeds 000-004)."""
    email_signin: dict[str, Any] = {
        "UsernameAttributes": ["email"],
        "AutoVerifiedAttributes": ["email"],
        "UsernameConfiguration": {"CaseSensitive": False},
        "Schema": _schema("email", "name"),
        "AccountRecoverySetting": {"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
    }
    return [
        DemoPool(  # seed 000: SPA chat app, e-mail sign-in, email + name required
            name="webchat",
            config=dict(email_signin),
            clients=[{"ClientName": "chatapp", "GenerateSecret": False, "ExplicitAuthFlows": SPA_FLOWS}],
            groups=[*_GROUPS, ("moderators", 3, "Moderate chat rooms")],
            email_username=True,
        ),
        DemoPool(  # seed 002: e-shop with an HTML verification e-mail carrying the code
            name="eshop-fcj",
            config={
                **email_signin,
                "UserAttributeUpdateSettings": {"AttributesRequireVerificationBeforeUpdate": ["email"]},
                "VerificationMessageTemplate": {
                    "DefaultEmailOption": "CONFIRM_WITH_CODE",
                    "EmailSubject": "Account verification code",
                    "EmailMessage": ESHOP_VERIFICATION_HTML,
                },
            },
            clients=[
                {
                    "ClientName": "eshop-client-no-secret",
                    "GenerateSecret": False,
                    "ExplicitAuthFlows": SPA_FLOWS,
                }
            ],
            groups=list(_GROUPS),
            email_username=True,
        ),
        DemoPool(  # seed 001: username sign-in, server-side app with a secret
            name="notes-app",
            config={"Schema": _schema("email")},
            clients=[{"ClientName": "notes-server", "GenerateSecret": True, "ExplicitAuthFlows": SERVER_FLOWS}],
            groups=list(_GROUPS),
        ),
        DemoPool(  # seeds 003/004: admin-created staff, strict passwords, optional MFA
            name="staff-portal",
            config={
                "AliasAttributes": ["email"],
                "AutoVerifiedAttributes": ["email"],
                "Policies": {
                    "PasswordPolicy": {
                        "MinimumLength": 12,
                        "RequireUppercase": True,
                        "RequireLowercase": True,
                        "RequireNumbers": True,
                        "RequireSymbols": True,
                        "TemporaryPasswordValidityDays": 3,
                    }
                },
                "AdminCreateUserConfig": {
                    "AllowAdminCreateUserOnly": True,
                    "InviteMessageTemplate": {
                        "EmailSubject": "Your Staff Portal account",
                        "EmailMessage": (
                            "<p>Welcome to the Staff Portal.</p>"
                            "<p>Your username is <b>{username}</b> and your temporary password is "
                            "<b>{####}</b>. It expires in 3 days.</p>"
                        ),
                        "SMSMessage": "Staff Portal: username {username}, temporary password {####}",
                    },
                },
                "Schema": [
                    *_schema("email", "name"),
                    {
                        "Name": "department",
                        "AttributeDataType": "String",
                        "Mutable": True,
                        "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "64"},
                    },
                ],
                "DeletionProtection": "ACTIVE",
                "UserPoolTags": {"env": "demo"},
            },
            clients=[
                {
                    "ClientName": "staff-portal-web",
                    "GenerateSecret": False,
                    "ExplicitAuthFlows": ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
                }
            ],
            groups=[*_GROUPS[:2], ("managers", 3, "Approve leave and expenses"), ("staff", 20, "All staff")],
            admin_only=True,
            # Cognito refuses MFA OPTIONAL at creation without SMS settings; TOTP is set after.
            mfa={"SoftwareTokenMfaConfiguration": {"Enabled": True}, "MfaConfiguration": "OPTIONAL"},
            custom_department=True,
        ),
    ]


def _ascii_slug(text: str) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = "".join(c if c.isalnum() else "." for c in folded.lower()).strip(".")
    while ".." in slug:
        slug = slug.replace("..", ".")
    return slug or "user"


@dataclass
class _DemoUser:
    login: str  # what is passed as Username on creation
    status: str
    attributes: list[dict[str, str]]
    groups: list[str]
    disabled: bool


def _plan_users(pool: DemoPool, count: int, rng: random.Random) -> list[_DemoUser]:
    """Decide every user up front, so the data depends only on the seed."""
    group_names = [g[0] for g in pool.groups]
    users: list[_DemoUser] = []
    for i in range(count):
        if i < len(ALL_STATUSES):
            status = ALL_STATUSES[i]
        else:
            status = rng.choices(ALL_STATUSES, weights=_STATUS_WEIGHTS)[0]
        if i < len(FEATURED_NAMES):
            name = FEATURED_NAMES[(i + 3 * len(pool.name)) % len(FEATURED_NAMES)]
        else:
            name = f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}"
        slug = _ascii_slug(name) if _ascii_slug(name) != "user" else f"user.{rng.randrange(10_000):04d}"
        email = f"{slug}.{i:03d}@{DOMAINS[i % len(DOMAINS)]}"
        attrs = {"email": email, "name": name}
        # A new sign-up has not verified its e-mail yet; everyone else has.
        attrs["email_verified"] = "false" if status == "UNCONFIRMED" else "true"
        if rng.random() < 0.35:
            attrs["phone_number"] = f"+1555{rng.randrange(10**6):06d}"
            attrs["phone_number_verified"] = rng.choice(["true", "false"])
        if pool.custom_department:
            attrs["custom:department"] = rng.choice(DEPARTMENTS)
        if pool.email_username:
            login = email
        elif status == "EXTERNAL_PROVIDER":
            login = f"{rng.choice(['Google', 'Facebook', 'SignInWithApple'])}_{rng.randrange(10**17, 10**18)}"
        elif i % 17 == 5:
            login = f"{name.lower().replace(' ', '')}{i:03d}"  # Cognito usernames may be non-ASCII
        else:
            login = f"{slug}{i:03d}"
        weights = [0.08 if g == "admins" else 0.35 for g in group_names]
        groups = [g for g, w in zip(group_names, weights, strict=True) if rng.random() < w]
        disabled = status in {"CONFIRMED", "FORCE_CHANGE_PASSWORD", "COMPROMISED"} and rng.random() < 0.08
        users.append(
            _DemoUser(
                login=login,
                status=status,
                attributes=[{"Name": k, "Value": v} for k, v in attrs.items()],
                groups=groups,
                disabled=disabled,
            )
        )
    return users


def _existing_pools(client: Any) -> dict[str, str]:
    names: dict[str, str] = {}
    for page in client.get_paginator("list_user_pools").paginate(MaxResults=60):
        for pool in page.get("UserPools", []):
            names.setdefault(pool["Name"], pool["Id"])
    return names


class _InProcessCognito:
    """The user calls seed_demo makes, served by moto's backend in this process instead of HTTP.

    Same moto logic (validation, statuses, e-mail-pool usernames), without the ~10 ms of
    request signing and response serialisation per call that made seeding take ~15 s.
    """

    # Keyword names are boto3's, so _create_user cannot tell this from a client.
    def __init__(self, backend: Any) -> None:
        self.backend = backend

    @staticmethod
    def _attrs(attributes: Iterable[dict[str, str]]) -> list[dict[str, str]]:
        return [dict(a) for a in attributes]

    def sign_up(
        self,
        *,
        ClientId: str,
        Username: str,
        Password: str,
        UserAttributes: Iterable[dict[str, str]] = (),
        SecretHash: str | None = None,
    ) -> dict[str, Any]:
        user, _ = self.backend.sign_up(ClientId, Username, Password, self._attrs(UserAttributes))
        return {"UserSub": user.id}

    def admin_create_user(
        self,
        *,
        UserPoolId: str,
        Username: str,
        UserAttributes: Iterable[dict[str, str]] = (),
        MessageAction: str | None = None,
        TemporaryPassword: str | None = None,
    ) -> dict[str, Any]:
        user = self.backend.admin_create_user(
            UserPoolId, Username, MessageAction, TemporaryPassword, self._attrs(UserAttributes)
        )
        return {"User": {"Username": user.username}}

    def admin_set_user_password(
        self,
        *,
        UserPoolId: str,
        Username: str,
        Password: str,
        Permanent: bool = False,
    ) -> None:
        self.backend.admin_set_user_password(UserPoolId, Username, Password, Permanent)

    def admin_reset_user_password(self, *, UserPoolId: str, Username: str) -> None:
        self.backend.admin_reset_user_password(UserPoolId, Username)

    def admin_add_user_to_group(self, *, UserPoolId: str, Username: str, GroupName: str) -> None:
        self.backend.admin_add_user_to_group(UserPoolId, GroupName, Username)

    def admin_disable_user(self, *, UserPoolId: str, Username: str) -> None:
        self.backend.admin_disable_user(UserPoolId, Username)


def _in_process(created: dict[str, Any], app_client_id: str, region: str) -> _InProcessCognito | None:
    """moto's backend in this process if it holds the pool just created through the client, else None."""
    from moto.cognitoidp.models import cognitoidp_backends

    backend = cognitoidp_backends[ACCOUNT_ID][region]
    pool = backend.user_pools.get(created["Id"])
    if pool is None or app_client_id not in pool.clients:
        return None
    # HASH ids are the same in every process: the creation time (ms) tells this pool from a twin.
    remote = created["CreationDate"].astimezone(UTC).replace(tzinfo=None)
    if abs((pool.creation_date - remote).total_seconds()) >= 0.001:
        return None
    return _InProcessCognito(backend)


def _create_user(client: Any, pool_id: str, pool: DemoPool, app: dict[str, Any], user: _DemoUser, region: str) -> None:
    if user.status == "UNCONFIRMED" and not pool.admin_only:
        params: dict[str, Any] = {
            "ClientId": app["ClientId"],
            "Username": user.login,
            "Password": DEMO_PASSWORD,
            "UserAttributes": [a for a in user.attributes if not a["Name"].endswith("_verified")],
        }
        if app.get("ClientSecret"):
            params["SecretHash"] = _secret_hash(app["ClientSecret"], user.login, app["ClientId"])
        sub = client.sign_up(**params)["UserSub"]
        # In e-mail pools the Username is the sub, which SignUp returns as UserSub.
        username = sub if pool.email_username else user.login
    else:
        created = client.admin_create_user(
            UserPoolId=pool_id,
            Username=user.login,
            UserAttributes=user.attributes,
            MessageAction="SUPPRESS",
        )
        username = created["User"]["Username"]
        if user.status in {"CONFIRMED", "RESET_REQUIRED"}:
            client.admin_set_user_password(
                UserPoolId=pool_id, Username=username, Password=DEMO_PASSWORD, Permanent=True
            )
        if user.status == "RESET_REQUIRED":
            client.admin_reset_user_password(UserPoolId=pool_id, Username=username)
        elif user.status in SHIMMED_STATUSES or user.status == "UNCONFIRMED":
            # Admin-only pools have no sign-ups; an UNCONFIRMED user there predates the setting.
            set_user_status(pool_id, username, user.status, region=region)
    for group in user.groups:
        client.admin_add_user_to_group(UserPoolId=pool_id, Username=username, GroupName=group)
    if user.disabled:
        client.admin_disable_user(UserPoolId=pool_id, Username=username)


def seed_demo(
    client: Any, *, users_per_pool: int = 120, seed: int = 20240811, fast: bool = True
) -> dict[str, dict[str, Any]]:
    """Create the demo pools, clients, groups and users on the client's endpoint.

    Pools, clients and groups always go through `client`. Users do too unless `fast` and the
    moto server runs in this process, in which case they are made by moto's backend directly
    (same logic, no HTTP). Pools that already exist by name are left alone (idempotent). The
    statuses moto's API cannot produce need the moto server in this process either way.
    Returns {pool name: {"pool_id", "clients", "users", "created"}}.
    """
    region = client.meta.region_name
    existing = _existing_pools(client)
    summary: dict[str, dict[str, Any]] = {}
    for pool in demo_pools():
        # One generator per pool, so adding a pool does not reshuffle the others.
        rng = random.Random(f"{seed}:{pool.name}")
        if pool.name in existing:
            pool_id = existing[pool.name]
            clients = client.list_user_pool_clients(UserPoolId=pool_id, MaxResults=60)["UserPoolClients"]
            described = client.describe_user_pool(UserPoolId=pool_id)["UserPool"]
            summary[pool.name] = {
                "pool_id": pool_id,
                "clients": [c["ClientName"] for c in clients],
                "users": described.get("EstimatedNumberOfUsers", 0),
                "created": False,
            }
            continue
        created = client.create_user_pool(PoolName=pool.name, **pool.config)["UserPool"]
        pool_id = created["Id"]
        if pool.mfa:
            client.set_user_pool_mfa_config(UserPoolId=pool_id, **pool.mfa)
        apps = [client.create_user_pool_client(UserPoolId=pool_id, **spec)["UserPoolClient"] for spec in pool.clients]
        for name, precedence, description in pool.groups:
            params: dict[str, Any] = {"UserPoolId": pool_id, "GroupName": name, "Description": description}
            if precedence is not None:
                params["Precedence"] = precedence
            client.create_group(**params)
        users = _plan_users(pool, users_per_pool, rng)
        ops = (_in_process(created, apps[0]["ClientId"], region) if fast else None) or client
        for user in users:
            _create_user(ops, pool_id, pool, apps[0], user, region)
        if pool.name == "notes-app":
            # Seed 001's test user: temporary password, e-mail, no phone; Cognito mails the invite.
            client.admin_create_user(
                UserPoolId=pool_id,
                Username="notes-test-user",
                TemporaryPassword="Passw0rd!",
                UserAttributes=[{"Name": "email", "Value": "notes-test-user@example.com"}],
                DesiredDeliveryMediums=["EMAIL"],
            )
            users_created = len(users) + 1
        else:
            users_created = len(users)
        summary[pool.name] = {
            "pool_id": pool_id,
            "clients": [a["ClientName"] for a in apps],
            "users": users_created,
            "created": True,
        }
    return summary


# ---- shims: resend, message log
#
# What moto lacks or gets wrong for issue 4, answered the way Cognito does:
# - ResendConfirmationCode (moto has none): client id, SecretHash, user state, a new code.
# - AdminCreateUser MessageAction=RESEND (moto replaces the user: new sub, attributes and groups
#   dropped): here the same user keeps everything and gets a new temporary password.
# - The messages Cognito would send (invitations, verification codes) are rendered from the pool's
#   current templates and kept in an in-memory log, served at GET/DELETE /_emulator/messages.
# SignUp and AdminCreateUser are handled by moto; the shims call through, then record the message.

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


def _backend(region: str) -> Any:
    from moto.cognitoidp.models import cognitoidp_backends

    return cognitoidp_backends[ACCOUNT_ID][region]


def _pool(region: str, pool_id: str) -> Any:
    pool = _backend(region).user_pools.get(pool_id)
    if pool is None:
        raise _ShimError("ResourceNotFoundException", f"User pool {pool_id} does not exist.")
    return pool


def _pool_for_client(region: str, client_id: str) -> Any:
    for pool in list(_backend(region).user_pools.values()):
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
    if not hmac.compare_digest(given, _secret_hash(client.secret, username, client_id)):
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


SHIMS.update(
    {
        target("ResendConfirmationCode"): resend_confirmation_code,
        target("SignUp"): sign_up,
        target("AdminCreateUser"): admin_create_user,
    }
)
# Non-AWS paths the middleware answers itself (whatever handlers it was built with).
PATHS: dict[str, Handler] = {MESSAGES_PATH: messages_endpoint}


# ---- quota mode
#
# Cognito answers TooManyRequestsException once an account exceeds a category's request
# rate in a region (UserList 30/s, UserUpdate 25/s …). moto never does, so without this a
# client that ignores the quotas looks fine locally. With `cognito_emulator --quota` (or
# COGNITO_EMULATOR_QUOTA=1) every Cognito call takes a token from a bucket per region and
# category holding one second of Cognito's default rate; past it the answer is Cognito's
# throttling error. GET /_emulator/quota shows the counts (DELETE resets them and the buckets).

QUOTA_PATH = "/_emulator/quota"


def quota_mode(flag: bool | None = None) -> bool:
    """The flag if given, else $COGNITO_EMULATOR_QUOTA (1/true/yes/on)."""
    if flag is not None:
        return flag
    return os.environ.get("COGNITO_EMULATOR_QUOTA", "").strip().lower() in {"1", "true", "yes", "on"}


class QuotaMiddleware:
    """Enforces Cognito's per-category request rates (account-wide, per region) in front of the emulator."""

    def __init__(self, app: WSGIApp, quotas: dict[str, float] | None = None) -> None:
        from .ratelimit import COGNITO_QUOTAS, LocalBackend

        self.app = app
        self.quotas = dict(COGNITO_QUOTAS if quotas is None else quotas)
        self._backend = LocalBackend()
        self._lock = threading.Lock()
        self.allowed: dict[str, int] = {}
        self.refused: dict[str, int] = {}

    def __getattr__(self, name: str) -> Any:
        # The wrapped EmulatorMiddleware's attributes (handlers …) stay reachable.
        return getattr(self.app, name)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == QUOTA_PATH:
            return self._stats(environ, start_response)
        header = environ.get("HTTP_X_AMZ_TARGET", "")
        if not header.startswith(TARGET_PREFIX):
            return self.app(environ, start_response)
        from .ratelimit import category_for

        category = category_for(header[len(TARGET_PREFIX) :])
        rate = float(self.quotas.get(category) or min(self.quotas.values()))
        match = re.search(r"Credential=[^/]+/\d{8}/([^/]+)/", environ.get("HTTP_AUTHORIZATION", ""))
        region = match.group(1) if match else "us-east-1"
        wait = self._backend.take(
            f"{region}:{category}", lane="interactive", rate=rate, burst=rate, share=1.0, lanes=("interactive",)
        )
        with self._lock:
            counts = self.refused if wait > 0 else self.allowed
            counts[category] = counts.get(category, 0) + 1
        if wait <= 0:
            return self.app(environ, start_response)
        body = json.dumps({"__type": "TooManyRequestsException", "message": "Rate exceeded"}).encode()
        start_response(
            "400 Bad Request",
            [
                ("Content-Type", "application/x-amz-json-1.1"),
                ("x-amzn-ErrorType", "TooManyRequestsException"),
                ("Content-Length", str(len(body))),
            ],
        )
        return [body]

    def _stats(self, environ: Environ, start_response: StartResponse) -> list[bytes]:
        with self._lock:
            if environ.get("REQUEST_METHOD") == "DELETE":
                self.allowed.clear()
                self.refused.clear()
                self._backend.reset()
            payload = {"quotas": self.quotas, "allowed": dict(self.allowed), "refused": dict(self.refused)}
        body = json.dumps(payload).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
