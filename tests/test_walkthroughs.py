"""The operators' walkthroughs, done in this admin against the emulator, step by step, each ending with what
the walkthrough's user does next: an app signs a user in through the client that was created.

- webchat (SPA, sign-in by e-mail, e-mail and name required; the pool and client ids copied into code);
- notes (a pool, a server-side app client with a secret, a test user with a temporary password);
- e-shop (a client without a secret with USER_AUTH / USER_PASSWORD_AUTH / REFRESH_TOKEN_AUTH, e-mail
  verified automatically keeping the original value while an update is pending, the HTML
  verification e-mail);
- lab (MFA off, Cognito's default e-mail);
- the long form (identifiers, required attributes, password format, admin-only sign-up, temporary
  password expiry, optional MFA with an authenticator app, a custom verification message, no
  remembered devices, an app client).
"""

from __future__ import annotations

import re
from http import HTTPStatus

import boto3
import pytest
from django.urls import reverse

from directory.gateway import secret_hash
from directory.models import AppClient, PendingChange, UserPool
from emulator import ESHOP_VERIFICATION_HTML
from tests.admin_helpers import form_data
from tests.sdk_clients import App, IdentityJs, PyCognito, ensure_node_sdks, messages, verified_claims

pytestmark = pytest.mark.django_db

ADD_POOL = reverse("admin:directory_userpool_add")
PASSWORD = "Correct-Horse-9battery!"
TEMPORARY = "Temp-Pass-123x!"


# --- what an operator clicks ------------------------------------------------------------------------


def create_pool(admin_client, **answers) -> tuple[UserPool, str]:
    """The create page filled in as the walkthrough says (the rest as the page shows it); the new pool
    and the page the operator lands on."""
    form = admin_client.get(ADD_POOL).context["form"]
    response = admin_client.post(ADD_POOL, form_data(form, **answers))
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND), response.status_code
    if response.status_code == HTTPStatus.OK and "form" in (response.context or {}):
        assert not response.context["form"].errors, response.context["form"].errors.as_json()
    pool = UserPool.objects.get(name=answers["pool_name"])
    return pool, response.content.decode()


def add_client(admin_client, pool: UserPool, **answers) -> str:
    url = f"{reverse('admin:directory_appclient_add')}?pool={pool.pk}"
    form = admin_client.get(url).context["form"]
    response = admin_client.post(url, form_data(form, **answers))
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    if response.status_code == HTTPStatus.OK and "form" in (response.context or {}):
        assert not response.context["form"].errors, response.context["form"].errors.as_json()
    return response.content.decode()


def save_settings(admin_client, pool: UserPool, capture, **answers) -> PendingChange:
    url = reverse("admin:directory_userpool_settings", args=[pool.pk])
    form = admin_client.get(url).context["form"]
    with capture(execute=True):
        response = admin_client.post(url, form_data(form, **answers))
    assert response.status_code == HTTPStatus.FOUND, response.context["form"].errors.as_json()
    change = PendingChange.objects.filter(pool=pool, operation="pool.update").latest("id")
    assert change.status == "applied", change.last_error
    return change


def edit_client(admin_client, client: AppClient, capture, **answers) -> None:
    url = reverse("admin:directory_appclient_change", args=[client.pk])
    form = admin_client.get(url).context["adminform"].form
    with capture(execute=True):
        response = admin_client.post(url, form_data(form, **answers))
    assert response.status_code == HTTPStatus.FOUND, response.context["adminform"].form.errors.as_json()
    change = PendingChange.objects.filter(object_key=client.client_id).latest("id")
    assert change.status == "applied", change.last_error


def save_verification_message(admin_client, pool: UserPool, capture, **fields) -> None:
    url = reverse("admin:directory_userpool_messages", args=[pool.pk])
    form = admin_client.get(url).context["form"]
    data = form_data(form, **fields)
    review = admin_client.post(url, {**data, "_review": "1"})
    assert review.status_code == HTTPStatus.OK and "remote_hash" in review.context, review.content[:2000]
    with capture(execute=True):
        saved = admin_client.post(url, {**data, "remote_hash": review.context["remote_hash"], "_confirm": "1"})
    assert saved.status_code == HTTPStatus.FOUND


def create_test_user(admin_client, pool: UserPool, capture, **answers) -> str:
    url = reverse("admin:directory_userpool_create_test_user", args=[pool.pk])
    form = admin_client.get(url).context["form"]
    with capture(execute=True):
        response = admin_client.post(url, form_data(form, **answers))
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    if response.status_code == HTTPStatus.OK and "form" in (response.context or {}):
        assert not response.context["form"].errors, response.context["form"].errors.as_json()
    return response.content.decode()


def copied(page: str, element_id: str) -> str:
    """What a copy button next to `element_id` copies (the element's text)."""
    match = re.search(rf'id="{element_id}"[^>]*>([^<]+)<', page)
    assert match, f"no #{element_id} on the page"
    return match.group(1).strip()


def integration_ids(admin_client, client: AppClient) -> tuple[str, str]:
    page = admin_client.get(reverse("admin:directory_appclient_change", args=[client.pk])).content.decode()
    return copied(page, "integration-pool-id"), copied(page, "integration-client-id")


def only_client(pool: UserPool) -> AppClient:
    (client,) = AppClient.objects.filter(pool=pool)
    return client


def latest_code(emu, pool_id: str, username: str) -> dict:
    sent = messages(emu.meta.endpoint_url, pool_id, username)
    assert sent, f"no message to {username}"
    return sent[0]


def sdk_client(emu):
    """A plain AWS SDK client for Cognito's public API, as an app's backend or Postman would call it."""
    return boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=emu.meta.endpoint_url)


# --- the walkthroughs --------------------------------------------------------------------------------


def test_webchat_spa_signs_in_by_email_with_the_copied_ids(admin_client, emu):
    node = ensure_node_sdks()
    pool, landed = create_pool(
        admin_client, pool_name="webchat", application_type="spa", app_client_name="chatapp",
        sign_in_identifiers=["email"], required_attributes=["email", "name"],
    )
    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["UsernameAttributes"] == ["email"]
    assert {a["Name"] for a in remote["SchemaAttributes"] if a.get("Required")} == {"email", "name"}
    # Step 4: the pool id, copied from the pool's page; step 5: App clients -> chatapp -> its client id.
    page = admin_client.get(reverse("admin:directory_userpool_change", args=[pool.pk])).content.decode()
    assert copied(page, "pool-id") == pool.pool_id
    client = only_client(pool)
    assert client.name == "chatapp" and not client.has_secret
    pool_id, client_id = integration_ids(admin_client, client)
    assert (pool_id, client_id) == (pool.pool_id, client.client_id)

    # The chat app (amazon-cognito-identity-js with those two ids) signs a user up and in by e-mail.
    app = App(endpoint=emu.meta.endpoint_url, pool_id=pool_id, client_id=client_id)
    js = IdentityJs(node)
    signed_up = js.sign_up(app, "ana@example.com", PASSWORD, {"email": "ana@example.com", "name": "Ana"})
    assert "error" not in signed_up, signed_up
    code = latest_code(emu, pool_id, signed_up.get("userSub") or "ana@example.com")["code"]
    assert "error" not in js.confirm(app, "ana@example.com", code)
    signed_in = js.sign_in(app, "ana@example.com", PASSWORD)
    claims = verified_claims(emu.meta.endpoint_url, pool_id, signed_in["tokens"]["id"], audience=client_id)
    assert claims["email"] == "ana@example.com" and claims["name"] == "Ana" and claims["email_verified"] is True


def test_notes_server_app_with_a_secret_and_a_test_user(admin_client, emu, django_capture_on_commit_callbacks):
    pool, landed = create_pool(
        admin_client, pool_name="notes", application_type="web", app_client_name="notes-web",
        return_url="https://notes.example.com/callback", sign_in_identifiers=["username"],
        required_attributes=["email"],
    )
    # The web client's secret is on the result page, once.
    assert copied(landed, "client-secret") and pool.pool_id in landed
    # Apps -> Add an app: sign-in API for server-based authentication.
    result = add_client(
        admin_client, pool, client_name="notes-server", application_type="web", generate_secret=True,
        explicit_auth_flows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        callback_urls="https://notes.example.com/callback",
    )
    secret, client_id = copied(result, "client-secret"), copied(result, "client-id")
    stored = AppClient.objects.get(client_id=client_id)
    assert stored.has_secret and secret not in str(stored.raw)
    # Users and groups -> Create user: a username, a temporary password, an e-mail.
    create_test_user(
        admin_client, pool, django_capture_on_commit_callbacks, username="admin", email="admin@example.com",
        temporary_password=TEMPORARY, delivery="EMAIL", email_verified=True,
    )
    invitation = latest_code(emu, pool.pool_id, "admin")
    assert invitation["medium"] == "EMAIL" and invitation["to"] == "admin@example.com"

    # The server signs the test user in with the secret it copied, and sets the new password.
    cognito = sdk_client(emu)
    hashed = secret_hash(secret, "admin", client_id)
    first = cognito.admin_initiate_auth(
        UserPoolId=pool.pool_id, ClientId=client_id, AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "admin", "PASSWORD": TEMPORARY, "SECRET_HASH": hashed},
    )
    assert first["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    done = cognito.admin_respond_to_auth_challenge(
        UserPoolId=pool.pool_id, ClientId=client_id, ChallengeName="NEW_PASSWORD_REQUIRED", Session=first["Session"],
        ChallengeResponses={"USERNAME": "admin", "NEW_PASSWORD": PASSWORD, "SECRET_HASH": hashed},
    )
    claims = verified_claims(emu.meta.endpoint_url, pool.pool_id, done["AuthenticationResult"]["IdToken"],
                             audience=client_id)
    assert claims["cognito:username"] == "admin"


def test_eshop_client_flows_verification_and_html_message(admin_client, emu, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    pool, _ = create_pool(
        admin_client, pool_name="eshop-fcj", application_type="spa", app_client_name="eshop-client-no-secret",
        sign_in_identifiers=["email"], required_attributes=["email"],
    )
    client = only_client(pool)
    # App clients -> eshop-client-no-secret -> Edit: the authentication flows.
    flows = ["ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    edit_client(admin_client, client, capture, explicit_auth_flows=flows)
    remote_client = emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=client.client_id)
    assert sorted(remote_client["UserPoolClient"]["ExplicitAuthFlows"]) == sorted(flows)
    # Sign-up -> attribute verification: e-mail, keeping the original value while an update is pending.
    save_settings(admin_client, pool, capture, auto_verified_attributes=["email"], keep_original_attributes=["email"],
                  deletion_protection="INACTIVE")
    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["AutoVerifiedAttributes"] == ["email"]
    assert remote["UserAttributeUpdateSettings"]["AttributesRequireVerificationBeforeUpdate"] == ["email"]
    # Message templates -> Verification message: a code, the subject, the pasted HTML.
    html = ESHOP_VERIFICATION_HTML
    save_verification_message(admin_client, pool, capture, default_email_option="CONFIRM_WITH_CODE",
                              email_subject="Account verification code", email_message=html)
    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["VerificationMessageTemplate"]["EmailMessage"] == html.replace("\r\n", "\n")
    assert remote["UsernameAttributes"] == ["email"]  # every save kept the sign-in identifiers

    # The shop's front end (Postman in the walkthrough): sign up, the HTML e-mail with the code, sign in.
    cognito = sdk_client(emu)
    cognito.sign_up(ClientId=client.client_id, Username="buyer@example.com", Password=PASSWORD,
                    UserAttributes=[{"Name": "email", "Value": "buyer@example.com"}])
    sent = latest_code(emu, pool.pool_id, "buyer@example.com")
    assert sent["subject"] == "Account verification code"
    assert "eSHOP-FCJ" in sent["body"] and sent["code"] in sent["body"]
    cognito.confirm_sign_up(ClientId=client.client_id, Username="buyer@example.com", ConfirmationCode=sent["code"])
    answer = cognito.initiate_auth(ClientId=client.client_id, AuthFlow="USER_PASSWORD_AUTH",
                                   AuthParameters={"USERNAME": "buyer@example.com", "PASSWORD": PASSWORD})
    assert verified_claims(emu.meta.endpoint_url, pool.pool_id, answer["AuthenticationResult"]["IdToken"],
                           audience=client.client_id)["email_verified"] is True


def test_lab_pool_mfa_off_cognito_default_email(admin_client, emu):
    pool, _ = create_pool(
        admin_client, pool_name="lab-pool", application_type="spa", app_client_name="lab-app",
        sign_in_identifiers=["email"], required_attributes=["email"], mfa_configuration="OFF",
        email_sending_account="COGNITO_DEFAULT",
    )
    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["MfaConfiguration"] == "OFF"
    assert remote["EmailConfiguration"]["EmailSendingAccount"] == "COGNITO_DEFAULT"
    client = only_client(pool)
    app = App(endpoint=emu.meta.endpoint_url, pool_id=pool.pool_id, client_id=client.client_id)
    py = PyCognito()
    assert "error" not in py.sign_up(app, "lab@example.com", PASSWORD, {"email": "lab@example.com"})
    sent = latest_code(emu, pool.pool_id, "lab@example.com")
    assert sent["medium"] == "EMAIL" and sent["to"] == "lab@example.com"
    assert "error" not in py.confirm(app, "lab@example.com", sent["code"])
    assert "tokens" in py.sign_in(app, "lab@example.com", PASSWORD)


def test_long_form_pool_admin_only_optional_totp_no_devices(admin_client, emu, django_capture_on_commit_callbacks):
    capture = django_capture_on_commit_callbacks
    pool, _ = create_pool(
        admin_client, pool_name="gfg-pool", application_type="spa", app_client_name="gfg-app",
        sign_in_identifiers=["email"], required_attributes=["email", "phone_number"],
        minimum_length="10", require_symbols=True, self_sign_up=False, temporary_password_validity_days="3",
        mfa_configuration="OPTIONAL", mfa_methods=["SOFTWARE_TOKEN"], remember_devices="no",
    )
    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    policy = remote["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] == 10 and policy["RequireSymbols"] is True
    assert policy["TemporaryPasswordValidityDays"] == 3
    assert remote["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert {a["Name"] for a in remote["SchemaAttributes"] if a.get("Required")} == {"email", "phone_number"}
    assert not (remote.get("DeviceConfiguration") or {}).get("ChallengeRequiredOnNewDevice")
    mfa = emu.get_user_pool_mfa_config(UserPoolId=pool.pool_id)
    assert mfa["MfaConfiguration"] == "OPTIONAL" and mfa["SoftwareTokenMfaConfiguration"]["Enabled"] is True
    # Step 6: a custom verification message.
    save_verification_message(admin_client, pool, capture, email_subject="Your GfG code",
                              email_message="Welcome to GfG! Your code is {####}.")
    assert emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]["VerificationMessageTemplate"][
        "EmailSubject"] == "Your GfG code"

    client = only_client(pool)
    app = App(endpoint=emu.meta.endpoint_url, pool_id=pool.pool_id, client_id=client.client_id)
    py = PyCognito()
    # Only administrators create users: the app's own sign-up is refused.
    refused = py.sign_up(app, "self@example.com", PASSWORD, {"email": "self@example.com",
                                                             "phone_number": "+14155550100"})
    assert refused.get("error") == "NotAuthorizedException"
    # The operator creates the user; the user signs in by e-mail (MFA optional: none set up yet).
    create_test_user(admin_client, pool, capture, email="member@example.com", phone_number="+14155550101",
                     temporary_password=TEMPORARY, delivery="SUPPRESS", email_verified=True)
    signed_in = py.sign_in(app, "member@example.com", TEMPORARY, new_password=PASSWORD)
    assert "tokens" in signed_in and [c["name"] for c in signed_in["challenges"]] == ["NEW_PASSWORD_REQUIRED"]
