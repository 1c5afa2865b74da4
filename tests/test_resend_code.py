"""Resend code: the user page's button (in the request) and the `resend_code` action (bulk job through the outbox),
against the emulator (moto + the project's shims). The requests the gateway sends are recorded with a botocore
hook, so the call, its parameters and the SecretHash are checked as Cognito would receive them."""

from __future__ import annotations

import copy
import json
import logging
import threading
from http import HTTPStatus

import boto3
import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.core import serializers
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse

import emulator
from directory import gateway, selectors
from directory.models import AuditEvent, BulkJob, CognitoUser, PendingChange, UserPool
from directory.services import resend as resend_services
from directory.sync.pull import pull_pool
from directory.sync.push import apply_change
from tests.cognito_helpers import inject
from tests.factories import AuditEventFactory, CognitoUserFactory, UserPoolFactory

pytestmark = pytest.mark.django_db

PASSWORD = "Passw0rd!Long"
CHANGELIST = "admin:directory_cognitouser_changelist"
SENDS = {"AdminCreateUser", "ResendConfirmationCode"}


@pytest.fixture
def emu(cognito, monkeypatch):
    """The emulator on a free port; boto3 and the gateway pointed at it (moto's backends were just reset)."""
    server = emulator.start_server(port=0)
    monkeypatch.setenv("AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER", server.endpoint)
    gateway.reset_clients()
    emulator.MESSAGE_LOG.clear()
    yield boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
    server.stop()
    gateway.reset_clients()


@pytest.fixture
def calls(emu):
    """(operation, parameters) of every request the gateway's client sends, in order."""
    recorded: list[tuple[str, dict]] = []

    def hook(params, model, **kwargs):
        recorded.append((model.name, copy.deepcopy(params)))

    client = gateway.get_client("us-east-1")
    client.meta.events.register("before-parameter-build.cognito-identity-provider", hook)
    yield recorded
    client.meta.events.unregister("before-parameter-build.cognito-identity-provider", hook)


def sends(recorded) -> list[tuple[str, dict]]:
    return [(op, params) for op, params in recorded if op in SENDS]


def _attrs(email, name, **more):
    return [{"Name": "email", "Value": email}, {"Name": "name", "Value": name},
            *({"Name": k, "Value": v} for k, v in more.items())]


@pytest.fixture
def world(emu):
    """Pool "shop" (spa client without secret, server client with one): alice CONFIRMED, carol FORCE_CHANGE_PASSWORD
    (e-mail), phil FORCE_CHANGE_PASSWORD (phone only), dave UNCONFIRMED. Pool "vault" has only a secret client and
    erin UNCONFIRMED. Both mirrored by a pull."""
    schema = [
        {"Name": "email", "AttributeDataType": "String", "Required": False, "Mutable": True},
        {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
        {"Name": "phone_number", "AttributeDataType": "String", "Required": False, "Mutable": True},
    ]
    shop_id = emu.create_user_pool(PoolName="shop", AutoVerifiedAttributes=["email"], Schema=schema)["UserPool"]["Id"]
    spa = emu.create_user_pool_client(UserPoolId=shop_id, ClientName="spa")["UserPoolClient"]
    emu.create_user_pool_client(UserPoolId=shop_id, ClientName="backend", GenerateSecret=True)
    emu.admin_create_user(UserPoolId=shop_id, Username="alice", MessageAction="SUPPRESS",
                          UserAttributes=_attrs("alice@example.com", "Alice"))
    emu.admin_set_user_password(UserPoolId=shop_id, Username="alice", Password=PASSWORD, Permanent=True)
    emu.admin_create_user(UserPoolId=shop_id, Username="carol", MessageAction="SUPPRESS",
                          UserAttributes=_attrs("carol@example.com", "Carol"))
    emu.admin_create_user(UserPoolId=shop_id, Username="phil", MessageAction="SUPPRESS",
                          UserAttributes=[{"Name": "name", "Value": "Phil"},
                                          {"Name": "phone_number", "Value": "+15550100007"}])
    emu.sign_up(ClientId=spa["ClientId"], Username="dave", Password=PASSWORD,
                UserAttributes=_attrs("dave@example.com", "Dave"))

    vault_id = emu.create_user_pool(PoolName="vault", AutoVerifiedAttributes=["email"])["UserPool"]["Id"]
    backend = emu.create_user_pool_client(UserPoolId=vault_id, ClientName="server", GenerateSecret=True)
    backend = backend["UserPoolClient"]
    emu.sign_up(ClientId=backend["ClientId"], Username="erin", Password=PASSWORD,
                SecretHash=gateway.secret_hash(backend["ClientSecret"], "erin", backend["ClientId"]),
                UserAttributes=[{"Name": "email", "Value": "erin@example.org"}])
    emulator.MESSAGE_LOG.clear()

    shop = UserPool.objects.create(pool_id=shop_id, region="us-east-1")
    vault = UserPool.objects.create(pool_id=vault_id, region="us-east-1")
    assert pull_pool(pool=shop).status == "succeeded"
    assert pull_pool(pool=vault).status == "succeeded"
    shop.refresh_from_db()
    users = {u.username: u for u in CognitoUser.objects.select_related("pool")}
    assert users["carol"].status == "FORCE_CHANGE_PASSWORD" and users["dave"].status == "UNCONFIRMED"
    return {"shop": shop, "vault": vault, "spa": spa, "backend": backend, **users}


def button(client, user):
    return client.post(reverse("admin:directory_cognitouser_resend_code", args=[user.pk]))


def messages_of(response):
    return [str(m) for m in response.wsgi_request._messages]


def remote(emu, pool, username):
    user = emu.admin_get_user(UserPoolId=pool.pool_id, Username=username)
    return user, {a["Name"]: a["Value"] for a in user["UserAttributes"]}


def log(pool):
    return emulator.MESSAGE_LOG.list(pool_id=pool.pool_id)


# --- The button (in the request) ---------------------------------------------------------------------------


def test_button_force_change_password_resends_the_invitation(admin_client, emu, world, calls):
    shop, carol = world["shop"], world["carol"]
    before, _ = remote(emu, shop, "carol")
    page = admin_client.get(reverse("admin:directory_cognitouser_change", args=[carol.pk])).content.decode()
    assert "Resend invitation" in page

    response = button(admin_client, carol)
    assert response.status_code == HTTPStatus.FOUND
    assert sends(calls) == [("AdminCreateUser", {
        "UserPoolId": shop.pool_id, "Username": "carol", "MessageAction": "RESEND", "DesiredDeliveryMediums": ["EMAIL"],
    })]
    shown = messages_of(response)
    assert any("Invitation with a new temporary password sent again to carol: EMAIL to c***@e***.com" in m
               for m in shown), shown
    # Cognito (the emulator) kept the user and sent a new invitation with a temporary password.
    after, attrs = remote(emu, shop, "carol")
    assert after["UserStatus"] == "FORCE_CHANGE_PASSWORD" and after["UserCreateDate"] == before["UserCreateDate"]
    assert attrs["sub"] == carol.sub
    (invitation,) = log(shop)
    assert invitation["trigger"] == "AdminCreateUser RESEND" and invitation["to"] == "carol@example.com"
    event = AuditEvent.objects.get(action="resend_code", object_id="carol")
    assert event.outcome == "ok" and event.actor == "admin" and event.source == "admin"
    assert event.detail["delivery"] == {
        "DeliveryMedium": "EMAIL", "Destination": "c***@e***.com", "AttributeName": "email",
    }
    assert event.detail["api"] == "AdminCreateUser" and event.detail["message_action"] == "RESEND"
    # The temporary password Cognito generated is nowhere here.
    assert invitation["code"] not in json.dumps(event.detail)
    # The user page shows the latest resend.
    page = admin_client.get(reverse("admin:directory_cognitouser_change", args=[carol.pk])).content.decode()
    assert "c***@e***.com" in page and "AdminCreateUser RESEND" in page


def test_button_phone_only_user_gets_an_sms_invitation(admin_client, emu, world, calls):
    response = button(admin_client, world["phil"])
    assert sends(calls)[0][1]["DesiredDeliveryMediums"] == ["SMS"]
    assert any("SMS to +*******0007" in m for m in messages_of(response))
    assert log(world["shop"])[0]["to"] == "+15550100007"


def test_button_unconfirmed_uses_a_client_without_secret(admin_client, emu, world, calls):
    shop, dave = world["shop"], world["dave"]
    page = admin_client.get(reverse("admin:directory_cognitouser_change", args=[dave.pk])).content.decode()
    assert "Resend confirmation code" in page
    response = button(admin_client, dave)
    # The pool has a client with a secret too: the one without is preferred, so no secret is read at all.
    assert sends(calls) == [("ResendConfirmationCode", {"ClientId": world["spa"]["ClientId"], "Username": "dave"})]
    assert not any(op == "DescribeUserPoolClient" for op, _ in calls)
    assert any(f"Confirmation code sent again to dave: EMAIL to d***@e***.com (ResendConfirmationCode through app "
               f"client {world['spa']['ClientId']})" in m for m in messages_of(response))
    (message,) = log(shop)
    assert message["kind"] == "verification" and message["to"] == "dave@example.com"
    assert remote(emu, shop, "dave")[0]["UserStatus"] == "UNCONFIRMED"
    event = AuditEvent.objects.get(action="resend_code", object_id="dave")
    assert event.detail["delivery"]["Destination"] == "d***@e***.com"
    assert event.detail["client"] == world["spa"]["ClientId"]


def test_secret_client_secret_hash_is_right_and_rests_nowhere(
    admin_client, emu, world, calls, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    vault, erin, backend = world["vault"], world["erin"], world["backend"]
    secret, client_id = backend["ClientSecret"], backend["ClientId"]
    response = button(admin_client, erin)
    expected = gateway.secret_hash(secret, "erin", client_id)
    # Recomputed here from the definition: Base64(HMAC_SHA256(secret, username + client id)).
    import base64
    import hashlib
    import hmac
    assert expected == base64.b64encode(
        hmac.new(secret.encode(), b"erin" + client_id.encode(), hashlib.sha256).digest()
    ).decode()
    assert [op for op, _ in calls] == ["DescribeUserPoolClient", "ResendConfirmationCode"]
    assert calls[1][1] == {"ClientId": client_id, "Username": "erin", "SecretHash": expected}
    assert any("e***@e***.org" in m for m in messages_of(response))
    assert log(vault)[0]["to"] == "erin@example.org"  # the emulator accepted the hash

    # And through the outbox (the bulk action): same call, from the worker.
    calls.clear()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(reverse(CHANGELIST), {"action": "resend_code", "index": 0, "_selected_action": [erin.pk]})
    assert [c for c in calls if c[0] == "ResendConfirmationCode"] == [
        ("ResendConfirmationCode", {"ClientId": client_id, "Username": "erin", "SecretHash": expected})
    ]
    assert PendingChange.objects.get(operation="user.resend_code").status == "applied"

    # Neither the secret nor the hash is in any table or log line.
    dump = "".join(
        serializers.serialize("json", model.objects.all()) for model in apps.get_models() if model._meta.managed
    )
    for value in (secret, expected):
        assert value not in dump
        assert value not in caplog.text
    assert "SecretHash" not in dump


def test_other_states_are_refused_with_the_reason(admin_client, emu, world, calls):
    alice = world["alice"]
    page = admin_client.get(reverse("admin:directory_cognitouser_change", args=[alice.pk])).content.decode()
    assert "Resend invitation" not in page and "Resend confirmation code" not in page
    response = button(admin_client, alice)
    assert response.status_code == HTTPStatus.FOUND
    assert any("alice is CONFIRMED: CONFIRMED users have no pending code; use Reset password." in m
               for m in messages_of(response))
    assert sends(calls) == [] and log(world["shop"]) == []
    assert not AuditEvent.objects.filter(action="resend_code").exists()


@pytest.mark.parametrize(("status", "reason"), [
    ("RESET_REQUIRED", "forgot-password flow"),
    ("EXTERNAL_PROVIDER", "identity provider"),
    ("ARCHIVED", "ARCHIVED users have no pending code or invitation"),
    ("COMPROMISED", "COMPROMISED users have no pending code or invitation"),
    ("UNKNOWN", "UNKNOWN users have no pending code or invitation"),
])
def test_service_refuses_states_without_a_code(status, reason):
    user = CognitoUserFactory(status=status)
    with pytest.raises(ValidationError) as refused:
        resend_services.cognito_user_resend_code(user=user, actor="op")
    assert reason in refused.value.messages[0] and status in refused.value.messages[0]
    assert not AuditEvent.objects.exists()


def test_button_needs_the_permission(client, django_user_model, emu, world, calls):
    staff = django_user_model.objects.create_user("staffer", password="pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_cognitouser"))
    client.force_login(staff)
    carol = world["carol"]
    page = client.get(reverse("admin:directory_cognitouser_change", args=[carol.pk])).content.decode()
    assert "Resend invitation" not in page
    assert button(client, carol).status_code == HTTPStatus.FORBIDDEN
    changelist = client.get(reverse(CHANGELIST)).content.decode()
    assert 'value="resend_code"' not in changelist
    staff.user_permissions.add(Permission.objects.get(codename="resend_code_cognitouser"))
    client.force_login(django_user_model.objects.get(pk=staff.pk))
    assert 'value="resend_code"' in client.get(reverse(CHANGELIST)).content.decode()
    assert button(client, carol).status_code == HTTPStatus.FOUND
    assert sends(calls)[0][0] == "AdminCreateUser"
    assert client.get(reverse("admin:directory_cognitouser_resend_code", args=[carol.pk])).status_code == 405


# --- Guard rails -----------------------------------------------------------------------------------------------


def test_local_per_user_limit(admin_client, emu, world, calls, django_capture_on_commit_callbacks):
    carol = world["carol"]
    for _ in range(resend_services.RESEND_LIMIT_PER_HOUR):
        assert any("sent again to carol" in m for m in messages_of(button(admin_client, carol)))
    calls.clear()
    response = button(admin_client, carol)
    assert any("carol: 5 codes or invitations were already sent in the last hour (limit 5 per user per hour); "
               "try again later." in m for m in messages_of(response)), messages_of(response)
    assert sends(calls) == []
    # The action names her too and queues only the others.
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(CHANGELIST), {
            "action": "resend_code", "index": 0, "_selected_action": [carol.pk, world["dave"].pk],
        })
    shown = messages_of(response)
    assert any("Not sent to 1 user(s) (carol): already 5 codes or invitations in the last hour" in m for m in shown)
    assert [p["Username"] for _, p in sends(calls)] == ["dave"]
    assert BulkJob.objects.get(operation="resend_code").total == 1


@pytest.mark.parametrize(("code", "expected"), [
    ("LimitExceededException", "Cognito's limit of codes for this user is reached (LimitExceededException)"),
    ("CodeDeliveryFailureException", "Cognito could not deliver the message (CodeDeliveryFailureException)"),
])
def test_cognito_errors_become_clear_messages(admin_client, emu, world, code, expected):
    client = gateway.get_client("us-east-1")
    with inject(client, "ResendConfirmationCode", lambda n: True, code=code) as injected:
        response = button(admin_client, world["dave"])
    # A hard limit is not retried (botocore's `standard` mode would: the gateway's retry policy excludes it).
    assert injected["failed"] == (1 if code == "LimitExceededException" else injected["n"])
    shown = messages_of(response)
    assert any(m.startswith("Resend to dave failed: " + expected) for m in shown), shown
    event = AuditEvent.objects.get(action="resend_code", object_id="dave")
    assert event.outcome == "failed" and event.detail["code"] == code
    page = admin_client.get(reverse("admin:directory_cognitouser_change", args=[world["dave"].pk])).content.decode()
    assert expected.replace("'", "&#x27;") in page


def test_default_email_warning_counts_todays_messages(admin_client, emu, world, django_capture_on_commit_callbacks):
    shop = world["shop"]
    assert selectors.uses_cognito_default_email(shop)
    response = button(admin_client, world["carol"])
    assert any("sends e-mail through Cognito's default e-mail" in m and "1 already sent today" in m
               for m in messages_of(response))
    # Mixed selection: alice refused, carol (EMAIL), phil (SMS) and dave (EMAIL) queued.
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(CHANGELIST), {
            "action": "resend_code", "index": 0,
            "_selected_action": [world[n].pk for n in ("alice", "carol", "phil", "dave")],
        })
    shown = messages_of(response)
    assert any("Not sent to 1 CONFIRMED user(s) (alice): CONFIRMED users have no pending code; use Reset password."
               in m for m in shown), shown
    # Counted before the job ran: the button's e-mail only.
    assert any("1 already sent today for this pool" in m for m in shown), shown
    # The SMS to phil does not count against the e-mail quota.
    assert selectors.messages_sent_today(shop) == 3
    # Invitations of test users created here count too (services/test_users.py's `created` events); a
    # suppressed one does not.
    for delivery in ("EMAIL", "SUPPRESS"):
        AuditEventFactory(pool_id=shop.pool_id, action="created", source="admin",
                          detail={"operation": "user.create_test_user", "delivery": delivery})
    assert selectors.messages_sent_today(shop) == 4
    assert "4 already sent today" in selectors.default_email_warning(shop)

    developer = UserPoolFactory(email_configuration={"EmailSendingAccount": "DEVELOPER", "SourceArn": "arn:x"})
    assert selectors.default_email_warning(developer) is None


# --- The action (outbox) -------------------------------------------------------------------------------------


def test_action_on_a_mixed_selection(admin_client, emu, world, calls, django_capture_on_commit_callbacks):
    shop, vault = world["shop"], world["vault"]
    selection = [world[n] for n in ("alice", "carol", "phil", "dave", "erin")]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse(CHANGELIST), {
            "action": "resend_code", "index": 0, "_selected_action": [u.pk for u in selection],
        })
    assert response.status_code == HTTPStatus.FOUND
    shown = messages_of(response)
    assert any("Not sent to 1 CONFIRMED user(s) (alice)" in m for m in shown), shown
    assert any("Resend of codes and invitations queued for 4 user(s)" in m for m in shown), shown
    # One job per pool; the right call for each eligible user, nothing for alice.
    assert sorted(job.total for job in BulkJob.objects.filter(operation="resend_code")) == [1, 3]
    made = {params["Username"]: (op, params) for op, params in sends(calls)}
    assert set(made) == {"carol", "phil", "dave", "erin"}
    assert made["carol"] == ("AdminCreateUser", {
        "UserPoolId": shop.pool_id, "Username": "carol", "MessageAction": "RESEND", "DesiredDeliveryMediums": ["EMAIL"],
    })
    assert made["phil"][1]["DesiredDeliveryMediums"] == ["SMS"]
    assert made["dave"] == ("ResendConfirmationCode", {"ClientId": world["spa"]["ClientId"], "Username": "dave"})
    assert made["erin"][0] == "ResendConfirmationCode" and "SecretHash" in made["erin"][1]
    # Cognito sent them (the emulator's log) and the applied events carry the delivery details.
    assert sorted(m["to"] for m in log(shop)) == ["+15550100007", "carol@example.com", "dave@example.com"]
    assert [m["to"] for m in log(vault)] == ["erin@example.org"]
    for name, destination in (("carol", "c***@e***.com"), ("phil", "+*******0007"), ("dave", "d***@e***.com")):
        requested = AuditEvent.objects.get(action="requested", object_id=name, detail__operation="user.resend_code")
        applied = AuditEvent.objects.get(action="applied", correlation_id=requested.correlation_id)
        assert applied.detail["delivery"]["Destination"] == destination
        assert applied.changes == {"code_sent": [False, True]}
        page = admin_client.get(reverse("admin:directory_cognitouser_change", args=[world[name].pk])).content.decode()
        assert destination in page
    assert PendingChange.objects.filter(operation="user.resend_code", status="applied").count() == 4
    # Users kept: same sub, still waiting for their first sign-in / confirmation.
    assert remote(emu, shop, "carol")[1]["sub"] == world["carol"].sub
    assert remote(emu, shop, "dave")[0]["UserStatus"] == "UNCONFIRMED"


def test_worker_follows_the_status_in_cognito(emu, world, django_capture_on_commit_callbacks, calls):
    """Queued while UNCONFIRMED, confirmed in Cognito before the worker runs: failed with the reason, nothing sent."""
    shop, dave = world["shop"], world["dave"]
    with django_capture_on_commit_callbacks(execute=False):
        change = resend_services.cognito_user_resend_code_request(user=dave, actor="op")
    emu.admin_confirm_sign_up(UserPoolId=shop.pool_id, Username="dave")
    change = apply_change(change.pk)
    assert change.status == "failed"
    assert "dave is CONFIRMED: CONFIRMED users have no pending code" in change.last_error
    assert sends(calls) == [] and log(shop) == []
    failed = AuditEvent.objects.get(action="failed", correlation_id=str(change.correlation_id))
    assert "CONFIRMED users have no pending code" in failed.detail["error"]
    # The mirror caught up with Cognito.
    assert CognitoUser.objects.get(pk=dave.pk).status == "CONFIRMED"
    # A second request while one is queued is not queued twice.
    with django_capture_on_commit_callbacks(execute=False):
        first = resend_services.cognito_user_resend_code_request(user=world["carol"], actor="op")
        again = resend_services.cognito_user_resend_code_request(user=world["carol"], actor="op")
    assert first is not None and again is None


@pytest.mark.django_db(transaction=True)
def test_simultaneous_clicks_send_no_more_than_the_limit(emu, world, calls):
    """Twenty operators click "Resend" for the same user at once: the per-user limit holds."""
    carol = world["carol"]
    clicks = 20
    start = threading.Barrier(clicks)
    outcomes: list[str] = []

    def click() -> None:
        try:
            user = CognitoUser.objects.select_related("pool").get(pk=carol.pk)
            start.wait(timeout=30)
            resend_services.cognito_user_resend_code(user=user, actor="op")
            outcomes.append("sent")
        except ValidationError:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(clicks)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(outcomes) == ["refused"] * (clicks - resend_services.RESEND_LIMIT_PER_HOUR) + [
        "sent"
    ] * resend_services.RESEND_LIMIT_PER_HOUR
    assert len(sends(calls)) == resend_services.RESEND_LIMIT_PER_HOUR
    assert AuditEvent.objects.filter(action="resend_code", object_id="carol").count() == (
        resend_services.RESEND_LIMIT_PER_HOUR
    )
