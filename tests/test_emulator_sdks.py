"""Real client libraries against the emulator over HTTP: amazon-cognito-identity-js and AWS SDK v3 (Node),
pycognito and the AWS CLI (this venv). Each flow of the issue runs through every client that can make it;
the emulator is seeded with the demo pools and mirrored, and operator steps go through the admin."""

from __future__ import annotations

import json
import time
from http import HTTPStatus

import pytest
from django.urls import reverse

import emulator
from directory.models import CognitoUser, UserPool
from directory.sync.pull import pull_pool
from tests.sdk_clients import (
    App,
    AwsCli,
    IdentityJs,
    PyCognito,
    SdkV3,
    ensure_node_sdks,
    messages,
    sdk_version,
    verified_claims,
)

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Chosen-Passw0rd!77"
CLIENTS = ["identity-js", "aws-sdk-v3", "pycognito", "aws-cli"]
CHANGELIST = "admin:directory_cognitouser_changelist"


@pytest.fixture(scope="session")
def node():
    return ensure_node_sdks()


@pytest.fixture
def library(request):
    name = request.param
    if name in {"identity-js", "aws-sdk-v3"}:
        node = request.getfixturevalue("node")
        return IdentityJs(node) if name == "identity-js" else SdkV3(node)
    return PyCognito() if name == "pycognito" else AwsCli()


@pytest.fixture
def demo(emu):
    """The demo pools (8 users each) on the emulator, mirrored; their apps by pool name."""
    summary = emulator.seed_demo(emu, users_per_pool=8)
    endpoint = emu.meta.endpoint_url
    apps, mirrored = {}, {}
    for name, info in summary.items():
        (listed,) = emu.list_user_pool_clients(UserPoolId=info["pool_id"], MaxResults=10)["UserPoolClients"]
        client = emu.describe_user_pool_client(UserPoolId=info["pool_id"], ClientId=listed["ClientId"])
        apps[name] = App(endpoint, info["pool_id"], listed["ClientId"], client["UserPoolClient"].get("ClientSecret"))
        mirrored[name] = UserPool.objects.create(pool_id=info["pool_id"], region="us-east-1")
        assert pull_pool(pool=mirrored[name]).status == "succeeded"
    sign_ins = {s["pool"]: s for s in emulator.demo_sign_ins(users_per_pool=8) if s["status"] == "CONFIRMED"}
    return {"emu": emu, "endpoint": endpoint, "apps": apps, "pools": mirrored, "sign_ins": sign_ins}


def new_client(demo, pool: str, flows: list[str], *, secret: bool = False, name: str = "extra") -> App:
    created = demo["emu"].create_user_pool_client(
        UserPoolId=demo["apps"][pool].pool_id, ClientName=name, GenerateSecret=secret, ExplicitAuthFlows=flows
    )["UserPoolClient"]
    return App(demo["endpoint"], created["UserPoolId"], created["ClientId"], created.get("ClientSecret"))


def sign_in(library, app, username, password, **extra):
    """SRP for the libraries that speak it (identity-js, pycognito), USER_PASSWORD_AUTH for the others."""
    return library.sign_in(app, username, password, **extra)


# --- 1. sign-up -> code from the message log -> confirm -> sign-in -> refresh -> wrong password ---------------


@pytest.mark.parametrize("library", CLIENTS, indirect=True)
def test_sign_up_confirm_sign_in_refresh_and_wrong_password(library, demo):
    app = demo["apps"]["webchat"]  # e-mail is the username; e-mail auto-verified
    email = f"new.{library.name}@example.com"
    signed = library.sign_up(app, email, NEW_PASSWORD, {"name": "Ana Sign-Up"})
    assert "error" not in signed, signed
    (sent,) = messages(app.endpoint, app.pool_id, email)
    assert sent["kind"] == "verification" and sent["trigger"] == "SignUp"
    assert library.sign_in(app, email, NEW_PASSWORD)["error"] == "UserNotConfirmedException"

    wrong = "000000" if sent["code"] != "000000" else "111111"
    assert library.confirm(app, email, wrong)["error"] == "CodeMismatchException"
    assert "error" not in library.confirm(app, email, sent["code"])

    result = sign_in(library, app, email, NEW_PASSWORD)
    assert "tokens" in result, result
    claims = verified_claims(app.endpoint, app.pool_id, result["tokens"]["id"], audience=app.client_id)
    remote = demo["emu"].admin_get_user(UserPoolId=app.pool_id, Username=email)
    sub = next(a["Value"] for a in remote["UserAttributes"] if a["Name"] == "sub")
    assert claims["sub"] == sub == claims["cognito:username"] == remote["Username"]
    assert claims["email"] == email and claims["email_verified"] is True and claims["name"] == "Ana Sign-Up"
    assert claims["token_use"] == "id" and claims["aud"] == app.client_id
    assert abs(claims["auth_time"] - time.time()) < 120
    access = verified_claims(app.endpoint, app.pool_id, result["tokens"]["access"])
    assert access["token_use"] == "access" and access["client_id"] == app.client_id and access["sub"] == sub

    renewed = library.refresh(app, email, result["tokens"]["refresh"])
    assert "tokens" in renewed, renewed
    again = verified_claims(app.endpoint, app.pool_id, renewed["tokens"]["id"], audience=app.client_id)
    assert again["sub"] == sub and again["auth_time"] == claims["auth_time"]
    assert library.refresh(app, email, "not-a-refresh-token")["error"] == "NotAuthorizedException"

    refused = library.sign_in(app, email, "Wrong-Passw0rd!77")
    assert refused["error"] == "NotAuthorizedException"
    assert refused["message"] == "Incorrect username or password."


def test_demo_user_signs_in_with_the_readme_password(demo, node):
    """The README's demo sign-ins work with the SDK behind Amplify (SRP through the SPA client)."""
    for pool in ("webchat", "eshop-fcj", "staff-portal"):
        user = demo["sign_ins"][pool]
        result = IdentityJs(node).sign_in(demo["apps"][pool], user["username"], user["password"])
        assert "tokens" in result, (pool, result)


# --- 2. a test user created through the admin -> first sign-in -> new password -> claims match the mirror ------


def create_test_user(admin_client, pool, email, password):
    response = admin_client.post(
        reverse("admin:directory_userpool_create_test_user", args=[pool.pk]),
        {"email": email, "name": "Tess Tester", "temporary_password": password, "delivery": "EMAIL",
         "expires_in_days": "", "email_verified": "on"},
    )
    assert response.status_code == HTTPStatus.OK and "result" in response.context, response.content[:2000]


@pytest.mark.parametrize("library", CLIENTS, indirect=True)
def test_admin_created_user_first_sign_in_and_claims_match_the_mirror(library, demo, admin_client):
    pool, app = demo["pools"]["webchat"], demo["apps"]["webchat"]
    email = f"tess.{library.name}@example.com"
    create_test_user(admin_client, pool, email, "Temp-Passw0rd!1")

    first = library.sign_in(app, email, "Temp-Passw0rd!1")
    assert first["challenge"] == "NEW_PASSWORD_REQUIRED", first
    if library.name in {"identity-js", "aws-sdk-v3", "aws-cli"}:
        parameters = first["parameters"]
        attributes = parameters["userAttributes"]
        if isinstance(attributes, str):  # the API's JSON string (identity-js hands it over parsed)
            attributes, required = json.loads(attributes), json.loads(parameters["requiredAttributes"])
        else:
            required = parameters["requiredAttributes"]
        assert attributes["email"] == email and attributes["name"] == "Tess Tester"
        assert "sub" not in attributes and required == []

    result = library.sign_in(app, email, "Temp-Passw0rd!1", new_password=NEW_PASSWORD)
    assert "tokens" in result, result
    claims = verified_claims(app.endpoint, app.pool_id, result["tokens"]["id"], audience=app.client_id)
    assert library.sign_in(app, email, "Temp-Passw0rd!1")["error"] == "NotAuthorizedException"
    assert "tokens" in library.sign_in(app, email, NEW_PASSWORD)

    assert pull_pool(pool=pool).status == "succeeded"
    mirrored = CognitoUser.objects.get(pool=pool, email=email)
    assert mirrored.status == "CONFIRMED"
    assert (mirrored.sub, mirrored.username, mirrored.email, mirrored.email_verified, mirrored.name) == (
        claims["sub"], claims["cognito:username"], claims["email"], claims["email_verified"], claims["name"])
    assert claims["iss"] == f"{app.endpoint}/{app.pool_id}"


# --- 3. resend the invitation from the admin: the new temporary password works, the old one is refused ---------


@pytest.mark.parametrize("library", ["identity-js", "pycognito"], indirect=True)
def test_resent_invitation_replaces_the_temporary_password(library, demo, admin_client):
    pool, app = demo["pools"]["webchat"], demo["apps"]["webchat"]
    email = f"invited.{library.name}@example.com"
    create_test_user(admin_client, pool, email, "First-Temp-Passw0rd!")
    user = CognitoUser.objects.get(pool=pool, email=email)

    response = admin_client.post(reverse("admin:directory_cognitouser_resend_code", args=[user.pk]))
    assert response.status_code == HTTPStatus.FOUND
    resent = messages(app.endpoint, app.pool_id, email)[0]
    assert resent["trigger"] == "AdminCreateUser RESEND" and resent["code"] != "First-Temp-Passw0rd!"

    assert library.sign_in(app, email, "First-Temp-Passw0rd!")["error"] == "NotAuthorizedException"
    assert library.sign_in(app, email, resent["code"])["challenge"] == "NEW_PASSWORD_REQUIRED"
    assert "tokens" in library.sign_in(app, email, resent["code"], new_password=NEW_PASSWORD)


# --- 4. a user disabled in the admin is refused ----------------------------------------------------------------


@pytest.mark.parametrize("library", CLIENTS, indirect=True)
def test_user_disabled_in_the_admin_is_refused(library, demo, admin_client, django_capture_on_commit_callbacks):
    signin = demo["sign_ins"]["eshop-fcj"]
    app = demo["apps"]["eshop-fcj"]
    assert "tokens" in library.sign_in(app, signin["username"], signin["password"])
    user = CognitoUser.objects.get(pool=demo["pools"]["eshop-fcj"], email=signin["email"])
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(CHANGELIST),
                                     {"action": "disable_users", "index": 0, "_selected_action": [user.pk]})
    assert response.status_code == HTTPStatus.FOUND
    refused = library.sign_in(app, signin["username"], signin["password"])
    assert (refused["error"], refused["message"]) == ("NotAuthorizedException", "User is disabled.")


# --- 5. an admin-only pool refuses sign-up ---------------------------------------------------------------------


@pytest.mark.parametrize("library", CLIENTS, indirect=True)
def test_admin_only_pool_refuses_sign_up(library, demo):
    app = demo["apps"]["staff-portal"]
    refused = library.sign_up(app, "walk.in", NEW_PASSWORD, {"email": "walk.in@example.com", "name": "Walk In"})
    assert (refused["error"], refused["message"]) == (
        "NotAuthorizedException", "SignUp is not permitted for this user pool")
    assert messages(app.endpoint, app.pool_id, "walk.in") == []


# --- 6. a flow the client does not allow is refused ------------------------------------------------------------


@pytest.mark.parametrize("library", CLIENTS, indirect=True)
def test_flow_the_client_does_not_allow_is_refused(library, demo):
    signin = demo["sign_ins"]["webchat"]
    if library.srp:  # SRP through a client that allows only the password flow
        app = new_client(demo, "webchat", ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
        refused = library.sign_in(app, signin["username"], signin["password"])
        assert (refused["error"], refused["message"]) == (
            "InvalidParameterException", "USER_SRP_AUTH is not enabled for the client.")
    else:  # USER_PASSWORD_AUTH through a client that allows only SRP
        app = new_client(demo, "webchat", ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
        refused = library.sign_in(app, signin["username"], signin["password"])
        assert (refused["error"], refused["message"]) == (
            "InvalidParameterException", "USER_PASSWORD_AUTH flow not enabled for this client")
        refresh_less = new_client(demo, "webchat", ["ALLOW_USER_PASSWORD_AUTH"], name="no-refresh")
        tokens = library.sign_in(refresh_less, signin["username"], signin["password"])["tokens"]
        assert library.refresh(refresh_less, signin["username"], tokens["refresh"])["error"] == (
            "InvalidParameterException")


def test_identity_js_password_flow_follows_the_client_too(demo, node):
    """identity-js's USER_PASSWORD_AUTH (setAuthenticationFlowType) against staff-portal's SRP-only client."""
    app = demo["apps"]["staff-portal"]
    signin = demo["sign_ins"]["staff-portal"]
    refused = IdentityJs(node).sign_in(app, signin["username"], signin["password"], flow="USER_PASSWORD_AUTH")
    assert refused["error"] == "InvalidParameterException"
    assert "tokens" in IdentityJs(node).sign_in(app, signin["username"], signin["password"])


# --- 7. a client with a secret, with and without the secret hash ----------------------------------------------


@pytest.mark.parametrize("library", CLIENTS, indirect=True)
def test_secret_client_with_and_without_the_secret_hash(library, demo):
    signin = demo["sign_ins"]["notes-app"]  # username sign-in: the SECRET_HASH's username is the Username
    with_secret = new_client(demo, "notes-app", ["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH",
                                                 "ALLOW_REFRESH_TOKEN_AUTH"], secret=True)
    without = App(with_secret.endpoint, with_secret.pool_id, with_secret.client_id)  # same client, no secret given
    refused = library.sign_in(without, signin["username"], signin["password"])
    assert (refused["error"], refused["message"]) == (
        "NotAuthorizedException",
        f"Client {with_secret.client_id} is configured for secret but secret was not received",
    )
    if library.name == "identity-js":
        return  # identity-js cannot compute a SECRET_HASH: Cognito tells apps to use a client without a secret
    wrong = App(with_secret.endpoint, with_secret.pool_id, with_secret.client_id, "not-the-secret")
    refused = library.sign_in(wrong, signin["username"], signin["password"])
    assert (refused["error"], refused["message"]) == (
        "NotAuthorizedException", f"Unable to verify secret hash for client {with_secret.client_id}")
    result = library.sign_in(with_secret, signin["username"], signin["password"])
    assert "tokens" in result, result
    assert "tokens" in library.refresh(with_secret, signin["username"], result["tokens"]["refresh"])


def test_versions_under_test(node):
    """The pinned npm packages are what runs (package-lock.json), printed for the record."""
    versions = {p: sdk_version(p) for p in ("amazon-cognito-identity-js", "@aws-sdk/client-cognito-identity-provider")}
    print(versions)
    assert versions["amazon-cognito-identity-js"].startswith("6.3.")
