"""Deleting pools and app clients in Cognito through the admin, discovering pools (the button and beat's
task), pools gone from Cognito, and an app client's integration panel — against the emulator."""

from __future__ import annotations

import datetime as dt
import json
import re
import urllib.request
from html import unescape
from http import HTTPStatus

import jwt
import pytest
from botocore.exceptions import ClientError
from django.contrib.auth.models import Permission
from django.urls import reverse
from django_celery_beat.models import PeriodicTask
from django_celery_beat.schedulers import ModelEntry

from cognito_admin import celery_app
from directory import gateway, tasks
from directory.models import AppClient, AuditEvent, CognitoGroup, CognitoUser, GroupMembership, PendingChange, UserPool
from directory.sync import schedule
from directory.sync.pull import pull_pool
from tests.cognito_helpers import create_pool, create_user, inject

pytestmark = pytest.mark.django_db

PASSWORD = "Passw0rd!Long1"


def code_of(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


@pytest.fixture
def remote(emu):
    """A pool in the emulator signing in by e-mail, with two users, a group and two app clients
    (a single-page app without a secret, a server app with one), mirrored by a pull."""
    pool_id = create_pool(emu, name="webchat", email_username=True)
    spa = emu.create_user_pool_client(
        UserPoolId=pool_id, ClientName="chatapp",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    web = emu.create_user_pool_client(
        UserPoolId=pool_id, ClientName="server", GenerateSecret=True,
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    ann = create_user(emu, pool_id, "ann@example.com", email="ann@example.com", name="Ann")
    create_user(emu, pool_id, "bob@example.com", email="bob@example.com", name="Bob")
    emu.create_group(UserPoolId=pool_id, GroupName="admins")
    emu.admin_add_user_to_group(UserPoolId=pool_id, Username=ann["Username"], GroupName="admins")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    return {"pool": pool, "spa": spa, "web": web, "ann": ann}


def staff_with(django_user_model, client, *codenames: str):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="directory", codename__in=codenames))
    client.force_login(user)
    return user


def page_text(response) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# --- Deleting an app client -----------------------------------------------------------------------------


def test_delete_app_client_in_cognito_keeps_its_history(admin_client, emu, remote):
    pool, spa = remote["pool"], remote["spa"]
    client = AppClient.objects.get(client_id=spa["ClientId"])
    url = reverse("admin:directory_appclient_delete", args=[client.pk])
    page = admin_client.get(url)
    assert page.status_code == HTTPStatus.OK
    text = page_text(page)
    assert "chatapp" in text and spa["ClientId"] in text and "stop signing in" in text
    assert "The pool, its users and its groups stay" in text

    response = admin_client.post(url, {"confirm": "yes"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:directory_userpool_change", args=[pool.pk])
    assert f"App client chatapp ({spa['ClientId']}) was deleted in Cognito." in messages_of(response)
    with pytest.raises(ClientError) as exc:
        emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=spa["ClientId"])
    assert code_of(exc) == "ResourceNotFoundException"
    # The other client, the pool and its users are untouched, in Cognito and in the mirror.
    assert emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=remote["web"]["ClientId"])
    assert not AppClient.objects.filter(client_id=spa["ClientId"]).exists()
    assert AppClient.objects.filter(pool=pool).count() == 1 and CognitoUser.objects.filter(pool=pool).count() == 2
    event = AuditEvent.objects.get(action="deleted", object_type="app_client")
    assert (event.object_id, event.actor, event.source) == (spa["ClientId"], "admin", "admin")
    assert event.pool_id == pool.pool_id
    # The audit history stays browsable: the log filtered by the pool, and the pool's page.
    log = admin_client.get(reverse("admin:directory_auditevent_changelist") + f"?pool_id={pool.pool_id}")
    assert spa["ClientId"] in page_text(log)
    assert spa["ClientId"] in page_text(admin_client.get(reverse("admin:directory_userpool_change", args=[pool.pk])))
    # A pull afterwards agrees with the mirror: nothing to remove.
    assert pull_pool(pool=pool).status == "succeeded"
    assert AppClient.objects.filter(pool=pool).count() == 1


def test_client_deletion_fails_its_pending_changes_and_cognito_errors_are_words(admin_client, emu, remote):
    pool, web = remote["pool"], remote["web"]
    client = AppClient.objects.get(client_id=web["ClientId"])
    url = reverse("admin:directory_appclient_delete", args=[client.pk])
    with inject(gateway.get_client("us-east-1"), "DeleteUserPoolClient", lambda n: True,
                code="ConcurrentModificationException"):
        response = admin_client.post(url, {"confirm": "yes"})
    assert response.status_code == HTTPStatus.OK
    assert "App client server was not deleted. Someone else is changing it right now" in page_text(response)
    assert AppClient.objects.filter(pk=client.pk).exists()
    assert not AuditEvent.objects.filter(action="deleted").exists()

    change = PendingChange.objects.create(
        pool=pool, object_type="app_client", object_key=web["ClientId"], operation="client.update",
        payload={"after": {}}, before={}, fields=[],
    )
    assert admin_client.post(url, {"confirm": "yes"}).status_code == HTTPStatus.FOUND
    change.refresh_from_db()
    assert change.status == "failed" and change.last_error == "The app client was deleted."


# --- Deleting a pool ----------------------------------------------------------------------------------------


def test_delete_pool_after_typing_its_name(admin_client, emu, remote):
    pool = remote["pool"]
    url = reverse("admin:directory_userpool_delete", args=[pool.pk])
    change_page = admin_client.get(reverse("admin:directory_userpool_change", args=[pool.pk]))
    assert f'href="{url}"' in change_page.content.decode()  # Django's Delete link leads here
    page = admin_client.get(url)
    assert page.status_code == HTTPStatus.OK
    text = page_text(page)
    assert "2 users mirrored here (Cognito estimates 2)" in text
    assert "2 app clients: chatapp" in text and "server (" in text and "apps using them stop signing in" in text
    assert "1 group and their memberships" in text and "Deletion protection in Cognito: INACTIVE" in text

    # A wrong name: a field error, nothing deleted anywhere.
    wrong = admin_client.post(url, {"confirm_name": "WebChat"})
    assert wrong.status_code == HTTPStatus.OK
    assert wrong.context["form"].errors["confirm_name"] == [
        "That is not this pool's name. Type webchat exactly (case and spaces count)."
    ]
    assert emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]["Name"] == "webchat"
    assert UserPool.objects.get(pk=pool.pk).deleted_at is None and CognitoUser.objects.filter(pool=pool).count() == 2

    imported = AuditEvent.objects.filter(pool_id=pool.pool_id, action="imported").count()
    response = admin_client.post(url, {"confirm_name": "webchat"}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("admin:directory_userpool_change", args=[pool.pk])
    assert any("was deleted in Cognito, with 2 user(s), 2 app client(s) and 1 group(s)" in m
               for m in messages_of(response))
    with pytest.raises(ClientError) as exc:
        emu.describe_user_pool(UserPoolId=pool.pool_id)
    assert code_of(exc) == "ResourceNotFoundException"
    # The mirror: the pool row is kept, marked gone; what went with it is gone.
    pool.refresh_from_db()
    assert pool.deleted_at is not None and pool.deleted_reason == "Deleted here by admin"
    assert not CognitoUser.objects.filter(pool=pool).exists() and not AppClient.objects.filter(pool=pool).exists()
    assert not CognitoGroup.objects.filter(pool=pool).exists() and not GroupMembership.objects.exists()
    # The history stays: the baseline events, and the deletion by the operator with what went.
    assert AuditEvent.objects.filter(pool_id=pool.pool_id, action="imported").count() == imported > 0
    event = AuditEvent.objects.get(pool_id=pool.pool_id, action="deleted", object_type="pool")
    assert event.actor == "admin" and event.source == "admin"
    assert event.detail["removed"] == {"users": 2, "groups": 1, "app_clients": 2, "pending_changes": 0}
    text = page_text(response)
    assert "This pool is gone from Cognito since" in text and "Deleted here by admin" in text
    assert "imported" in text and "deleted" in text  # the pool's history table
    assert "Sync now" not in text and "Edit settings" not in text and f'href="{url}"' not in response.content.decode()
    listing = page_text(admin_client.get(reverse("admin:directory_userpool_changelist")))
    assert "gone since" in listing
    # Gone pools are not pulled on a schedule, and a sync task for one does nothing.
    assert pool.pk not in schedule.due_pool_pks()
    assert tasks.sync_pool(pool.pk) is None
    # Deleting again is refused in words, not tried.
    again = admin_client.get(url, follow=True)
    assert f"{pool} is already gone from Cognito." in messages_of(again)
    # So are the pages that would change it in Cognito, typed by hand: a message, not a form.
    for view in ("settings", "messages", "create_test_user", "schedule"):
        page = admin_client.get(reverse(f"admin:directory_userpool_{view}", args=[pool.pk]), follow=True)
        assert page.redirect_chain[-1][0] == reverse("admin:directory_userpool_change", args=[pool.pk]), view
        assert any("is gone from Cognito" in m and "only its history" in m for m in messages_of(page)), view
    before = PendingChange.objects.count()
    admin_client.post(reverse("admin:directory_userpool_settings", args=[pool.pk]), {"minimum_length": "12"})
    assert PendingChange.objects.count() == before


def test_pool_with_deletion_protection_is_refused_reading_cognito_now(admin_client, emu, remote):
    pool = remote["pool"]
    # Protection switched on in Cognito after the last pull: the mirror still says INACTIVE.
    described = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    request = gateway.full_update_request("UpdateUserPool", described, gateway.CognitoGateway("us-east-1")
                                          .accepted_keys("UpdateUserPool"))
    emu.update_user_pool(**{**request, "DeletionProtection": "ACTIVE"})
    assert pool.deletion_protection in ("", "INACTIVE")
    url = reverse("admin:directory_userpool_delete", args=[pool.pk])
    page = admin_client.get(url)
    text = page_text(page)
    assert "Deletion protection is ACTIVE for webchat in Cognito (read just now)" in text
    assert "the mirror still says INACTIVE" in text and 'name="confirm_name"' not in page.content.decode()

    response = admin_client.post(url, {"confirm_name": "webchat"})
    assert response.status_code == HTTPStatus.OK
    assert "webchat has deletion protection ACTIVE in Cognito: turn it off" in page_text(response)
    assert emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]["Id"] == pool.pool_id
    assert UserPool.objects.get(pk=pool.pk).deleted_at is None and CognitoUser.objects.filter(pool=pool).count() == 2
    assert not AuditEvent.objects.filter(action="deleted").exists()
    # The emulator refuses as Cognito does, whoever asks.
    with pytest.raises(ClientError) as exc:
        emu.delete_user_pool(UserPoolId=pool.pool_id)
    assert code_of(exc) == "InvalidParameterException" and "deletion protection" in str(exc.value)


def test_cognitos_refusal_at_the_last_moment_is_shown_in_words(admin_client, emu, remote):
    """Protection turned on between our DescribeUserPool and DeleteUserPool: Cognito's refusal, in words."""
    pool = remote["pool"]
    url = reverse("admin:directory_userpool_delete", args=[pool.pk])
    with inject(gateway.get_client("us-east-1"), "DeleteUserPool", lambda n: True, code="InvalidParameterException"):
        response = admin_client.post(url, {"confirm_name": "webchat"})
    assert response.status_code == HTTPStatus.OK
    assert "Pool webchat was not deleted. Cognito refused the deletion: injected" in page_text(response)
    assert emu.describe_user_pool(UserPoolId=pool.pool_id)
    assert UserPool.objects.get(pk=pool.pk).deleted_at is None


# --- Permissions and the changelist's bulk delete --------------------------------------------------------


def test_staff_without_the_delete_permission_get_403(client, django_user_model, emu, remote):
    pool = remote["pool"]
    app = AppClient.objects.get(client_id=remote["spa"]["ClientId"])
    staff_with(django_user_model, client, "view_userpool", "view_appclient", "change_appclient")
    pool_url = reverse("admin:directory_userpool_delete", args=[pool.pk])
    client_url = reverse("admin:directory_appclient_delete", args=[app.pk])
    assert client.get(pool_url).status_code == HTTPStatus.FORBIDDEN
    assert client.post(pool_url, {"confirm_name": "webchat"}).status_code == HTTPStatus.FORBIDDEN
    assert client.get(client_url).status_code == HTTPStatus.FORBIDDEN
    assert client.post(client_url, {"confirm": "yes"}).status_code == HTTPStatus.FORBIDDEN
    assert emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=app.client_id)
    assert AppClient.objects.filter(pk=app.pk).exists() and not AuditEvent.objects.filter(action="deleted").exists()
    # Nor does their change page offer the deletion.
    page = client.get(reverse("admin:directory_appclient_change", args=[app.pk])).content.decode()
    assert "/delete/" not in page


@pytest.mark.parametrize("model", ["userpool", "appclient"])
def test_the_changelist_delete_action_cannot_bypass_cognito(client, django_user_model, emu, remote, model):
    pool = remote["pool"]
    staff_with(django_user_model, client, f"view_{model}", f"delete_{model}")
    row = pool if model == "userpool" else AppClient.objects.get(client_id=remote["spa"]["ClientId"])
    changelist = reverse(f"admin:directory_{model}_changelist")
    listing = client.get(changelist)
    form = listing.context.get("action_form")
    offered = {value for value, _ in form.fields["action"].choices if value} if form else set()
    assert "delete_selected" not in offered
    response = client.post(changelist, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"})
    assert response.status_code in (HTTPStatus.OK, HTTPStatus.FOUND)
    assert type(row).objects.filter(pk=row.pk).exists()
    assert emu.describe_user_pool(UserPoolId=pool.pool_id)
    assert emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=remote["spa"]["ClientId"])
    assert UserPool.objects.get(pk=pool.pk).deleted_at is None
    # With the permission, the Cognito-aware page is where deletion is.
    assert client.get(reverse(f"admin:directory_{model}_delete", args=[row.pk])).status_code == HTTPStatus.OK


# --- Discovery --------------------------------------------------------------------------------------------


def test_discover_button_finds_new_pools_and_marks_deleted_ones_gone(
    admin_client, emu, remote, django_capture_on_commit_callbacks
):
    known = remote["pool"]
    changelist = reverse("admin:directory_userpool_changelist")
    url = reverse("admin:directory_userpool_discover")
    assert 'id="discover-pools-form"' in admin_client.get(changelist).content.decode()
    assert admin_client.get(url).status_code == HTTPStatus.METHOD_NOT_ALLOWED

    # Created directly in Cognito: found, registered, pulled (tasks run eagerly under pytest).
    new_id = create_pool(emu, name="notes-app")
    emu.create_user_pool_client(UserPoolId=new_id, ClientName="notes-server")
    create_user(emu, new_id, "carol", email="carol@example.com", name="Carol")
    with django_capture_on_commit_callbacks(execute=True) as pulls:
        response = admin_client.post(url, follow=True)
    assert len(pulls) == 1  # the new pool's pull, enqueued once the row is committed
    assert "Discovery: 2 pools found, 1 new, 0 gone." in messages_of(response)
    new = UserPool.objects.get(pool_id=new_id)
    assert new.name == "notes-app" and new.last_synced_at is not None
    assert AppClient.objects.get(pool=new).name == "notes-server"
    assert CognitoUser.objects.get(pool=new).username == "carol"
    event = AuditEvent.objects.get(action="discovered")
    assert (event.object_id, event.actor, event.source) == (new_id, "admin", "discovery")

    # Deleted directly in Cognito: marked gone, with its history, not dropped.
    emu.delete_user_pool(UserPoolId=known.pool_id)
    response = admin_client.post(url, follow=True)
    assert "Discovery: 1 pool found, 0 new, 1 gone." in messages_of(response)
    known.refresh_from_db()
    assert known.deleted_at is not None and known.deleted_reason == "Not found in Cognito by discovery"
    assert not CognitoUser.objects.filter(pool=known).exists()
    gone = AuditEvent.objects.get(action="deleted", object_type="pool")
    assert (gone.object_id, gone.source, gone.actor) == (known.pool_id, "discovery", "admin")
    assert AuditEvent.objects.filter(pool_id=known.pool_id, action="imported").exists()
    assert "gone since" in page_text(response)  # the pools list shows it
    assert known.pk not in schedule.due_pool_pks()
    # Idempotent: once more, nothing new and nothing gone.
    assert "Discovery: 1 pool found, 0 new, 0 gone." in messages_of(admin_client.post(url, follow=True))


def test_discover_needs_its_own_permission(client, django_user_model, emu):
    create_pool(emu, name="alpha")
    staff_with(django_user_model, client, "view_userpool", "sync_userpool")
    url = reverse("admin:directory_userpool_discover")
    assert client.post(url).status_code == HTTPStatus.FORBIDDEN
    assert 'id="discover-pools-form"' not in client.get(reverse("admin:directory_userpool_changelist")).content.decode()
    assert not UserPool.objects.exists()
    client.logout()
    staff_with_discover = django_user_model.objects.create_user("finder", password="pw", is_staff=True)
    staff_with_discover.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_userpool", "discover_userpool"])
    )
    client.force_login(staff_with_discover)
    assert client.post(url).status_code == HTTPStatus.FOUND
    assert UserPool.objects.get().name == "alpha"


def test_beat_task_discovers_and_marks_gone_a_pool_that_reappears_is_unmarked(
    emu, settings, django_capture_on_commit_callbacks
):
    settings.COGNITO_REGIONS = ["us-east-1", "eu-west-1"]
    alpha = create_pool(emu, name="alpha")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.discover_pools() == "1 pool found, 1 new, 0 gone"
    pool = UserPool.objects.get(pool_id=alpha)
    assert pool.last_synced_at is not None  # pulled
    assert AuditEvent.objects.get(action="discovered").source == "discovery"

    emu.delete_user_pool(UserPoolId=alpha)
    assert tasks.discover_pools() == "0 pools found, 0 new, 1 gone"
    pool.refresh_from_db()
    assert pool.is_gone and AuditEvent.objects.get(action="deleted").actor == ""

    # Marked gone by mistake (say, listed late): seen again, it is unmarked and pulled again.
    beta = create_pool(emu, name="beta")
    back = UserPool.objects.create(pool_id=beta, region="us-east-1", name="beta", deleted_at=dt.datetime.now(dt.UTC),
                                   deleted_reason="Not found in Cognito by discovery")
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.discover_pools() == "1 pool found, 0 new, 0 gone, 1 back"
    back.refresh_from_db()
    assert not back.is_gone and back.last_synced_at is not None
    assert AuditEvent.objects.get(action="reappeared").object_id == beta


def test_discovery_leaves_pools_alone_when_cognito_cannot_say(emu, remote):
    """A pool missing from a listing is described first; only ResourceNotFoundException makes it gone."""
    pool = remote["pool"]
    with inject(gateway.get_client("us-east-1"), "ListUserPools", lambda n: True, code="InternalErrorException"):
        summary = tasks.discover_pools()
    assert summary.startswith(
        "0 pools found, 0 new, 0 gone; could not check: us-east-1 (list_user_pools: InternalErrorException"
    )
    with inject(gateway.get_client("us-east-1"), "DescribeUserPool", lambda n: True, code="NotAuthorizedException"):
        emu.delete_user_pool(UserPoolId=pool.pool_id)
        summary = tasks.discover_pools()
    assert summary.startswith(
        f"0 pools found, 0 new, 0 gone; could not check: {pool.pool_id} (describe_user_pool: NotAuthorizedException"
    )
    assert UserPool.objects.get(pk=pool.pk).deleted_at is None


def test_the_discovery_periodic_task_exists_with_the_configured_interval(settings):
    entry = settings.CELERY_BEAT_SCHEDULE["discover-pools"]
    assert entry["task"] == "directory.tasks.discover_pools" == tasks.discover_pools.name
    assert entry["schedule"] == dt.timedelta(minutes=settings.COGNITO_DISCOVERY_INTERVAL_MINUTES)
    assert settings.COGNITO_DISCOVERY_INTERVAL_MINUTES == 15
    # Beat's DatabaseScheduler turns each schedule entry into a PeriodicTask row at start.
    ModelEntry.from_entry("discover-pools", app=celery_app, **entry)
    task = PeriodicTask.objects.get(name="discover-pools")
    assert task.task == "directory.tasks.discover_pools" and task.enabled
    assert (task.interval.every, task.interval.period) == (15 * 60, "seconds")


# --- The integration panel -----------------------------------------------------------------------------


def panel_values(response) -> dict[str, str]:
    html = response.content.decode()
    values = {}
    for name in ("region", "pool-id", "client-id", "issuer", "jwks", "amplify", "env"):
        match = re.search(rf'id="integration-{name}">(.*?)</(?:code|pre)>', html, re.S)
        assert match, name
        values[name] = unescape(match.group(1))
    return values


def test_integration_panel_against_cognito(admin_client, emu, remote, settings):
    settings.COGNITO_LOCAL_MODE = False
    pool, spa = remote["pool"], remote["spa"]
    app = AppClient.objects.get(client_id=spa["ClientId"])
    response = admin_client.get(reverse("admin:directory_appclient_change", args=[app.pk]))
    values = panel_values(response)
    issuer = f"https://cognito-idp.us-east-1.amazonaws.com/{pool.pool_id}"
    assert values["region"] == "us-east-1" and values["pool-id"] == pool.pool_id
    assert values["client-id"] == spa["ClientId"]
    assert values["issuer"] == issuer and values["jwks"] == f"{issuer}/.well-known/jwks.json"
    assert f'userPoolId: "{pool.pool_id}",' in values["amplify"]
    assert f'userPoolClientId: "{spa["ClientId"]}",' in values["amplify"]
    assert "loginWith: { email: true }," in values["amplify"] and "Amplify.configure({" in values["amplify"]
    assert "userPoolEndpoint" not in values["amplify"]
    assert f"COGNITO_USER_POOL_ID={pool.pool_id}\n" in values["env"] and f"COGNITO_ISSUER={issuer}\n" in values["env"]
    html = response.content.decode()
    assert "integration-local-note" not in html and "integration-secret-note" not in html
    assert html.index('id="integration-panel"') < html.index("Authentication flows")  # near the top
    assert "directory/copy_buttons.js" in html and html.count('class="copy-button"') == 7


def test_integration_panel_never_shows_a_secret(admin_client, emu, remote):
    pool, web = remote["pool"], remote["web"]
    secret = emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=web["ClientId"])["UserPoolClient"][
        "ClientSecret"
    ]
    app = AppClient.objects.get(client_id=web["ClientId"])
    response = admin_client.get(reverse("admin:directory_appclient_change", args=[app.pk]))
    html = response.content.decode()
    assert secret and secret not in html
    assert "This client has a secret: keep it server-side; it is shown only when created" in page_text(response)
    assert "keep it server-side" in panel_values(response)["env"]


def test_integration_panel_in_local_mode_points_at_the_emulator(admin_client, emu, remote, settings):
    settings.COGNITO_LOCAL_MODE = True
    endpoint = emu.meta.endpoint_url
    pool, spa = remote["pool"], remote["spa"]
    app = AppClient.objects.get(client_id=spa["ClientId"])
    response = admin_client.get(reverse("admin:directory_appclient_change", args=[app.pk]))
    values = panel_values(response)
    assert values["issuer"] == f"{endpoint}/{pool.pool_id}"
    assert f'userPoolEndpoint: "{endpoint}",' in values["amplify"]
    assert f"AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER={endpoint}" in values["env"]
    assert f"Local mode: these values point at the local emulator ({endpoint})" in page_text(response)
    # The JWKS URL shown serves the pool's keys, and a token the emulator issues through this client
    # verifies against them with the issuer shown.
    with urllib.request.urlopen(values["jwks"], timeout=5) as answer:  # noqa: S310 - the emulator on loopback
        (key,) = json.load(answer)["keys"]
    assert key["kty"] == "RSA" and "d" not in key
    emu.admin_set_user_password(UserPoolId=pool.pool_id, Username=remote["ann"]["Username"], Password=PASSWORD,
                                Permanent=True)
    tokens = emu.initiate_auth(
        ClientId=values["client-id"], AuthFlow="USER_PASSWORD_AUTH",
        AuthParameters={"USERNAME": "ann@example.com", "PASSWORD": PASSWORD},
    )["AuthenticationResult"]
    signing_key = jwt.PyJWKClient(values["jwks"]).get_signing_key_from_jwt(tokens["IdToken"])
    claims = jwt.decode(tokens["IdToken"], signing_key.key, algorithms=["RS256"], issuer=values["issuer"],
                        audience=values["client-id"])
    assert claims["email"] == "ann@example.com"
