"""The emulator's shims: ResendConfirmationCode, an AdminCreateUser RESEND that keeps the user,
and the log of the messages Cognito would have sent (HTTP endpoint and the admin's page in local mode)."""

from __future__ import annotations

import json
import re
import urllib.request
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse
from django.utils.html import escape

import emulator
from directory import gateway
from directory.models import UserPool
from tests.cognito_helpers import make_client, make_pool
from tests.factories import CognitoUserFactory

PASSWORD = "Passw0rd!Long"
INVITE_HTML = (
    "<p>Welcome! Your username is <b>{username}</b> and your temporary password is <b>{####}</b>.</p>"
    "<script>alert('x')</script>"
)


def sign_up(client, app, username, email, *, secret_hash: str | None = None):
    params = {
        "ClientId": app["ClientId"], "Username": username, "Password": PASSWORD,
        "UserAttributes": [{"Name": "email", "Value": email}, {"Name": "name", "Value": username.title()}],
    }
    if app.get("ClientSecret"):
        params["SecretHash"] = secret_hash or gateway.secret_hash(app["ClientSecret"], username, app["ClientId"])
    return client.sign_up(**params)


def log(client, **query) -> list[dict]:
    url = f"{client.meta.endpoint_url}/_emulator/messages"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["count"] == len(body["messages"])
    return body["messages"]


def error_code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


# --- ResendConfirmationCode ----------------------------------------------------------------------------


def test_resend_confirmation_code_without_secret(emu):
    pool_id = make_pool(emu)
    spa = make_client(emu, pool_id, secret=False)
    signed = sign_up(emu, spa, "dave", "dave@example.com")
    # SignUp's answer names where the code went, masked as Cognito does.
    assert signed["CodeDeliveryDetails"] == {
        "Destination": "d***@e***.com", "DeliveryMedium": "EMAIL", "AttributeName": "email",
    }
    answer = emu.resend_confirmation_code(ClientId=spa["ClientId"], Username="dave")
    assert answer["CodeDeliveryDetails"] == {
        "Destination": "d***@e***.com", "DeliveryMedium": "EMAIL", "AttributeName": "email",
    }
    sent = log(emu, pool_id=pool_id)
    assert [(m["trigger"], m["kind"], m["to"]) for m in sent] == [
        ("ResendConfirmationCode", "verification", "dave@example.com"),
        ("SignUp", "verification", "dave@example.com"),
    ]
    codes = [m["code"] for m in sent]
    assert all(re.fullmatch(r"\d{6}", c) for c in codes)
    # Cognito's default verification text when the pool sets none.
    assert sent[0]["subject"] == "Your verification code"
    assert sent[0]["body"] == f"Your verification code is {codes[0]}. "
    # Still UNCONFIRMED: a resend does not confirm anyone.
    assert emu.admin_get_user(UserPoolId=pool_id, Username="dave")["UserStatus"] == "UNCONFIRMED"


def test_resend_confirmation_code_with_secret_checks_the_secret_hash(emu):
    pool_id = make_pool(emu)
    server = make_client(emu, pool_id, secret=True)
    secret, client_id = server["ClientSecret"], server["ClientId"]
    sign_up(emu, server, "erin", "erin@example.org")

    good = gateway.secret_hash(secret, "erin", client_id)
    answer = emu.resend_confirmation_code(ClientId=client_id, Username="erin", SecretHash=good)
    assert answer["CodeDeliveryDetails"]["Destination"] == "e***@e***.org"

    for bad in ({"SecretHash": gateway.secret_hash("not-the-secret", "erin", client_id)}, {}):
        with pytest.raises(emu.exceptions.NotAuthorizedException):
            emu.resend_confirmation_code(ClientId=client_id, Username="erin", **bad)
    # A sign-up through a secret client needs the SecretHash too.
    with pytest.raises(emu.exceptions.NotAuthorizedException):
        sign_up(emu, server, "frank", "frank@example.org", secret_hash="d3Jvbmc=")
    # Only the good resend and the sign-up produced a message.
    assert [m["trigger"] for m in log(emu, pool_id=pool_id)] == ["ResendConfirmationCode", "SignUp"]


def test_resend_confirmation_code_refusals(emu):
    pool_id = make_pool(emu)
    spa = make_client(emu, pool_id, secret=False)
    sign_up(emu, spa, "dave", "dave@example.com")
    emu.admin_confirm_sign_up(UserPoolId=pool_id, Username="dave")
    with pytest.raises(emu.exceptions.InvalidParameterException) as confirmed:
        emu.resend_confirmation_code(ClientId=spa["ClientId"], Username="dave")
    assert "already confirmed" in str(confirmed.value)
    with pytest.raises(emu.exceptions.UserNotFoundException):
        emu.resend_confirmation_code(ClientId=spa["ClientId"], Username="nobody")
    with pytest.raises(emu.exceptions.ResourceNotFoundException):
        emu.resend_confirmation_code(ClientId="0" * 26, Username="dave")
    # A pool that verifies nothing automatically sends no code: Cognito refuses the resend.
    quiet_id = make_pool(emu, PoolName="quiet", AutoVerifiedAttributes=[])
    quiet = make_client(emu, quiet_id, secret=False)
    sign_up(emu, quiet, "gail", "gail@example.com")
    with pytest.raises(emu.exceptions.InvalidParameterException) as no_auto:
        emu.resend_confirmation_code(ClientId=quiet["ClientId"], Username="gail")
    assert "Auto verification not turned on" in str(no_auto.value)
    assert log(emu, pool_id=quiet_id) == []


# --- AdminCreateUser RESEND -----------------------------------------------------------------------------


def test_resend_invitation_keeps_the_user(emu):
    pool_id = make_pool(emu, AdminCreateUserConfig={
        "AllowAdminCreateUserOnly": True,
        "InviteMessageTemplate": {
            "EmailSubject": "Your shop account", "EmailMessage": INVITE_HTML,
            "SMSMessage": "Shop: user {username}, password {####}",
        },
    })
    app = make_client(emu, pool_id, secret=False)
    emu.create_group(UserPoolId=pool_id, GroupName="staff")
    emu.create_group(UserPoolId=pool_id, GroupName="editors")
    created = emu.admin_create_user(
        UserPoolId=pool_id, Username="carol",
        UserAttributes=[
            {"Name": "email", "Value": "carol@example.com"}, {"Name": "name", "Value": "Carol Zoë"},
            {"Name": "phone_number", "Value": "+15550100003"},
        ],
        DesiredDeliveryMediums=["EMAIL", "SMS"],
    )["User"]
    for group in ("staff", "editors"):
        emu.admin_add_user_to_group(UserPoolId=pool_id, Username="carol", GroupName=group)
    before = emu.admin_get_user(UserPoolId=pool_id, Username="carol")
    invitations = log(emu, pool_id=pool_id)
    assert sorted(m["medium"] for m in invitations) == ["EMAIL", "SMS"]
    first_password = invitations[0]["code"]

    resent = emu.admin_create_user(
        UserPoolId=pool_id, Username="carol", MessageAction="RESEND", DesiredDeliveryMediums=["EMAIL"]
    )["User"]
    after = emu.admin_get_user(UserPoolId=pool_id, Username="carol")
    attrs = {a["Name"]: a["Value"] for a in after["UserAttributes"]}
    assert attrs["sub"] == {a["Name"]: a["Value"] for a in created["Attributes"]}["sub"]
    assert after["UserAttributes"] == before["UserAttributes"]
    assert after["UserCreateDate"] == before["UserCreateDate"]
    assert after["UserStatus"] == "FORCE_CHANGE_PASSWORD" and resent["UserStatus"] == "FORCE_CHANGE_PASSWORD"
    assert resent["Username"] == "carol"
    groups = emu.admin_list_groups_for_user(UserPoolId=pool_id, Username="carol")["Groups"]
    assert sorted(g["GroupName"] for g in groups) == ["editors", "staff"]

    # The new invitation: rendered from the pool's template, with the username and a NEW password that works.
    latest = log(emu, pool_id=pool_id)[0]
    assert (latest["trigger"], latest["kind"], latest["medium"]) == ("AdminCreateUser RESEND", "invitation", "EMAIL")
    assert latest["subject"] == "Your shop account" and latest["html"] is True
    new_password = latest["code"]
    assert new_password != first_password
    assert latest["body"] == INVITE_HTML.replace("{username}", "carol").replace("{####}", new_password)
    challenge = emu.admin_initiate_auth(
        UserPoolId=pool_id, ClientId=app["ClientId"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "carol", "PASSWORD": new_password},
    )
    assert challenge["ChallengeName"] == "NEW_PASSWORD_REQUIRED"
    with pytest.raises(emu.exceptions.NotAuthorizedException):
        emu.admin_initiate_auth(
            UserPoolId=pool_id, ClientId=app["ClientId"], AuthFlow="ADMIN_USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": "carol", "PASSWORD": first_password},
        )
    # The SMS invitation renders the SMS template.
    emu.admin_create_user(UserPoolId=pool_id, Username="carol", MessageAction="RESEND", DesiredDeliveryMediums=["SMS"])
    sms = log(emu, pool_id=pool_id)[0]
    assert (sms["medium"], sms["to"], sms["subject"]) == ("SMS", "+15550100003", "")
    assert sms["body"] == f"Shop: user carol, password {sms['code']}"


def test_resend_invitation_refused_unless_force_change_password(emu):
    pool_id = make_pool(emu)
    emu.admin_create_user(
        UserPoolId=pool_id, Username="alice", MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": "alice@example.com"}, {"Name": "name", "Value": "Alice"}],
    )
    emu.admin_set_user_password(UserPoolId=pool_id, Username="alice", Password=PASSWORD, Permanent=True)
    sub = emu.admin_get_user(UserPoolId=pool_id, Username="alice")["UserAttributes"]
    with pytest.raises(emu.exceptions.UnsupportedUserStateException) as refused:
        emu.admin_create_user(
            UserPoolId=pool_id, Username="alice", MessageAction="RESEND", DesiredDeliveryMediums=["EMAIL"]
        )
    assert "FORCE_CHANGE_PASSWORD" in str(refused.value)
    with pytest.raises(emu.exceptions.UserNotFoundException):
        emu.admin_create_user(UserPoolId=pool_id, Username="ghost", MessageAction="RESEND")
    after = emu.admin_get_user(UserPoolId=pool_id, Username="alice")
    assert after["UserStatus"] == "CONFIRMED" and after["UserAttributes"] == sub
    # SUPPRESS sent nothing, the refusals neither.
    assert log(emu, pool_id=pool_id) == []


def test_invitation_on_create_uses_defaults_and_email_username(emu):
    """An e-mail-as-username pool without templates: Cognito's default invitation, the e-mail as the username."""
    pool_id = make_pool(emu, UsernameAttributes=["email"])
    emu.admin_create_user(
        UserPoolId=pool_id, Username="zoe@example.net",
        UserAttributes=[{"Name": "email", "Value": "zoe@example.net"}, {"Name": "name", "Value": "Zoë"}],
        DesiredDeliveryMediums=["EMAIL"],
    )
    (message,) = log(emu, pool_id=pool_id)
    assert message["subject"] == "Your temporary password" and message["html"] is False
    assert message["body"] == f"Your username is zoe@example.net and temporary password is {message['code']}. "
    assert len(message["code"]) >= 8


# --- Verification e-mail from a custom HTML template -------------------------------------------------------


def test_verification_email_rendered_from_custom_html_template(emu):
    pool_id = make_pool(emu, UsernameAttributes=["email"], VerificationMessageTemplate={
        "DefaultEmailOption": "CONFIRM_WITH_CODE",
        "EmailSubject": "Account verification code",
        "EmailMessage": emulator.ESHOP_VERIFICATION_HTML,
        "SmsMessage": "Your code is {####}",
    })
    spa = make_client(emu, pool_id, secret=False)
    sign_up(emu, spa, "ana@example.com", "ana@example.com")
    (message,) = log(emu, pool_id=pool_id)
    code = message["code"]
    assert re.fullmatch(r"\d{6}", code)
    assert message["subject"] == "Account verification code" and message["html"] is True
    assert message["body"] == emulator.ESHOP_VERIFICATION_HTML.replace("{####}", code)
    assert "{####}" not in message["body"] and "{" + code + "}" in message["body"]  # the seed's {{####}}
    assert message["to"] == "ana@example.com" and message["kind"] == "verification"


def test_message_log_endpoint_filters_clears_and_is_bounded(emu):
    pool_id = make_pool(emu)
    other_id = make_pool(emu, PoolName="other")
    spa = make_client(emu, pool_id, secret=False)
    other = make_client(emu, other_id, secret=False)
    sign_up(emu, spa, "dave", "dave@example.com")
    sign_up(emu, spa, "ella", "ella@example.com")
    sign_up(emu, other, "fred", "fred@example.com")
    assert {m["username"] for m in log(emu, pool_id=pool_id)} == {"dave", "ella"}
    assert [m["to"] for m in log(emu, pool_id=pool_id, username="ella")] == ["ella@example.com"]
    newest = log(emu)[0]["id"]
    emu.resend_confirmation_code(ClientId=spa["ClientId"], Username="dave")
    assert [m["trigger"] for m in log(emu, since=newest)] == ["ResendConfirmationCode"]

    request = urllib.request.Request(f"{emu.meta.endpoint_url}/_emulator/messages?pool_id={pool_id}", method="DELETE")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert json.load(response) == {"deleted": 3}
    assert log(emu, pool_id=pool_id) == [] and len(log(emu, pool_id=other_id)) == 1

    bounded = emulator.MessageLog(size=3)
    for n in range(5):
        bounded.add(pool_id="p", n=n)
    assert [m["n"] for m in bounded.list()] == [4, 3, 2]


def test_mask_destination():
    assert emulator.mask_destination("test@example.com", "EMAIL") == "t***@e***.com"
    assert emulator.mask_destination("+15550100003", "SMS") == "+*******0003"


# --- The admin's page (local mode only) ---------------------------------------------------------------------


def _mirrored_pool_with_messages(emu) -> UserPool:
    pool_id = make_pool(emu, VerificationMessageTemplate={
        "EmailSubject": "Account verification code", "EmailMessage": emulator.ESHOP_VERIFICATION_HTML,
    })
    spa = make_client(emu, pool_id, secret=False)
    sign_up(emu, spa, "dave", "dave@example.com")
    emu.admin_create_user(
        UserPoolId=pool_id, Username="carol", DesiredDeliveryMediums=["EMAIL"],
        UserAttributes=[{"Name": "email", "Value": "carol@example.com"}, {"Name": "name", "Value": "Carol"}],
    )
    return UserPool.objects.create(pool_id=pool_id, region="us-east-1", name="shop")


@pytest.mark.django_db
def test_admin_messages_page_in_local_mode(emu, admin_client, settings):
    settings.COGNITO_LOCAL_MODE = True
    pool = _mirrored_pool_with_messages(emu)
    url = reverse("admin:directory_userpool_messages_sent", args=[pool.pk])
    assert url == f"/admin/directory/userpool/{pool.pk}/messages-sent/"
    response = admin_client.get(url)
    assert response.status_code == HTTPStatus.OK
    html = response.content.decode()
    sent = response.context["sent"]
    assert [(m["kind"], m["to"]) for m in sent] == [
        ("invitation", "carol@example.com"), ("verification", "dave@example.com"),
    ]
    invitation, verification = sent
    # The plain-text invitation is shown as text, with the username and the temporary password.
    assert escape(f"Your username is carol and temporary password is {invitation['code']}") in html
    # The HTML e-mail only inside a sandboxed srcdoc frame: escaped, never raw markup in the page.
    assert '<iframe sandbox srcdoc="&lt;table width=&quot;100%&quot;' in html
    assert '<table width="100%" cellpadding="0"' not in html
    assert "{" + verification["code"] + "}" in html
    assert "Account verification code" in html
    csp = response["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "object-src 'none'" in csp
    # Narrowed to one user, and as JSON for other pages (the "test send").
    one = admin_client.get(url, {"username": "dave"})
    assert [m["to"] for m in one.context["sent"]] == ["dave@example.com"]
    as_json = admin_client.get(url, {"format": "json"}).json()
    assert as_json["pool_id"] == pool.pool_id and len(as_json["messages"]) == 2
    # Linked from the pool's page.
    page = admin_client.get(reverse("admin:directory_userpool_change", args=[pool.pk])).content.decode()
    assert f'href="{url}"' in page
    # And from a user's page, narrowed to that user.
    dave = CognitoUserFactory(pool=pool, username="dave", status="UNCONFIRMED")
    page = admin_client.get(reverse("admin:directory_cognitouser_change", args=[dave.pk])).content.decode()
    assert f'href="{url}?username=dave"' in page


@pytest.mark.django_db
def test_admin_messages_page_hidden_outside_local_mode(emu, admin_client, settings, client, django_user_model):
    settings.COGNITO_LOCAL_MODE = False
    pool = _mirrored_pool_with_messages(emu)
    url = reverse("admin:directory_userpool_messages_sent", args=[pool.pk])
    assert admin_client.get(url).status_code == HTTPStatus.NOT_FOUND
    page = admin_client.get(reverse("admin:directory_userpool_change", args=[pool.pk])).content.decode()
    assert "messages-sent" not in page
    user = CognitoUserFactory(pool=pool)
    assert "messages-sent" not in admin_client.get(
        reverse("admin:directory_cognitouser_change", args=[user.pk])
    ).content.decode()

    settings.COGNITO_LOCAL_MODE = True
    staff = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(url).status_code == HTTPStatus.FORBIDDEN
    staff.user_permissions.add(Permission.objects.get(codename="view_userpool"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert client.get(url).status_code == HTTPStatus.OK


@pytest.mark.django_db
def test_view_only_staff_see_no_codes_or_temporary_passwords(emu, admin_client, settings, client, django_user_model):
    settings.COGNITO_LOCAL_MODE = True
    pool = _mirrored_pool_with_messages(emu)
    url = reverse("admin:directory_userpool_messages_sent", args=[pool.pk])
    codes = [m["code"] for m in admin_client.get(url, {"format": "json"}).json()["messages"]]
    assert len(codes) == 2 and all(codes)
    viewer = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_userpool"))
    client.force_login(viewer)
    page = client.get(url).content.decode()
    as_json = client.get(url, {"format": "json"}).content.decode()
    for code in codes:
        assert escape(code) not in page and code not in page and code not in as_json
    assert "Your username is carol and temporary password is ••••••" in page
    viewer.user_permissions.add(Permission.objects.get(codename="resend_code_cognitouser"))
    client.force_login(django_user_model.objects.get(pk=viewer.pk))
    assert all(escape(code) in client.get(url).content.decode() for code in codes)


@pytest.mark.django_db
def test_admin_messages_page_says_when_the_emulator_is_unreachable(admin_client, settings, monkeypatch):
    settings.COGNITO_LOCAL_MODE = True
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", "http://127.0.0.1:9")
    pool = UserPool.objects.create(pool_id="us-east-1_Missing01", region="us-east-1", name="gone")
    response = admin_client.get(reverse("admin:directory_userpool_messages_sent", args=[pool.pk]))
    assert response.status_code == HTTPStatus.OK
    assert "could not be read at http://127.0.0.1:9" in response.content.decode()


def test_command_host_option_serves_the_message_log(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "DJANGO_DEBUG": "true", "PYTHONUNBUFFERED": "1", "COGNITO_ADMIN_VAR_DIR": str(tmp_path)}
    env.pop("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", None)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "cognito_emulator", "--host", "localhost", "--port", str(port)],
        cwd=Path(__file__).resolve().parent.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.strip() == f"Cognito emulator listening on http://localhost:{port}", line
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://localhost:{port}/_emulator/messages", timeout=2) as response:
                    assert json.load(response) == {"count": 0, "messages": []}
                break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_messages_page_in_a_browser_renders_html_sandboxed(emu, live_server, django_user_model, settings):
    """The e-mail's HTML renders inside the frame; the invitation template's <script> never runs."""
    import os
    from pathlib import Path

    from tests.conftest import require_service

    if not os.path.exists("/usr/bin/chromium"):
        require_service("Chromium", "/usr/bin/chromium is missing")
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    settings.COGNITO_LOCAL_MODE = True
    pool = _mirrored_pool_with_messages(emu)
    invite = {"EmailSubject": "Welcome", "EmailMessage": INVITE_HTML, "SMSMessage": "{username} {####}"}
    emu.update_user_pool(
        UserPoolId=pool.pool_id, AutoVerifiedAttributes=["email"],
        AdminCreateUserConfig={"InviteMessageTemplate": invite},
    )
    emu.admin_create_user(
        UserPoolId=pool.pool_id, Username="carol", MessageAction="RESEND", DesiredDeliveryMediums=["EMAIL"]
    )
    django_user_model.objects.create_superuser("operator", "op@example.com", "correct-horse-battery")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            dialogs: list[str] = []
            page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
            page.goto(f"{live_server.url}/admin/login/")
            page.fill("#id_username", "operator")
            page.fill("#id_password", "correct-horse-battery")
            page.click("input[type=submit]")
            page.wait_for_selector("#site-name")
            page.goto(f"{live_server.url}/admin/directory/userpool/{pool.pk}/change/")
            page.click("#messages-sent-link")
            page.wait_for_selector("#messages-sent")
            assert page.locator("#messages-sent tbody tr").count() == 3
            frames = page.locator("#messages-sent iframe")
            assert frames.count() == 2  # the RESEND invitation and the verification e-mail (HTML); the first is text
            invitation = page.frame_locator("#messages-sent iframe").first
            assert "Your username is" in invitation.locator("p").inner_text()
            verification = page.frame_locator("#messages-sent iframe").nth(1)
            assert "Welcome to" in verification.locator("h1").inner_text()
            page.wait_for_timeout(300)
            assert dialogs == []  # the template's <script> did not run
            shots = Path(__file__).resolve().parent.parent / "test-artifacts" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(shots / "messages-sent.png"), full_page=True)
        finally:
            browser.close()
