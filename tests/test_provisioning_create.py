"""Creating user pools and app clients through the admin against the emulator: what Cognito then holds,
what the mirror and the audit log hold (never a client secret), that a user signs in through the new
client, that bad input is refused with nothing sent, cloning a pool, and legacy auth flows."""

from __future__ import annotations

import json
import logging
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.core import serializers
from django.urls import reverse

from directory import gateway
from directory.models import AppClient, AuditEvent, CognitoGroup, PendingChange, SyncRun, UserPool
from directory.sync.pull import pull_pool
from tests.admin_helpers import form_data
from tests.cognito_helpers import inject
from tests.sdk_clients import App, PyCognito

pytestmark = pytest.mark.django_db

ADD_POOL = reverse("admin:directory_userpool_add")
ADD_CLIENT = reverse("admin:directory_appclient_add")
PASSWORD = "Correct-Horse-9battery"


@pytest.fixture
def sent(emu):
    """The name of every Cognito call the gateway makes while the test runs."""
    names: list[str] = []
    client = gateway.get_client("us-east-1")

    def capture(model, **kwargs):
        names.append(model.name)

    client.meta.events.register("before-call.cognito-identity-provider", capture)
    yield names
    client.meta.events.unregister("before-call.cognito-identity-provider", capture)


def post_create(admin_client, query: str = "", **overrides):
    form = admin_client.get(ADD_POOL + query).context["form"]
    return admin_client.post(ADD_POOL + query, form_data(form, **overrides))


def sign_in(emu, pool_id: str, client_id: str, username: str, *, secret: str | None = None) -> dict:
    """An operator's test user (temporary password), then the app's sign-in with SRP through pycognito,
    answering NEW_PASSWORD_REQUIRED."""
    app = App(endpoint=emu.meta.endpoint_url, pool_id=pool_id, client_id=client_id, secret=secret)
    return PyCognito().sign_in(app, username, "Temp-Pass-123x", new_password=PASSWORD)


def make_user(emu, pool_id: str, username: str, **attributes: str) -> None:
    emu.admin_create_user(
        UserPoolId=pool_id, Username=username, TemporaryPassword="Temp-Pass-123x", MessageAction="SUPPRESS",
        UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
    )


def everything_stored() -> str:
    """Every row the app keeps that could hold a secret, serialised."""
    rows = []
    for model in (UserPool, AppClient, CognitoGroup, AuditEvent, PendingChange, SyncRun):
        rows.append(serializers.serialize("json", model.objects.all()))
    return "\n".join(rows)


# Creating pools ------------------------------------------------------------------------------------


def test_spa_pool_signs_in_by_email(admin_client, emu, sent):
    response = post_create(
        admin_client, pool_name="shop-prod", app_client_name="shop-spa", application_type="spa",
        sign_in_identifiers=["email"], required_attributes=["email", "name"],
    )
    pool = UserPool.objects.get(name="shop-prod")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("admin:directory_userpool_change", args=[pool.pk])
    assert sent[:2] == ["CreateUserPool", "CreateUserPoolClient"] and "SetUserPoolMfaConfig" not in sent

    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["UsernameAttributes"] == ["email"] and "AliasAttributes" not in remote
    assert remote["UsernameConfiguration"] == {"CaseSensitive": False}
    required = {a["Name"] for a in remote["SchemaAttributes"] if a.get("Required")}
    assert required == {"email", "name"}
    assert remote["DeletionProtection"] == "ACTIVE"  # the console's default
    assert remote["Policies"]["PasswordPolicy"]["MinimumLength"] == 8
    assert remote["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is False
    assert remote["AutoVerifiedAttributes"] == ["email"]
    [summary] = emu.list_user_pool_clients(UserPoolId=pool.pool_id, MaxResults=10)["UserPoolClients"]
    client = emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=summary["ClientId"])["UserPoolClient"]
    assert "ClientSecret" not in client
    assert sorted(client["ExplicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"]
    assert not client.get("AllowedOAuthFlows")

    # Mirrored at once, and audited as the operator's creation.
    pool.refresh_from_db()
    assert pool.last_synced_at is not None and pool.username_attributes == ["email"]
    mirrored = AppClient.objects.get(pool=pool)
    assert mirrored.client_id == client["ClientId"] and not mirrored.has_secret
    created = AuditEvent.objects.filter(action="created", actor="admin", pool_id=pool.pool_id)
    assert {e.object_type for e in created} == {"pool", "app_client"}
    pool_event = created.get(object_type="pool")
    assert pool_event.detail["steps"][0]["request"]["UsernameAttributes"] == ["email"]

    page = admin_client.get(response["Location"]).content.decode()
    assert "shop-spa" in page and f"?like={pool.pk}" in page and f"?pool={pool.pk}" in page

    # The app's user signs in by e-mail through the new client (SRP, as Amplify does).
    make_user(emu, pool.pool_id, "ana@example.com", email="ana@example.com", name="Ana")
    result = sign_in(emu, pool.pool_id, client["ClientId"], "ana@example.com")
    assert "tokens" in result, result
    assert result["challenges"] == [{"name": "NEW_PASSWORD_REQUIRED"}]


def debug_logs(caplog) -> None:
    """Everything logged, botocore's request and response bodies included (settings keep it at WARNING)."""
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="botocore")


def test_web_pool_secret_is_shown_once_and_kept_nowhere(admin_client, emu, sent, caplog):
    debug_logs(caplog)
    response = post_create(
        admin_client, pool_name="billing", app_client_name="billing-server", application_type="web",
        return_url="https://billing.example.com/callback",
    )
    assert response.status_code == HTTPStatus.OK
    pool = UserPool.objects.get(name="billing")
    [summary] = emu.list_user_pool_clients(UserPoolId=pool.pool_id, MaxResults=10)["UserPoolClients"]
    client = emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=summary["ClientId"])["UserPoolClient"]
    secret = client["ClientSecret"]
    html = response.content.decode()
    # Shown once, with a copy button, on a page nobody caches.
    assert '<code id="client-secret"' in html and secret in html and 'data-copy="client-secret"' in html
    assert "no-store" in response["Cache-Control"] and response["Referrer-Policy"] == "no-referrer"
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert client["AllowedOAuthFlows"] == ["code"] and client["AllowedOAuthFlowsUserPoolClient"] is True
    assert client["CallbackURLs"] == ["https://billing.example.com/callback"]
    assert sorted(client["AllowedOAuthScopes"]) == ["email", "openid", "phone"]
    assert client["SupportedIdentityProviders"] == ["COGNITO"]
    assert AppClient.objects.get(client_id=client["ClientId"]).has_secret is True

    # Nowhere else: not in any stored row, the audit log, the session, or a log line.
    assert secret not in everything_stored()
    assert secret not in caplog.text
    assert "Response body" in caplog.text  # botocore's DEBUG lines were captured, and redacted
    assert secret not in json.dumps(dict(admin_client.session.items()), default=str)
    assert secret not in admin_client.get(reverse("admin:directory_userpool_change", args=[pool.pk])).content.decode()
    event = AuditEvent.objects.get(object_type="app_client", action="created")
    assert event.detail["has_secret"] is True and event.actor == "admin"

    # The server-side app signs its user in with the secret (SECRET_HASH).
    make_user(emu, pool.pool_id, "bob@example.com", email="bob@example.com")
    result = sign_in(emu, pool.pool_id, client["ClientId"], "bob@example.com", secret=secret)
    assert "tokens" in result, result


def test_mobile_pool_username_with_alias_mfa_and_custom_attribute(admin_client, emu, sent):
    response = post_create(
        admin_client, pool_name="field-app", app_client_name="field-ios", application_type="mobile",
        sign_in_identifiers=["username", "email"], required_attributes=["email"], case_sensitive=True,
        self_sign_up=False, custom_attributes="department:String\ncustom:level:Number",
        mfa_configuration="OPTIONAL", mfa_methods=["SOFTWARE_TOKEN"], minimum_length="12", require_symbols=False,
        temporary_password_validity_days="3", deletion_protection="INACTIVE",
    )
    assert response.status_code == HTTPStatus.FOUND, response.context["form"].errors
    pool = UserPool.objects.get(name="field-app")
    assert sent[:3] == ["CreateUserPool", "SetUserPoolMfaConfig", "CreateUserPoolClient"]
    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["AliasAttributes"] == ["email"] and "UsernameAttributes" not in remote
    assert remote["UsernameConfiguration"] == {"CaseSensitive": True}
    assert remote["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    policy = remote["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] == 12 and not policy.get("RequireSymbols") and policy["RequireNumbers"]
    assert policy["TemporaryPasswordValidityDays"] == 3
    assert remote.get("DeletionProtection", "INACTIVE") == "INACTIVE"
    types = {a["Name"]: a["AttributeDataType"] for a in remote["SchemaAttributes"]}
    assert types["custom:department"] == "String" and types["custom:level"] == "Number"
    mfa = emu.get_user_pool_mfa_config(UserPoolId=pool.pool_id)
    assert mfa["MfaConfiguration"] == "OPTIONAL" and mfa["SoftwareTokenMfaConfiguration"] == {"Enabled": True}
    pool.refresh_from_db()
    assert pool.alias_attributes == ["email"] and pool.username_case_sensitive is True
    assert pool.mfa_configuration == "OPTIONAL"
    client = AppClient.objects.get(pool=pool)
    assert not client.has_secret and "ALLOW_USER_SRP_AUTH" in client.explicit_auth_flows

    # Signs in by its e-mail alias.
    make_user(emu, pool.pool_id, "carla", email="carla@example.com", email_verified="true")
    assert "tokens" in sign_in(emu, pool.pool_id, client.client_id, "carla@example.com")


BAD_INPUT = [
    ({"pool_name": ""}, "pool_name", "required"),
    ({"pool_name": "shop/prod"}, "pool_name", "pattern"),
    ({"pool_name": "p" * 129}, "pool_name", "at most 128"),
    ({"app_client_name": "spa*app"}, "app_client_name", "pattern"),
    ({"app_client_name": ""}, "app_client_name", "required"),
    ({"region": "eu-west-9"}, "region", "valid choice"),
    ({"application_type": "desktop"}, "application_type", "valid choice"),
    ({"sign_in_identifiers": []}, "sign_in_identifiers", "required"),
    ({"sign_in_identifiers": ["email"], "required_attributes": ["name"]}, "required_attributes", "needs email"),
    ({"sign_in_identifiers": ["phone_number"], "required_attributes": []}, "required_attributes",
     "needs phone_number"),
    ({"required_attributes": ["email", "shoe_size"]}, "required_attributes", "valid choice"),
    ({"custom_attributes": "a name with spaces:String"}, "custom_attributes", "custom:a name with spaces"),
    ({"custom_attributes": "colour:Colour"}, "custom_attributes", "type must be one of"),
    ({"custom_attributes": "x" * 21}, "custom_attributes", "at most 20"),
    ({"return_url": "http://shop.example.com/cb"}, "return_url", "https except for http://localhost"),
    ({"return_url": "https://shop.example.com/#cb"}, "return_url", "fragment"),
    ({"application_type": "web", "return_url": ""}, "return_url", "needs a return URL"),
    ({"minimum_length": "5"}, "minimum_length", "between 6 and 99"),
    ({"minimum_length": "100"}, "minimum_length", "between 6 and 99"),
    ({"temporary_password_validity_days": "366"}, "temporary_password_validity_days", "0 to 365"),
    ({"mfa_configuration": "ON", "mfa_methods": []}, "mfa_configuration", "at least one MFA method"),
    ({"mfa_configuration": "ON", "mfa_methods": ["SMS"]}, "mfa_methods", "SMS role"),
    ({"mfa_configuration": "OPTIONAL", "mfa_methods": ["EMAIL"]}, "mfa_methods", "DEVELOPER"),
    ({"mfa_configuration": "OFF", "mfa_methods": ["SOFTWARE_TOKEN"]}, "mfa_methods", "MFA is OFF"),
    ({"deletion_protection": "MAYBE"}, "deletion_protection", "valid choice"),
]


@pytest.mark.parametrize(("overrides", "field", "rule"), BAD_INPUT,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(BAD_INPUT)])
def test_bad_input_is_refused_on_the_field_with_nothing_sent(admin_client, emu, sent, overrides, field, rule):
    base = {"pool_name": "ok-pool", "app_client_name": "ok-app"}
    response = post_create(admin_client, **{**base, **overrides})
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert field in errors, errors
    assert rule in " ".join(errors[field]), errors[field]
    assert f'id="id_{field}' in response.content.decode() or field == "like"
    assert not [name for name in sent if name.startswith(("Create", "Set", "Update"))]
    assert emu.list_user_pools(MaxResults=10)["UserPools"] == []
    assert not UserPool.objects.exists() and not AuditEvent.objects.filter(action="created").exists()


def test_client_failure_leaves_the_pool_and_says_so(admin_client, emu, sent):
    with inject(gateway.get_client("us-east-1"), "CreateUserPoolClient", lambda n: True,
                code="InvalidParameterException"):
        response = post_create(admin_client, pool_name="half", app_client_name="half-app")
    pool = UserPool.objects.get(name="half")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("admin:directory_userpool_change", args=[pool.pk])
    page = admin_client.get(response["Location"]).content.decode()
    assert "was created, but its app client was not" in page and "InvalidParameterException" in page
    assert [p["Id"] for p in emu.list_user_pools(MaxResults=10)["UserPools"]] == [pool.pool_id]
    pool.refresh_from_db()
    assert pool.last_synced_at is not None and pool.username_attributes == ["email"]  # mirrored all the same
    assert not AppClient.objects.filter(pool=pool).exists()
    event = AuditEvent.objects.get(object_type="pool", action="created")
    assert "InvalidParameterException" in event.detail["client_error"]


def test_cognito_refusing_the_pool_is_a_form_error(admin_client, emu, sent):
    with inject(gateway.get_client("us-east-1"), "CreateUserPool", lambda n: True, code="LimitExceededException"):
        response = post_create(admin_client, pool_name="one-too-many", app_client_name="app")
    assert response.status_code == HTTPStatus.OK
    assert "Cognito did not create the pool" in response.content.decode()
    assert not UserPool.objects.exists() and not AuditEvent.objects.filter(action="created").exists()


# Permissions ---------------------------------------------------------------------------------------


def test_staff_without_add_permission_gets_403(client, django_user_model, emu, sent):
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(codename__in=["view_userpool", "view_appclient",
                                                                        "change_userpool", "change_appclient"]))
    client.force_login(staff)
    assert client.get(ADD_POOL).status_code == HTTPStatus.FORBIDDEN
    assert client.post(ADD_POOL, {"pool_name": "x", "app_client_name": "y", "region": "us-east-1",
                                  "application_type": "spa", "sign_in_identifiers": ["email"],
                                  "required_attributes": ["email"]}).status_code == HTTPStatus.FORBIDDEN
    assert client.get(ADD_CLIENT).status_code == HTTPStatus.FORBIDDEN
    assert client.post(ADD_CLIENT, {"client_name": "x"}).status_code == HTTPStatus.FORBIDDEN
    assert sent == [] and emu.list_user_pools(MaxResults=10)["UserPools"] == []
    changelist = client.get(reverse("admin:directory_userpool_changelist")).content.decode()
    assert ADD_POOL not in changelist

    staff.user_permissions.add(Permission.objects.get(codename="add_userpool"))
    staff = django_user_model.objects.get(pk=staff.pk)
    client.force_login(staff)
    assert client.get(ADD_POOL).status_code == HTTPStatus.OK
    assert ADD_POOL in client.get(reverse("admin:directory_userpool_changelist")).content.decode()
    assert client.get(ADD_CLIENT).status_code == HTTPStatus.FORBIDDEN


# Adding app clients --------------------------------------------------------------------------------


@pytest.fixture
def shop(admin_client, emu):
    """A pool created through the admin (SPA client), mirrored."""
    response = post_create(admin_client, pool_name="shop", app_client_name="shop-spa",
                           sign_in_identifiers=["email"], required_attributes=["email"])
    assert response.status_code == HTTPStatus.FOUND
    return UserPool.objects.get(name="shop")


def post_client(admin_client, into, **overrides):
    form = admin_client.get(f"{ADD_CLIENT}?pool={into.pk}").context["form"]
    return admin_client.post(ADD_CLIENT, form_data(form, **overrides))


def test_add_web_client_shows_its_secret_once(admin_client, emu, shop, sent, caplog):
    debug_logs(caplog)
    page = admin_client.get(f"{ADD_CLIENT}?pool={shop.pk}")
    assert page.context["form"].initial["pool"] == str(shop.pk)
    html = page.content.decode()
    assert 'value="ALLOW_USER_SRP_AUTH"' in html and 'value="USER_PASSWORD_AUTH"' not in html
    sent.clear()
    response = post_client(
        admin_client, shop, client_name="shop-backend", application_type="web",
        callback_urls="https://shop.example.com/auth/callback\nhttp://localhost:3000/callback",
        logout_urls="https://shop.example.com/", explicit_auth_flows=["ALLOW_USER_PASSWORD_AUTH",
                                                                      "ALLOW_REFRESH_TOKEN_AUTH"],
        access_token_validity="2", refresh_token_validity="7",
    )
    assert response.status_code == HTTPStatus.OK, response.context["form"].errors
    assert sent == ["CreateUserPoolClient", "DescribeUserPoolClient"]
    mirrored = AppClient.objects.get(name="shop-backend")
    remote = emu.describe_user_pool_client(UserPoolId=shop.pool_id, ClientId=mirrored.client_id)["UserPoolClient"]
    secret = remote["ClientSecret"]
    assert secret in response.content.decode() and "no-store" in response["Cache-Control"]
    assert remote["ExplicitAuthFlows"] == ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert remote["CallbackURLs"] == ["https://shop.example.com/auth/callback", "http://localhost:3000/callback"]
    assert remote["LogoutURLs"] == ["https://shop.example.com/"] and remote["AllowedOAuthFlows"] == ["code"]
    assert remote["AccessTokenValidity"] == 2 and remote["RefreshTokenValidity"] == 7
    assert mirrored.has_secret and mirrored.access_token_validity == 2
    assert mirrored.explicit_auth_flows == remote["ExplicitAuthFlows"]
    event = AuditEvent.objects.get(object_type="app_client", object_id=mirrored.client_id, action="created")
    assert event.actor == "admin" and event.detail["has_secret"] is True
    assert secret not in everything_stored() and secret not in caplog.text and "Response body" in caplog.text
    # A pull afterwards finds nothing new: the mirror already matched Cognito.
    assert pull_pool(pool=shop).status == "succeeded"
    assert AuditEvent.objects.filter(object_id=mirrored.client_id).count() == 1

    # The backend signs its user in by e-mail with USER_PASSWORD_AUTH and a SECRET_HASH.
    make_user(emu, shop.pool_id, "dan@example.com", email="dan@example.com")
    emu.admin_set_user_password(UserPoolId=shop.pool_id, Username="dan@example.com", Password=PASSWORD,
                                Permanent=True)
    answer = emu.initiate_auth(
        ClientId=mirrored.client_id, AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "dan@example.com", "PASSWORD": PASSWORD,
                        "SECRET_HASH": gateway.secret_hash(secret, "dan@example.com", mirrored.client_id)},
    )
    assert answer["AuthenticationResult"]["IdToken"]


def test_add_spa_client_follows_the_application_type(admin_client, emu, shop, sent):
    response = post_client(admin_client, shop, client_name="shop-admin-spa", application_type="spa")
    client = AppClient.objects.get(name="shop-admin-spa")
    assert response.status_code == HTTPStatus.FOUND
    assert response["Location"] == reverse("admin:directory_appclient_change", args=[client.pk])
    remote = emu.describe_user_pool_client(UserPoolId=shop.pool_id, ClientId=client.client_id)["UserPoolClient"]
    assert "ClientSecret" not in remote and not client.has_secret
    assert sorted(remote["ExplicitAuthFlows"]) == ["ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_SRP_AUTH"]
    make_user(emu, shop.pool_id, "eve@example.com", email="eve@example.com")
    assert "tokens" in sign_in(emu, shop.pool_id, client.client_id, "eve@example.com")


CLIENT_BAD_INPUT = [
    ({"client_name": ""}, "client_name", "required"),
    ({"client_name": "bad|name"}, "client_name", "pattern"),
    ({"explicit_auth_flows": ["ADMIN_NO_SRP_AUTH", "ALLOW_USER_SRP_AUTH"]}, "explicit_auth_flows",
     "refuses a mix of legacy auth flows (ADMIN_NO_SRP_AUTH) and ALLOW_ flows"),
    ({"explicit_auth_flows": ["USER_PASSWORD_AUTH"]}, "explicit_auth_flows", "ALLOW_USER_PASSWORD_AUTH"),
    ({"explicit_auth_flows": ["ALLOW_MAGIC"]}, "explicit_auth_flows", "valid choice"),
    ({"callback_urls": "http://shop.example.com/cb"}, "callback_urls", "https except for http://localhost"),
    ({"logout_urls": "not-a-url"}, "logout_urls", "not a valid URL"),
    ({"logout_urls": "https://shop.example.com/a b"}, "logout_urls", "RedirectUrlType"),
    ({"allowed_oauth_flows": ["code"]}, "callback_urls", "needs at least one callback URL"),
    ({"allowed_oauth_flows": ["client_credentials"], "allowed_oauth_scopes": "openid",
      "generate_secret": "true"}, "allowed_oauth_scopes", "resource-server scopes"),
    ({"allowed_oauth_flows": ["client_credentials"], "allowed_oauth_scopes": "api/read",
      "generate_secret": "false"}, "generate_secret", "needs a client secret"),
    ({"allowed_oauth_scopes": "has space", "callback_urls": "https://a.example.com/"}, "allowed_oauth_scopes",
     "printable ASCII"),
    ({"access_token_validity": "25"}, "access_token_validity", "outside Cognito's range"),
    ({"id_token_validity": "0"}, "id_token_validity", "outside Cognito's range"),
    ({"refresh_token_validity": "3651"}, "refresh_token_validity", "outside Cognito's range"),
    ({"prevent_user_existence_errors": "MAYBE"}, "prevent_user_existence_errors", "valid choice"),
    ({"pool": "999999"}, "pool", "valid choice"),
]


@pytest.mark.parametrize(("overrides", "field", "rule"), CLIENT_BAD_INPUT,
                         ids=[f"{c[1]}-{i}" for i, c in enumerate(CLIENT_BAD_INPUT)])
def test_add_client_bad_input_is_refused_with_nothing_sent(admin_client, emu, shop, sent, overrides, field, rule):
    before = AppClient.objects.count()
    sent.clear()
    response = post_client(admin_client, shop, **{"client_name": "new-client", **overrides})
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert field in errors and rule in " ".join(errors[field]), errors
    assert sent == []
    assert len(emu.list_user_pool_clients(UserPoolId=shop.pool_id, MaxResults=10)["UserPoolClients"]) == before


# Legacy auth flows on an existing client -----------------------------------------------------------


def test_legacy_client_refuses_a_mix_and_migrates_on_request(admin_client, emu, shop,
                                                             django_capture_on_commit_callbacks):
    legacy = emu.create_user_pool_client(
        UserPoolId=shop.pool_id, ClientName="old-backend",
        ExplicitAuthFlows=["ADMIN_NO_SRP_AUTH", "USER_PASSWORD_AUTH"],
    )["UserPoolClient"]
    pull_pool(pool=shop)
    client = AppClient.objects.get(client_id=legacy["ClientId"])
    url = reverse("admin:directory_appclient_change", args=[client.pk])
    page = admin_client.get(url)
    html = page.content.decode()
    assert "This client has legacy auth flows (ADMIN_NO_SRP_AUTH, USER_PASSWORD_AUTH)" in html
    assert 'name="migrate_legacy_flows"' in html
    form = page.context["adminform"].form
    data = form_data(form)

    # Adding an ALLOW_ flow next to the legacy ones: refused, nothing requested.
    mixed = {**data, "explicit_auth_flows": ["ADMIN_NO_SRP_AUTH", "USER_PASSWORD_AUTH", "ALLOW_USER_SRP_AUTH"]}
    response = admin_client.post(url, mixed)
    assert response.status_code == HTTPStatus.OK
    errors = response.context["adminform"].form.errors
    assert "refuses a mix of legacy auth flows" in " ".join(errors["explicit_auth_flows"])
    assert not PendingChange.objects.exists()

    # Migrating, only when asked: the mapped ALLOW_ flows plus refresh.
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, {**data, "migrate_legacy_flows": "on"})
    assert response.status_code == HTTPStatus.FOUND
    remote = emu.describe_user_pool_client(UserPoolId=shop.pool_id, ClientId=client.client_id)["UserPoolClient"]
    assert sorted(remote["ExplicitAuthFlows"]) == [
        "ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH", "ALLOW_USER_PASSWORD_AUTH",
    ]
    change = PendingChange.objects.get(object_key=client.client_id)
    assert change.status == "applied", change.last_error
    assert change.before["ExplicitAuthFlows"] == ["ADMIN_NO_SRP_AUTH", "USER_PASSWORD_AUTH"]
    client.refresh_from_db()
    assert client.explicit_auth_flows == remote["ExplicitAuthFlows"]
    assert "migrate_legacy_flows" not in admin_client.get(url).content.decode()


# "Create a pool like this one" ---------------------------------------------------------------------


def test_clone_prefills_every_creation_setting_and_creates_a_twin(admin_client, emu, sent):
    source_id = emu.create_user_pool(
        PoolName="eshop-prod", UsernameAttributes=["email"], UsernameConfiguration={"CaseSensitive": False},
        Schema=[{"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
                {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
                {"Name": "tier", "AttributeDataType": "Number", "Mutable": True}],
        Policies={"PasswordPolicy": {"MinimumLength": 10, "RequireUppercase": True, "RequireNumbers": True,
                                     "TemporaryPasswordValidityDays": 2}},
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True, "InviteMessageTemplate": {
            "EmailSubject": "Welcome", "EmailMessage": "Hi {username}, {####}", "SMSMessage": "Hi {username}, {####}",
        }},
        VerificationMessageTemplate={"DefaultEmailOption": "CONFIRM_WITH_CODE", "EmailSubject": "Your code",
                                     "EmailMessage": "<p>Code: {####}</p>"},
        DeletionProtection="ACTIVE",
    )["UserPool"]["Id"]
    emu.create_user_pool_client(UserPoolId=source_id, ClientName="eshop-web", GenerateSecret=True,
                                CallbackURLs=["https://eshop.example.com/cb"])
    source = UserPool.objects.create(pool_id=source_id, region="us-east-1")
    pull_pool(pool=source)
    source.refresh_from_db()

    page = admin_client.get(reverse("admin:directory_userpool_change", args=[source.pk])).content.decode()
    assert f'href="{ADD_POOL}?like={source.pk}"' in page
    response = admin_client.get(f"{ADD_POOL}?like={source.pk}")
    form = response.context["form"]
    initial = form.initial
    assert initial["pool_name"] == "eshop-prod-copy"
    assert initial["sign_in_identifiers"] == ["email"] and initial["case_sensitive"] is False
    assert initial["required_attributes"] == ["email", "name"]
    assert initial["custom_attributes"] == ["tier:Number"]
    assert initial["self_sign_up"] is False
    assert initial["minimum_length"] == 10 and initial["require_uppercase"] is True
    assert initial["require_symbols"] is False and initial["temporary_password_validity_days"] == 2
    assert initial["deletion_protection"] == "ACTIVE"
    assert initial["application_type"] == "web" and initial["app_client_name"] == "eshop-web"
    assert initial["return_url"] == "https://eshop.example.com/cb"
    assert "eshop-prod" in response.content.decode() and 'value="eshop-prod-copy"' in response.content.decode()

    sent.clear()
    response = admin_client.post(f"{ADD_POOL}?like={source.pk}", form_data(form, pool_name="eshop-staging"))
    assert response.status_code == HTTPStatus.OK, response.context["form"].errors  # web: the secret page
    twin = UserPool.objects.get(name="eshop-staging")
    old = emu.describe_user_pool(UserPoolId=source_id)["UserPool"]
    new = emu.describe_user_pool(UserPoolId=twin.pool_id)["UserPool"]
    for key in ("UsernameAttributes", "UsernameConfiguration", "VerificationMessageTemplate", "DeletionProtection"):
        assert new.get(key) == old.get(key), key
    assert new["AdminCreateUserConfig"] == old["AdminCreateUserConfig"]
    policy = new["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] == 10 and policy["TemporaryPasswordValidityDays"] == 2
    assert not policy.get("RequireSymbols") and not policy.get("RequireLowercase")
    schema = {a["Name"]: a for a in new["SchemaAttributes"]}
    assert schema["custom:tier"]["AttributeDataType"] == "Number"
    assert {n for n, a in schema.items() if a.get("Required")} == {"email", "name"}
    twin.refresh_from_db()
    assert twin.verification_message_template["EmailMessage"] == "<p>Code: {####}</p>"


def test_clone_of_an_unknown_pool_is_refused(admin_client, emu, sent):
    assert admin_client.get(f"{ADD_POOL}?like=424242").status_code == HTTPStatus.FORBIDDEN
    assert admin_client.get(f"{ADD_POOL}?like=abc").status_code == HTTPStatus.FORBIDDEN


# The emulator, where moto differed from Cognito for pools made this way --------------------------


def test_emulator_case_insensitive_pool_is_one_user_whatever_the_case(admin_client, emu, shop):
    spa = AppClient.objects.get(pool=shop)
    make_user(emu, shop.pool_id, "Fay@Example.com", email="Fay@Example.com")
    # Cognito finds the e-mail username whatever its case (UsernameConfiguration CaseSensitive false) ...
    emu.admin_set_user_password(UserPoolId=shop.pool_id, Username="fay@example.com", Password=PASSWORD, Permanent=True)
    app = App(endpoint=emu.meta.endpoint_url, pool_id=shop.pool_id, client_id=spa.client_id)
    assert "tokens" in PyCognito().sign_in(app, "FAY@EXAMPLE.COM", PASSWORD)
    # ... and refuses a second user that differs only in case.
    with pytest.raises(emu.exceptions.UsernameExistsException):
        make_user(emu, shop.pool_id, "fay@example.com", email="fay@example.com")


def test_emulator_refuses_username_and_alias_attributes_together(emu):
    with pytest.raises(emu.exceptions.InvalidParameterException, match="Only one of the aliasAttributes"):
        emu.create_user_pool(PoolName="both", UsernameAttributes=["email"], AliasAttributes=["phone_number"])
