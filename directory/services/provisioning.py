"""Creating user pools and app clients: Cognito's ids exist only once it answers, so these calls are
made inside the operator's request, then mirrored and audited at once. A new client's secret is
returned to the caller to be shown once, and is kept nowhere."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from .. import audit
from ..gateway import CognitoError, CognitoGateway
from ..mapping import client_fields, record_hash
from ..models import AppClient, UserPool
from ..settings_catalog import create_request_parts
from ..validation import shape_problems, validate_urls
from .clients import validate_client_changes
from .pools import validate_pool_changes

APPLICATION_TYPES = {
    "spa": "Single-page application (SPA)",
    "web": "Traditional web application (server-side, with a client secret)",
    "mobile": "Mobile app",
}
SIGN_IN_IDENTIFIERS = {"email": "E-mail", "phone_number": "Phone number", "username": "Username"}
# Cognito's standard attributes (OpenID Connect's), and their types in a pool's schema.
STANDARD_ATTRIBUTES = (
    "address", "birthdate", "email", "family_name", "gender", "given_name", "locale", "middle_name", "name",
    "nickname", "phone_number", "picture", "preferred_username", "profile", "updated_at", "website", "zoneinfo",
)
_NUMBER_ATTRIBUTES = {"updated_at"}
CUSTOM_ATTRIBUTE_TYPES = ("String", "Number", "DateTime", "Boolean")
SPA_FLOWS = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
CODE_GRANT_SCOPES = ["openid", "email", "phone"]
# Scopes about a signed-in user, which the client_credentials grant cannot carry.
USER_SCOPES = frozenset({"openid", "email", "phone", "profile", "aws.cognito.signin.user.admin"})
# The Settings page's settings the quick setup asks for itself (under the same names).
QUICK_SETUP_SETTINGS = frozenset({"pool_name", "self_sign_up", "add_custom_attributes"})
# Where UpdateUserPool (and CreateUserPool) hold the message templates a clone copies.
VERIFICATION_TEMPLATE_PATH = "VerificationMessageTemplate"
INVITE_TEMPLATE_PATH = "AdminCreateUserConfig.InviteMessageTemplate"
# Token validity: the console's defaults, in Cognito's default units (hours, hours, days), which are
# the units the mirror assumes (it does not keep TokenValidityUnits).
TOKEN_UNITS = {"AccessToken": "hours", "IdToken": "hours", "RefreshToken": "days"}
TOKEN_DEFAULTS = {"access_token_validity": 1, "id_token_validity": 1, "refresh_token_validity": 30}


@dataclass
class PoolSpec:
    """What an operator asked for on the create page (the quick setup plus the pool's settings)."""

    region: str
    pool_name: str
    application_type: str
    app_client_name: str
    sign_in_identifiers: list[str]
    case_sensitive: bool = False
    self_sign_up: bool = True
    required_attributes: list[str] = field(default_factory=list)
    return_url: str = ""
    # (name without "custom:", data type) of each custom attribute.
    custom_attributes: list[tuple[str, str]] = field(default_factory=list)
    # The Settings page's values that differ from a blank pool's, by catalogue name
    # (settings_catalog: `mfa_methods`, `tags`, `lambda_pre_sign_up`, ...).
    settings: dict[str, Any] = field(default_factory=dict)
    # Message templates copied from another pool: UpdateUserPool paths -> values.
    templates: dict[str, Any] = field(default_factory=dict)


@dataclass
class ClientSpec:
    """An app client to add: the application type's preset, with any value the operator gave instead."""

    client_name: str
    application_type: str = "spa"
    generate_secret: bool | None = None
    explicit_auth_flows: list[str] | None = None
    callback_urls: list[str] = field(default_factory=list)
    logout_urls: list[str] = field(default_factory=list)
    allowed_oauth_flows: list[str] | None = None
    allowed_oauth_scopes: list[str] | None = None
    access_token_validity: int | None = None
    id_token_validity: int | None = None
    refresh_token_validity: int | None = None
    prevent_user_existence_errors: str = "ENABLED"


@dataclass
class Created:
    """What a creation made. `secret` is for the one page that shows it; never keep it."""

    pool: UserPool
    client_id: str = ""
    client_name: str = ""
    secret: str | None = field(default=None, repr=False)
    client_error: str = ""
    client: AppClient | None = None


# The application type -> the app client -------------------------------------------------------


def client_parameters(spec: ClientSpec) -> dict[str, Any]:
    """CreateUserPoolClient's parameters (but UserPoolId) as the console sets them for the application
    type, with every value the spec gives instead. SPA and mobile: no secret, SRP + refresh; web: a
    secret and the authorization-code grant; any type with a return URL gets the code grant to it."""
    params: dict[str, Any] = {
        "ClientName": spec.client_name,
        "GenerateSecret": spec.application_type == "web" if spec.generate_secret is None else spec.generate_secret,
        "ExplicitAuthFlows": list(SPA_FLOWS if spec.explicit_auth_flows is None else spec.explicit_auth_flows),
        "PreventUserExistenceErrors": spec.prevent_user_existence_errors or "ENABLED",
        "EnableTokenRevocation": True,
        "TokenValidityUnits": dict(TOKEN_UNITS),
    }
    for name, key in (("access_token_validity", "AccessTokenValidity"), ("id_token_validity", "IdTokenValidity"),
                      ("refresh_token_validity", "RefreshTokenValidity")):
        value = getattr(spec, name)
        params[key] = TOKEN_DEFAULTS[name] if value is None else value
    flows = spec.allowed_oauth_flows
    if flows is None:
        flows = ["code"] if spec.callback_urls or spec.application_type == "web" else []
    if flows:
        scopes = spec.allowed_oauth_scopes
        if scopes is None:
            scopes = [] if flows == ["client_credentials"] else list(CODE_GRANT_SCOPES)
        params.update(
            AllowedOAuthFlows=list(flows),
            AllowedOAuthScopes=list(scopes),
            AllowedOAuthFlowsUserPoolClient=True,
            SupportedIdentityProviders=["COGNITO"],
        )
    if spec.callback_urls:
        params["CallbackURLs"] = list(spec.callback_urls)
    if spec.logout_urls:
        params["LogoutURLs"] = list(spec.logout_urls)
    return params


def validate_client_spec(spec: ClientSpec, *, name_field: str = "client_name") -> None:
    """Refuse (ValidationError naming the field) what CreateUserPoolClient would refuse."""
    errors: dict[str, list[str]] = {}
    if problems := shape_problems("ClientNameType", spec.client_name):
        errors[name_field] = [f"An app client name needs {'; '.join(problems)}: 1 to 128 letters, digits, "
                              "spaces or + = , . @ -."]
    if spec.application_type not in APPLICATION_TYPES:
        errors["application_type"] = [f"Choose one of {', '.join(APPLICATION_TYPES)}."]
    params = client_parameters(spec)
    changes = {
        "explicit_auth_flows": params["ExplicitAuthFlows"],
        "allowed_oauth_flows": params.get("AllowedOAuthFlows", []),
        "allowed_oauth_scopes": params.get("AllowedOAuthScopes", []),
        "prevent_user_existence_errors": params["PreventUserExistenceErrors"],
        "access_token_validity": params["AccessTokenValidity"],
        "id_token_validity": params["IdTokenValidity"],
        "refresh_token_validity": params["RefreshTokenValidity"],
        "callback_urls": params.get("CallbackURLs", []),
        "logout_urls": params.get("LogoutURLs", []),
    }
    try:
        validate_client_changes(AppClient(token_validity_units=dict(TOKEN_UNITS)), changes)
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, []).extend(messages)
    oauth = set(params.get("AllowedOAuthFlows", []))
    if oauth & {"code", "implicit"} and not params.get("CallbackURLs") and "callback_urls" not in errors:
        errors["callback_urls"] = [
            "The authorization-code (or implicit) grant needs at least one callback URL: Cognito refuses it without."
        ]
    if "client_credentials" in oauth:
        if oauth & {"code", "implicit"}:
            errors.setdefault("allowed_oauth_flows", []).append(
                "client_credentials cannot be combined with code or implicit in one client (Cognito refuses it)."
            )
        if not params["GenerateSecret"]:
            errors.setdefault("generate_secret", []).append("The client_credentials grant needs a client secret.")
        if set(params.get("AllowedOAuthScopes", [])) & USER_SCOPES:
            errors.setdefault("allowed_oauth_scopes", []).append(
                "client_credentials takes only resource-server scopes (like api/read), not openid, email, phone or "
                "profile."
            )
    if errors:
        raise ValidationError(errors)


# The pool -------------------------------------------------------------------------------------


def validate_pool_spec(spec: PoolSpec, *, regions: list[str]) -> None:
    """Refuse (ValidationError naming the form's field and Cognito's rule) what CreateUserPool,
    CreateUserPoolClient or SetUserPoolMfaConfig would refuse. Sends nothing."""
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if spec.region not in regions:
        add("region", f"Choose one of the configured regions (COGNITO_REGIONS): {', '.join(regions)}.")
    if problems := shape_problems("UserPoolNameType", spec.pool_name):
        add("pool_name", f"A pool name needs {'; '.join(problems)}: 1 to 128 letters, digits, spaces or + = , . @ -.")
    identifiers = set(spec.sign_in_identifiers)
    if not identifiers:
        add("sign_in_identifiers", "Choose at least one way to sign in.")
    unknown = identifiers - set(SIGN_IN_IDENTIFIERS)
    if unknown:
        add("sign_in_identifiers", f"Unknown sign-in identifier(s) {', '.join(sorted(unknown))}.")
    required = set(spec.required_attributes)
    bad = required - set(STANDARD_ATTRIBUTES)
    if bad:
        add("required_attributes", f"{', '.join(sorted(bad))}: not a standard attribute.")
    for attribute, label in (("email", "e-mail"), ("phone_number", "phone number")):
        if attribute in identifiers and attribute not in required:
            add("required_attributes", f"Signing in by {label} needs {attribute} required at sign-up "
                                       "(the console requires it too).")
    seen: set[str] = set()
    for name, kind in spec.custom_attributes:
        problems = shape_problems("CustomAttributeNameType", name)
        if problems or name in seen:
            add("custom_attributes", f"custom:{name}: " + ("; ".join(problems) if problems else "listed twice") +
                " (1 to 20 characters, no spaces).")
        if kind not in CUSTOM_ATTRIBUTE_TYPES:
            add("custom_attributes", f"custom:{name}: type must be one of {', '.join(CUSTOM_ATTRIBUTE_TYPES)}.")
        seen.add(name)
    if len(spec.custom_attributes) > 50:
        add("custom_attributes", "A pool has at most 50 custom attributes.")
    if spec.return_url:
        try:
            validate_urls("return_url", [spec.return_url])
        except ValidationError as exc:
            errors.setdefault("return_url", []).extend(exc.message_dict["return_url"])
    elif spec.application_type == "web":
        add("return_url", "A traditional web application signs users in through the authorization-code grant, "
                          "which needs a return URL (https, or http://localhost).")
    try:
        validate_pool_changes(UserPool(), spec.settings)
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            errors.setdefault(key, []).extend(messages)
    # MFA's prerequisites (a method, an SMS role, your SES identity) are the Settings page's rules,
    # checked above by validate_pool_changes; a method chosen while MFA stays off is a mistake here.
    mfa = spec.settings.get("mfa_configuration", "OFF")
    methods = set(spec.settings.get("mfa_methods") or ())
    if methods and mfa == "OFF":
        add("mfa_methods", "MFA is OFF: choose OPTIONAL or ON to use these methods, or clear them.")
    try:
        validate_client_spec(
            ClientSpec(client_name=spec.app_client_name, application_type=spec.application_type,
                       callback_urls=[spec.return_url] if spec.return_url else []),
            name_field="app_client_name",
        )
    except ValidationError as exc:
        for key, messages in exc.message_dict.items():
            if key == "callback_urls":
                key = "return_url"
            if key == "return_url" and key in errors:
                continue
            errors.setdefault(key, []).extend(messages)
    if errors:
        raise ValidationError(errors)


def _set_path(request: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = request
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def pool_request(spec: PoolSpec) -> dict[str, Any]:
    """The CreateUserPool request for a spec (MFA off: SetUserPoolMfaConfig turns it on with its methods)."""
    identifiers = list(dict.fromkeys(spec.sign_in_identifiers))
    required = list(dict.fromkeys(spec.required_attributes))
    request: dict[str, Any] = {
        "PoolName": spec.pool_name,
        "UsernameConfiguration": {"CaseSensitive": bool(spec.case_sensitive)},
        "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": not spec.self_sign_up},
    }
    if "username" in identifiers:
        aliases = [i for i in identifiers if i != "username"]
        if aliases:
            request["AliasAttributes"] = aliases
    else:
        request["UsernameAttributes"] = identifiers
    schema = [
        {"Name": name, "AttributeDataType": "Number" if name in _NUMBER_ATTRIBUTES else "String",
         "Required": True, "Mutable": True}
        for name in required
    ]
    schema += [{"Name": name, "AttributeDataType": kind, "Mutable": True} for name, kind in spec.custom_attributes]
    if schema:
        request["Schema"] = schema
    if "email" in identifiers or "email" in required:
        # As the console does: Cognito sends the e-mail code, and recovers accounts by verified e-mail.
        request["AutoVerifiedAttributes"] = ["email"]
        request["AccountRecoverySetting"] = {"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]}
    parts = create_request_parts(pool_settings(spec))
    for key, value in parts["create"].items():
        if key == "PoolName":
            continue
        if key == "Schema":
            request.setdefault("Schema", []).extend(value)
        elif isinstance(value, dict) and isinstance(request.get(key), dict):
            request[key] = {**request[key], **value}
        else:
            request[key] = value
    for path, value in spec.templates.items():
        _set_path(request, path, value)
    # MFA is set once the pool exists (SetUserPoolMfaConfig, with its methods): CreateUserPool says OFF.
    request["MfaConfiguration"] = "OFF"
    request["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] = not spec.self_sign_up
    return request


def pool_settings(spec: PoolSpec) -> dict[str, Any]:
    """The spec's Settings-page values the CreateUserPool request carries (not those the quick setup asks)."""
    return {name: value for name, value in spec.settings.items() if name not in QUICK_SETUP_SETTINGS}


def pool_templates(pool: UserPool) -> dict[str, Any]:
    """A pool's message templates as UpdateUserPool (and CreateUserPool) paths, to copy into a new pool."""
    templates: dict[str, Any] = {}
    if pool.verification_message_template:
        templates[VERIFICATION_TEMPLATE_PATH] = dict(pool.verification_message_template)
    invite = (pool.admin_create_user_config or {}).get("InviteMessageTemplate")
    if invite:
        templates[INVITE_TEMPLATE_PATH] = dict(invite)
    return templates


def mfa_request(spec: PoolSpec) -> dict[str, Any] | None:
    """SetUserPoolMfaConfig's arguments (but UserPoolId) for the new pool, or None while MFA stays off."""
    return create_request_parts(pool_settings(spec))["mfa"]


def user_pool_create(*, spec: PoolSpec, regions: list[str], actor: str) -> Created:
    """Create a pool and its first app client in Cognito now (CreateUserPool, SetUserPoolMfaConfig when MFA
    is on, CreateUserPoolClient), register the pool in the mirror and audit both `created`.

    Not idempotent: every call makes a new pool. Raises ValidationError when nothing was created (bad
    input: nothing sent; or Cognito's refusal). When only the client fails, the pool stays and `client_error` says why.
    The caller pulls the pool to mirror it (the placeholder row holds its id, region and name)."""
    validate_pool_spec(spec, regions=regions)
    gateway = CognitoGateway(spec.region, purpose="interactive")
    request = pool_request(spec)
    try:
        record = gateway.create_user_pool(request)
    except CognitoError as exc:
        raise ValidationError(f"Cognito did not create the pool: {exc}. Nothing was created.") from None
    pool_id = record["Id"]
    created = Created(pool=UserPool(pool_id=pool_id, region=spec.region, name=spec.pool_name))
    steps = [{"call": "CreateUserPool", "request": request}]
    mfa = mfa_request(spec)
    client_params = client_parameters(
        ClientSpec(client_name=spec.app_client_name, application_type=spec.application_type,
                   callback_urls=[spec.return_url] if spec.return_url else [])
    )
    try:
        if mfa is not None:
            gateway.set_user_pool_mfa_config(pool_id, mfa)
            steps.append({"call": "SetUserPoolMfaConfig", "request": {"UserPoolId": pool_id, **mfa}})
        client = gateway.create_user_pool_client({"UserPoolId": pool_id, **client_params})
    except CognitoError as exc:
        created.client_error = str(exc)
    else:
        created.client_id, created.client_name = client["ClientId"], client.get("ClientName", "")
        created.secret = client.get("ClientSecret") or None
        del client
    with transaction.atomic():
        pool, _ = UserPool.objects.get_or_create(
            pool_id=pool_id, defaults={"region": spec.region, "name": spec.pool_name}
        )
        created.pool = pool
        events = [audit.build(
            action=audit.Action.CREATED, object_type="pool", object_id=pool_id, object_repr=spec.pool_name,
            source=audit.Source.ADMIN, actor=actor, pool_id=pool_id,
            detail={"application_type": spec.application_type, "steps": steps,
                    **({"client_error": created.client_error} if created.client_error else {})},
        )]
        if created.client_id:
            events.append(audit.build(
                action=audit.Action.CREATED, object_type="app_client", object_id=created.client_id,
                object_repr=created.client_name, source=audit.Source.ADMIN, actor=actor, pool_id=pool_id,
                detail={"application_type": spec.application_type, "has_secret": bool(created.secret),
                        "request": client_params},
            ))
        audit.record_many(events)
    return created


def app_client_create(*, pool: UserPool, spec: ClientSpec, actor: str) -> Created:
    """Add an app client to a pool in Cognito now (CreateUserPoolClient, then DescribeUserPoolClient),
    mirror it and audit it `created`. Not idempotent: every call makes a new client. Raises
    ValidationError when nothing was created (bad input: nothing sent; or Cognito's refusal)."""
    validate_client_spec(spec)
    params = client_parameters(spec)
    gateway = CognitoGateway(pool.region, purpose="interactive")
    try:
        record = gateway.create_user_pool_client({"UserPoolId": pool.pool_id, **params})
    except CognitoError as exc:
        raise ValidationError(f"Cognito did not create the app client: {exc}. Nothing was created.") from None
    secret = record.get("ClientSecret") or None
    client_id = record["ClientId"]
    del record
    try:
        fields = client_fields(gateway.describe_user_pool_client(pool.pool_id, client_id))
    except CognitoError:
        # Created, but not readable now: the next pull mirrors it.
        fields = {**client_fields({"ClientId": client_id, "ClientName": spec.client_name}),
                  "has_secret": bool(secret)}
    with transaction.atomic():
        client = AppClient(pool=pool, **fields)
        client.content_hash = record_hash(fields)
        client.save()
        audit.record(
            action=audit.Action.CREATED, object_type="app_client", object_id=client.client_id,
            object_repr=client.name, source=audit.Source.ADMIN, actor=actor, pool_id=pool.pool_id,
            detail={"application_type": spec.application_type, "has_secret": bool(secret), "request": params},
        )
    return Created(pool=pool, client_id=client.client_id, client_name=client.name, secret=secret, client=client)
