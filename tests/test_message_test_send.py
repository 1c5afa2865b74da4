"""In local mode a "test send" shows the verification e-mail a sign-up would get with the
saved template, in the emulator's message log; outside local mode it does not exist."""

from __future__ import annotations

import re
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from directory import message_templates as m
from directory.models import AuditEvent, CognitoUser, UserPool
from directory.services import templates as templates_service
from directory.sync.pull import pull_pool
from emulator import ESHOP_VERIFICATION_HTML
from tests.cognito_helpers import make_client, make_pool

MARKER = "TEST-SEND-MARKER"


def _mirrored(emu, *, secret: bool) -> UserPool:
    pool_id = make_pool(emu)
    make_client(emu, pool_id, secret=secret)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1", name="shop")
    run = pull_pool(pool=pool)
    assert run.status == "succeeded", run.error
    pool.refresh_from_db()
    return pool


def _save_template(pool: UserPool, django_capture_on_commit_callbacks) -> None:
    templates = m.templates_from_pool(pool)
    templates["VerificationMessageTemplate"] = {
        **templates.get("VerificationMessageTemplate", {}),
        "DefaultEmailOption": "CONFIRM_WITH_CODE",
        "EmailSubject": f"{MARKER} subject",
        "EmailMessage": ESHOP_VERIFICATION_HTML.replace("{####}", MARKER + " {####}"),
    }
    with django_capture_on_commit_callbacks(execute=True):
        version = templates_service.pool_messages_update(pool=pool, templates=templates, actor="admin")
    version.refresh_from_db()
    assert version.outcome == "applied"


@pytest.mark.django_db
@pytest.mark.parametrize("secret", [False, True], ids=["spa-client", "secret-client"])
def test_test_send_renders_the_saved_template_in_the_message_log(
    emu, admin_client, settings, django_capture_on_commit_callbacks, secret
):
    settings.COGNITO_LOCAL_MODE = True
    pool = _mirrored(emu, secret=secret)
    _save_template(pool, django_capture_on_commit_callbacks)
    url = reverse("admin:directory_userpool_messages_test_send", args=[pool.pk])
    assert url == f"/admin/directory/userpool/{pool.pk}/messages/test-send/"
    editor = admin_client.get(reverse("admin:directory_userpool_messages", args=[pool.pk])).content.decode()
    assert f'action="{url}"' in editor

    response = admin_client.post(url, follow=True)
    assert response.status_code == HTTPStatus.OK
    assert "sent" in response.context, [str(x) for x in response.context["messages"]]
    sent = response.context["sent"]
    assert len(sent) == 1
    (message,) = sent
    assert message["kind"] == "verification" and message["to"].startswith("test-send+")
    assert message["subject"] == f"{MARKER} subject"
    assert re.fullmatch(r"\d{6}", message["code"])
    assert f"{MARKER} {message['code']}" in message["body"] and "{####}" not in message["body"]
    html = response.content.decode()
    assert "Signed up test-send" in html and "The user was deleted again" in html
    # The throwaway user is gone from Cognito and never reaches the mirror.
    assert emu.list_users(UserPoolId=pool.pool_id)["Users"] == []
    assert pull_pool(pool=pool).status == "succeeded"
    assert not CognitoUser.objects.filter(pool=pool).exists()
    event = AuditEvent.objects.get(action="test_send", object_id=pool.pool_id)
    assert event.actor == "admin" and event.detail["username"] == message["username"]
    assert "ClientSecret" not in str(event.detail) and "SecretHash" not in str(event.detail)


@pytest.mark.django_db
def test_test_send_exists_only_in_local_mode_and_needs_the_permission(
    emu, admin_client, client, django_user_model, settings
):
    settings.COGNITO_LOCAL_MODE = False
    pool = _mirrored(emu, secret=False)
    url = reverse("admin:directory_userpool_messages_test_send", args=[pool.pk])
    assert admin_client.post(url).status_code == HTTPStatus.NOT_FOUND
    assert 'id="messages-test-send"' not in admin_client.get(
        reverse("admin:directory_userpool_messages", args=[pool.pk])
    ).content.decode()
    assert emu.list_users(UserPoolId=pool.pool_id)["Users"] == []

    settings.COGNITO_LOCAL_MODE = True
    staff = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_userpool"))
    client.force_login(staff)
    assert client.post(url).status_code == HTTPStatus.FORBIDDEN
    assert admin_client.get(url).status_code == HTTPStatus.METHOD_NOT_ALLOWED
    assert emu.list_users(UserPoolId=pool.pool_id)["Users"] == []
