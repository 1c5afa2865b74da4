"""The small things: test-user defaults as the README says (e-mail where the pool can send it, no
expiry unless chosen), flash messages that name users as operators know them and say truthfully
whether the change is applied, a favicon, and a 403 logged as one line."""

from __future__ import annotations

import logging
import re
from http import HTTPStatus

import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

import emulator
from directory.models import CognitoUser, PendingChange, UserPool
from directory.services.test_users import default_delivery
from directory.sync.pull import pull_pool
from tests.cognito_helpers import create_pool, create_user
from tests.factories import UserPoolFactory


def _mirror(pool_id: str) -> UserPool:
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    return pool


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- Test users: the README's defaults ------------------------------------------------------------------


@pytest.mark.django_db
def test_create_test_user_form_defaults_to_email_and_no_expiry(admin_client, emu):
    pool = _mirror(create_pool(emu, name="eshop", email_username=True))
    page = admin_client.get(reverse("admin:directory_userpool_create_test_user", args=[pool.pk]))
    html = page.content.decode()
    assert re.search(r'<option value="EMAIL" selected>', html)
    expires = re.search(r'<input[^>]*name="expires_in_days"[^>]*>', html).group(0)
    assert "value=" not in expires
    form = page.context["form"]
    assert form["delivery"].value() == "EMAIL" and form["expires_in_days"].value() is None

    # Submitting what the form offers: Cognito e-mails the invitation, and the user never expires.
    response = admin_client.post(
        reverse("admin:directory_userpool_create_test_user", args=[pool.pk]),
        {"email": "qa-default@example.com", "name": "QA Default", "delivery": form["delivery"].value(),
         "expires_in_days": ""},
    )
    assert response.status_code == HTTPStatus.OK, response.context["form"].errors
    user = CognitoUser.objects.get(pool=pool, email="qa-default@example.com")
    assert user.is_test_user and user.test_user_expires_at is None
    sent = emulator.MESSAGE_LOG.list(pool_id=pool.pool_id)
    assert [m for m in sent if "qa-default@example.com" in (m.get("to"), m.get("destination"))], sent


@pytest.mark.django_db
def test_default_delivery_follows_what_the_pool_can_send():
    assert default_delivery(UserPoolFactory(username_attributes=["email"])) == "EMAIL"
    assert default_delivery(UserPoolFactory(username_attributes=[], alias_attributes=[], schema=[],
                                            auto_verified_attributes=["email"])) == "EMAIL"
    phone = {"username_attributes": ["phone_number"], "auto_verified_attributes": ["phone_number"], "schema": []}
    assert default_delivery(UserPoolFactory(**phone, sms_configuration={"SnsCallerArn": "arn:aws:iam::1:role/sms"})) \
        == "SMS"
    assert default_delivery(UserPoolFactory(**phone, sms_configuration={})) == "SUPPRESS"  # cannot send SMS
    assert default_delivery(UserPoolFactory(username_attributes=[], auto_verified_attributes=[], schema=[])) \
        == "SUPPRESS"  # users have neither


@pytest.mark.django_db
def test_bulk_form_does_not_spend_the_default_senders_day(admin_client):
    own_ses = UserPoolFactory(email_configuration={"EmailSendingAccount": "DEVELOPER"})
    default = UserPoolFactory(email_configuration={"EmailSendingAccount": "COGNITO_DEFAULT"})
    for pool, wanted in ((own_ses, "EMAIL"), (default, "SUPPRESS")):
        page = admin_client.get(reverse("admin:directory_userpool_create_test_users", args=[pool.pk]))
        form = page.context["form"]
        assert form["delivery"].value() == wanted and form["expires_in_days"].value() is None
    assert "50 messages a day" in form.fields["delivery"].help_text


# --- Flash messages ---------------------------------------------------------------------------------------


@pytest.fixture
def shop_user(emu):
    pool_id = create_pool(emu, name="eshop", email_username=True)
    create_user(emu, pool_id, "ana@example.com", email="ana@example.com", name="Ana")
    pool = _mirror(pool_id)
    user = CognitoUser.objects.get(pool=pool)
    assert re.fullmatch(r"[0-9a-f-]{36}", user.username)  # Cognito's username here is the sub
    return user


@pytest.mark.django_db(transaction=True)
def test_message_names_the_user_by_email_and_says_applied(django_user_model, client, emu, shop_user):
    client.force_login(django_user_model.objects.create_superuser("ops", "ops@example.com", "pw"))
    response = client.post(reverse("admin:directory_cognitouser_disable", args=[shop_user.pk]))
    assert response.status_code == HTTPStatus.FOUND
    # CELERY_TASK_ALWAYS_EAGER: the change was applied before the redirect, and the message says so.
    assert PendingChange.objects.get().status == PendingChange.Status.APPLIED
    assert emu.admin_get_user(UserPoolId=shop_user.pool.pool_id, Username=shop_user.username)["Enabled"] is False
    assert _messages(response) == ["Disable ana@example.com: applied in Cognito."]


@pytest.mark.django_db
def test_message_says_on_its_way_while_the_change_waits(admin_client, emu, shop_user):
    # In this test's transaction nothing is committed, so no worker gets the change.
    response = admin_client.post(reverse("admin:directory_cognitouser_disable", args=[shop_user.pk]))
    [message] = _messages(response)
    assert message.startswith("Disable ana@example.com: on its way to Cognito")
    assert shop_user.username not in message and "(pending)" not in message
    assert emu.admin_get_user(UserPoolId=shop_user.pool.pool_id, Username=shop_user.username)["Enabled"] is True
    # Nothing to do: still named by the e-mail address.
    response = admin_client.post(reverse("admin:directory_cognitouser_disable", args=[shop_user.pk]))
    assert _messages(response)[-1] == "Nothing to do: ana@example.com is already in that state."


@pytest.mark.django_db
def test_a_username_pool_names_users_by_username():
    pool = UserPoolFactory(username_attributes=[])
    user = CognitoUser.objects.create(pool=pool, username="carol", sub="8c2b6f4e-1111-4a4a-9b9b-123456789abc",
                                      email="carol@example.com")
    assert user.label == "carol"
    opaque = CognitoUser.objects.create(pool=pool, username="0f6e3a52-2222-4b4b-8c8c-abcdefabcdef", sub="x",
                                        phone_number="+14155550100")
    assert opaque.label == "+14155550100"


# --- Favicon and 403s -------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_favicon_is_served_and_linked(client, admin_client):
    response = client.get("/favicon.ico")
    assert response.status_code == HTTPStatus.FOUND
    icon = client.get(response["Location"])
    assert icon.status_code == HTTPStatus.OK
    body = b"".join(icon.streaming_content) if icon.streaming else icon.content
    assert icon["Content-Type"].startswith("image/svg+xml") and body.startswith(b"<svg")
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert f'<link rel="icon" href="{response["Location"]}" type="image/svg+xml">' in page


@pytest.mark.django_db
def test_permission_refusal_is_logged_as_one_line(client, django_user_model, caplog):
    pool = UserPoolFactory()
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_userpool"))
    client.force_login(staff)
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.get(reverse("admin:directory_userpool_create_test_user", args=[pool.pk]))
    assert response.status_code == HTTPStatus.FORBIDDEN
    [record] = [r for r in caplog.records if r.name == "django.request"]
    assert record.exc_info is None and record.status_code == HTTPStatus.FORBIDDEN
    line = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]).format(record)
    assert "\n" not in line and "Traceback" not in line
    assert line.endswith(f"Forbidden (Permission denied): {response.wsgi_request.path}")
