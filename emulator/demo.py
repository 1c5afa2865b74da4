"""Demo data for the emulator: pools, app clients, groups and users in every status (seed_demo)."""

from __future__ import annotations

import random
import unicodedata
import uuid
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from directory.gateway import secret_hash

from . import passwords
from .protocol import cognito_backend, status_of
from .server import set_user_status

# The e-shop walkthrough's verification e-mail exactly as pasted into the console, `{{####}}` included
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
NOTES_TEST_PASSWORD = "Passw0rd!"  # seed 001's test user's temporary password
# The walkthroughs' flows plus SRP, which Amplify's and identity-js's default sign-in use.
SPA_FLOWS = ["ALLOW_USER_SRP_AUTH", "ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
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
    """The demo pools, modelled on the console walkthroughs operators follow."""
    email_signin: dict[str, Any] = {
        "UsernameAttributes": ["email"],
        "AutoVerifiedAttributes": ["email"],
        "UsernameConfiguration": {"CaseSensitive": False},
        "Schema": _schema("email", "name"),
        "AccountRecoverySetting": {"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
    }
    return [
        DemoPool(  # SPA chat app, e-mail sign-in, email + name required
            name="webchat",
            config=dict(email_signin),
            clients=[{"ClientName": "chatapp", "GenerateSecret": False, "ExplicitAuthFlows": SPA_FLOWS}],
            groups=[*_GROUPS, ("moderators", 3, "Moderate chat rooms")],
            email_username=True,
        ),
        DemoPool(  # e-shop with an HTML verification e-mail carrying the code
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
        DemoPool(  # username sign-in, server-side app with a secret
            name="notes-app",
            # Self sign-up offers resend codes, which need an auto-verified attribute.
            config={"Schema": _schema("email"), "AutoVerifiedAttributes": ["email"]},
            clients=[{"ClientName": "notes-server", "GenerateSecret": True, "ExplicitAuthFlows": SERVER_FLOWS}],
            groups=list(_GROUPS),
        ),
        DemoPool(  # admin-created staff, strict passwords, optional MFA
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


# Demo users' subs and dates come from the seed, so a fresh seed (`--reset`) mirrors as the last one did.
DEMO_EPOCH = datetime(2024, 8, 11, 9, 0, 0)  # naive UTC, as moto keeps dates
DEMO_NAMESPACE = uuid.UUID("6f1c9c1e-2d0b-4a59-9e59-0c0f2f7d1b3a")


def _pin_identities(pool_id: str, region: str, pool_name: str, seed: int) -> None:
    """In-process seeding only: each user's sub and dates from the seed (moto draws them at random),
    and its password kept as a verifier; the pool's and groups' dates too."""
    pool = cognito_backend(region).user_pools[pool_id]
    pinned: OrderedDict[str, Any] = OrderedDict()
    for index, user in enumerate(list(pool.users.values())):
        sub = str(uuid.uuid5(DEMO_NAMESPACE, f"{seed}:{pool_name}:{index}"))
        if user.username == user.id:  # e-mail pools: the Username is the sub
            user.username = sub
        user.id = sub
        user.update_attributes([{"Name": "sub", "Value": sub}])
        passwords.adopt(pool, user)
        if getattr(user, "emulator_verifier", None) and status_of(user) == "FORCE_CHANGE_PASSWORD":
            user.emulator_temporary_until = None  # demo invitations do not expire
        user.create_date = user.last_modified_date = DEMO_EPOCH + timedelta(minutes=index)
        pinned[user.username] = user
    pool.users.clear()
    pool.users.update(pinned)
    pool.creation_date = pool.last_modified_date = DEMO_EPOCH
    for group in pool.groups.values():
        group.creation_date = group.last_modified_date = DEMO_EPOCH


def demo_sign_ins(seed: int = 20240811, users_per_pool: int = 120) -> list[dict[str, str]]:
    """Demo users an app can sign in as: the first confirmed, enabled user of each pool (password
    DEMO_PASSWORD), and seed 001's test user (a temporary password: NEW_PASSWORD_REQUIRED first)."""
    found = []
    for pool in demo_pools():
        users = _plan_users(pool, users_per_pool, random.Random(f"{seed}:{pool.name}"))
        user = next(u for u in users if u.status == "CONFIRMED" and not u.disabled)
        email = next(a["Value"] for a in user.attributes if a["Name"] == "email")
        found.append({"pool": pool.name, "client": pool.clients[0]["ClientName"],
                      "username": email if pool.email_username else user.login, "email": email,
                      "password": DEMO_PASSWORD, "status": "CONFIRMED"})
        if pool.name == "notes-app":
            found.append({"pool": pool.name, "client": pool.clients[0]["ClientName"], "username": "notes-test-user",
                          "email": "notes-test-user@example.com", "password": NOTES_TEST_PASSWORD,
                          "status": "FORCE_CHANGE_PASSWORD"})
    return found


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
    backend = cognito_backend(region)
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
            params["SecretHash"] = secret_hash(app["ClientSecret"], user.login, app["ClientId"])
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
        in_process = _in_process(created, apps[0]["ClientId"], region) if fast else None
        for user in users:
            _create_user(in_process or client, pool_id, pool, apps[0], user, region)
        if pool.name == "notes-app":
            # The notes-app walkthrough's test user: temporary password, e-mail, no phone; Cognito mails the invite.
            client.admin_create_user(
                UserPoolId=pool_id,
                Username="notes-test-user",
                TemporaryPassword=NOTES_TEST_PASSWORD,
                UserAttributes=[{"Name": "email", "Value": "notes-test-user@example.com"}],
                DesiredDeliveryMediums=["EMAIL"],
            )
            users_created = len(users) + 1
        else:
            users_created = len(users)
        if in_process is not None:
            _pin_identities(pool_id, region, pool.name, seed)
        summary[pool.name] = {
            "pool_id": pool_id,
            "clients": [a["ClientName"] for a in apps],
            "users": users_created,
            "created": True,
        }
    return summary

