"""The write side of the admin for configuration: groups, app clients, pool settings and the outbox,
driven through the admin against the moto server."""

from __future__ import annotations

from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from directory.models import AppClient, AuditEvent, CognitoGroup, PendingChange, UserPool
from directory.sync.pull import pull_pool
from directory.sync.push import apply_change
from tests.cognito_helpers import create_pool, create_user
from tests.settings_helpers import settings_post

pytestmark = pytest.mark.django_db

LAMBDA = {"PreSignUp": "arn:aws:lambda:us-east-1:123456789012:function:pre"}


@pytest.fixture
def mirrored(cognito):
    pool_id = create_pool(
        cognito, name="shop", LambdaConfig=LAMBDA, DeletionProtection="INACTIVE",
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": False},
    )
    client = cognito.create_user_pool_client(
        UserPoolId=pool_id, ClientName="spa",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        CallbackURLs=["https://app.example.com/cb"], LogoutURLs=["https://app.example.com/bye"],
        # Default units (hours, hours, days): the mirror cannot hold TokenValidityUnits (see below).
        RefreshTokenValidity=30, AccessTokenValidity=1, IdTokenValidity=1,
        AllowedOAuthFlows=["code"], AllowedOAuthScopes=["openid", "email"], AllowedOAuthFlowsUserPoolClient=True,
        SupportedIdentityProviders=["COGNITO"], PreventUserExistenceErrors="ENABLED",
        ReadAttributes=["email", "name"],
    )["UserPoolClient"]
    cognito.create_group(UserPoolId=pool_id, GroupName="admins", Precedence=1, Description="Admins")
    create_user(cognito, pool_id, "user0", email="user0@example.com", name="User 0")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    return pool, AppClient.objects.get(client_id=client["ClientId"])


def url(model: str, view: str, *args) -> str:
    return reverse(f"admin:directory_{model}_{view}", args=args)


def staff_client(client, django_user_model, *codenames):
    user = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


def form_errors(response) -> dict:
    context = response.context
    form = context["adminform"].form
    return form.errors


def audit_actions(change: PendingChange) -> list[str]:
    return sorted(AuditEvent.objects.filter(correlation_id=str(change.correlation_id)).values_list("action", flat=True))


def remote_group(cognito, pool, name):
    return cognito.get_group(UserPoolId=pool.pool_id, GroupName=name)["Group"]


# --- groups ---------------------------------------------------------------------------------------


def test_group_create_edit_delete(admin_client, cognito, mirrored, django_capture_on_commit_callbacks):
    pool, _ = mirrored
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("cognitogroup", "add"), {
            "pool": pool.pk, "name": "editors", "description": "Edit things", "precedence": "5", "role_arn": "",
        })
    assert response.status_code == HTTPStatus.FOUND, response.context and form_errors(response)
    remote = remote_group(cognito, pool, "editors")
    assert remote["Description"] == "Edit things" and remote["Precedence"] == 5
    change = PendingChange.objects.get(operation="group.create")
    assert change.status == "applied" and change.actor == "admin"
    assert audit_actions(change) == ["applied", "requested"]
    requested = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="requested")
    assert requested.changes["precedence"] == [None, 5] and requested.actor == "admin"
    group = CognitoGroup.objects.get(pool=pool, name="editors")

    # Edit: the name is read-only, description and precedence change.
    page = admin_client.get(url("cognitogroup", "change", group.pk)).content.decode()
    assert 'name="description"' in page and 'name="precedence"' in page and 'name="name"' not in page
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("cognitogroup", "change", group.pk), {
            "description": "Editors", "precedence": "3", "role_arn": "", "name": "hijack",
        })
    assert response.status_code == HTTPStatus.FOUND
    remote = remote_group(cognito, pool, "editors")
    assert remote["Description"] == "Editors" and remote["Precedence"] == 3
    change = PendingChange.objects.get(operation="group.update")
    assert change.status == "applied", change.last_error
    applied = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="applied")
    assert applied.changes == {"description": ["Edit things", "Editors"], "precedence": [5, 3]}
    assert CognitoGroup.objects.filter(pool=pool, name="editors").exists()  # not renamed

    # Delete.
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("cognitogroup", "delete", group.pk), {"post": "yes"})
    assert response.status_code == HTTPStatus.FOUND
    names = {g["GroupName"] for g in cognito.list_groups(UserPoolId=pool.pool_id)["Groups"]}
    assert names == {"admins"}
    assert not CognitoGroup.objects.filter(pk=group.pk).exists()
    change = PendingChange.objects.get(operation="group.delete")
    assert audit_actions(change) == ["applied", "requested"]


def test_group_bulk_delete(admin_client, cognito, mirrored, django_capture_on_commit_callbacks):
    pool, _ = mirrored
    cognito.create_group(UserPoolId=pool.pool_id, GroupName="temps")
    pull_pool(pool=pool)
    ids = list(CognitoGroup.objects.filter(pool=pool).values_list("pk", flat=True))
    assert len(ids) == 2
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("cognitogroup", "changelist"), {
            "action": "delete_selected", "_selected_action": ids, "post": "yes",
        })
    assert response.status_code == HTTPStatus.FOUND
    assert cognito.list_groups(UserPoolId=pool.pool_id)["Groups"] == []
    assert not CognitoGroup.objects.filter(pool=pool).exists()
    assert PendingChange.objects.filter(operation="group.delete", status="applied").count() == 2


@pytest.mark.parametrize(("data", "field"), [
    ({"name": "ops", "precedence": "-1"}, "precedence"),
    ({"name": "a/b", "precedence": "1"}, "name"),
    ({"name": "admins", "precedence": "1"}, "name"),
    ({"name": "ops", "role_arn": "not-an-arn"}, "role_arn"),
    ({"name": "ops", "description": "x" * 2049}, "description"),
    ({"name": "ops\nteam", "precedence": "1"}, "name"),
    ({"name": "ops team", "precedence": "1"}, "name"),
])
def test_group_bad_input(admin_client, mirrored, data, field):
    pool, _ = mirrored
    response = admin_client.post(url("cognitogroup", "add"), {"pool": pool.pk, "description": "", **data})
    assert response.status_code == HTTPStatus.OK
    assert field in form_errors(response), form_errors(response)
    assert PendingChange.objects.count() == 0
    assert CognitoGroup.objects.filter(pool=pool).count() == 1


def test_group_edit_bad_precedence(admin_client, mirrored):
    pool, _ = mirrored
    group = CognitoGroup.objects.get(pool=pool, name="admins")
    response = admin_client.post(url("cognitogroup", "change", group.pk), {"description": "x", "precedence": "-1"})
    assert response.status_code == HTTPStatus.OK
    assert "precedence" in form_errors(response)
    assert PendingChange.objects.count() == 0
    group.refresh_from_db()
    assert group.description == "Admins" and group.precedence == 1


def test_group_writes_need_permissions(client, django_user_model, cognito, mirrored):
    pool, _ = mirrored
    group = CognitoGroup.objects.get(pool=pool, name="admins")
    client = staff_client(client, django_user_model, "view_cognitogroup")
    assert client.get(url("cognitogroup", "add")).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url("cognitogroup", "add"), {"pool": pool.pk, "name": "x"}).status_code == HTTPStatus.FORBIDDEN
    response = client.post(url("cognitogroup", "change", group.pk), {"description": "hacked", "precedence": "9"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert client.post(url("cognitogroup", "delete", group.pk), {"post": "yes"}).status_code == HTTPStatus.FORBIDDEN
    client.post(url("cognitogroup", "changelist"), {
        "action": "delete_selected", "_selected_action": [group.pk], "post": "yes",
    })
    assert PendingChange.objects.count() == 0
    assert remote_group(cognito, pool, "admins")["Description"] == "Admins"
    group.refresh_from_db()
    assert group.description == "Admins"


# --- app clients ----------------------------------------------------------------------------------


def client_form(client: AppClient, **overrides) -> dict:
    data = {
        "explicit_auth_flows": client.explicit_auth_flows,
        "access_token_validity": client.access_token_validity or "",
        "id_token_validity": client.id_token_validity or "",
        "refresh_token_validity": client.refresh_token_validity or "",
        "callback_urls": "\n".join(client.callback_urls),
        "logout_urls": "\n".join(client.logout_urls),
        "allowed_oauth_flows": client.allowed_oauth_flows,
        "allowed_oauth_scopes": "\n".join(client.allowed_oauth_scopes),
        "prevent_user_existence_errors": client.prevent_user_existence_errors,
        "client_id": "tampered", "name": "tampered",
    }
    if client.allowed_oauth_flows_user_pool_client:
        data["allowed_oauth_flows_user_pool_client"] = "on"
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def describe_client(cognito, client):
    described = cognito.describe_user_pool_client(UserPoolId=client.pool.pool_id, ClientId=client.client_id)
    return described["UserPoolClient"]


def test_client_edit_reaches_cognito(admin_client, cognito, mirrored, django_capture_on_commit_callbacks):
    pool, client = mirrored
    before = describe_client(cognito, client)
    page = admin_client.get(url("appclient", "change", client.pk)).content.decode()
    assert 'name="explicit_auth_flows"' in page and 'value="ALLOW_USER_AUTH"' in page
    assert "https://app.example.com/cb" in page and 'name="client_id"' not in page
    data = client_form(
        client,
        explicit_auth_flows=["ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        access_token_validity="2", id_token_validity="3", refresh_token_validity="7",
        callback_urls="https://app.example.com/cb\nhttp://localhost:3000/cb\n",
        logout_urls="https://app.example.com/logout",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("appclient", "change", client.pk), data)
    assert response.status_code == HTTPStatus.FOUND, form_errors(response)
    change = PendingChange.objects.get(operation="client.update")
    assert change.status == "applied", change.last_error
    assert set(change.payload["after"]) == {
        "ExplicitAuthFlows", "AccessTokenValidity", "IdTokenValidity", "RefreshTokenValidity",
        "CallbackURLs", "LogoutURLs",
    }
    remote = describe_client(cognito, client)
    assert remote["ExplicitAuthFlows"] == ["ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert remote["AccessTokenValidity"] == 2 and remote["IdTokenValidity"] == 3 and remote["RefreshTokenValidity"] == 7
    assert "TokenValidityUnits" not in remote or remote["TokenValidityUnits"] == before.get("TokenValidityUnits")
    assert remote["CallbackURLs"] == ["https://app.example.com/cb", "http://localhost:3000/cb"]
    assert remote["LogoutURLs"] == ["https://app.example.com/logout"]
    for key in ("ClientName", "AuthSessionValidity", "EnableTokenRevocation", "AllowedOAuthFlows",
                "AllowedOAuthScopes", "AllowedOAuthFlowsUserPoolClient",
                "ReadAttributes", "SupportedIdentityProviders", "PreventUserExistenceErrors"):
        assert remote.get(key) == before.get(key), key
    assert audit_actions(change) == ["applied", "requested"]
    client.refresh_from_db()
    assert client.id_token_validity == 3 and client.name == "spa"


def test_client_oauth_edit(admin_client, cognito, mirrored, django_capture_on_commit_callbacks):
    _, client = mirrored
    data = client_form(
        client, allowed_oauth_flows=["code", "implicit"], allowed_oauth_scopes="openid\nprofile",
        prevent_user_existence_errors="LEGACY",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("appclient", "change", client.pk), data)
    assert response.status_code == HTTPStatus.FOUND, form_errors(response)
    remote = describe_client(cognito, client)
    assert sorted(remote["AllowedOAuthFlows"]) == ["code", "implicit"]
    assert remote["AllowedOAuthScopes"] == ["openid", "profile"]
    assert remote["PreventUserExistenceErrors"] == "LEGACY"
    assert remote["ExplicitAuthFlows"] == ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert remote["CallbackURLs"] == ["https://app.example.com/cb"]


@pytest.mark.parametrize(("overrides", "field"), [
    ({"access_token_validity": "25"}, "access_token_validity"),  # hours: more than a day
    ({"id_token_validity": "0"}, "id_token_validity"),
    ({"refresh_token_validity": "4000"}, "refresh_token_validity"),  # days: more than ten years
    ({"callback_urls": "http://example.com"}, "callback_urls"),
    ({"logout_urls": "https://ok.example.com\nnot a url"}, "logout_urls"),
    ({"explicit_auth_flows": ["ALLOW_MAGIC"]}, "explicit_auth_flows"),
    ({"prevent_user_existence_errors": "SOMETIMES"}, "prevent_user_existence_errors"),
    ({"prevent_user_existence_errors": ""}, "prevent_user_existence_errors"),
    # Refused by Cognito's own request model (ScopeType, RedirectUrlType): a field error here, not
    # a failure later in the worker.
    ({"allowed_oauth_scopes": "openid\nread write"}, "allowed_oauth_scopes"),
    ({"allowed_oauth_scopes": 'say "hi"'}, "allowed_oauth_scopes"),
    ({"callback_urls": "https://app.example.com/" + "a" * 1100}, "callback_urls"),
])
def test_client_bad_input(admin_client, mirrored, overrides, field):
    _, client = mirrored
    response = admin_client.post(url("appclient", "change", client.pk), client_form(client, **overrides))
    assert response.status_code == HTTPStatus.OK
    assert field in form_errors(response), form_errors(response)
    assert PendingChange.objects.count() == 0
    stored = AppClient.objects.get(pk=client.pk)
    assert stored.access_token_validity == 1 and stored.callback_urls == ["https://app.example.com/cb"]


def test_client_edit_needs_permission(client, django_user_model, mirrored):
    _, app = mirrored
    client = staff_client(client, django_user_model, "view_appclient")
    page = client.get(url("appclient", "change", app.pk)).content.decode()
    assert 'name="explicit_auth_flows"' not in page and "ALLOW_USER_SRP_AUTH" in page
    response = client.post(url("appclient", "change", app.pk), client_form(app, access_token_validity="2"))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert PendingChange.objects.count() == 0


def test_client_secret_never_shown(admin_client, cognito, mirrored):
    pool, _ = mirrored
    created = cognito.create_user_pool_client(UserPoolId=pool.pool_id, ClientName="server", GenerateSecret=True)
    secret = created["UserPoolClient"]["ClientSecret"]
    pull_pool(pool=pool)
    server = AppClient.objects.get(client_id=created["UserPoolClient"]["ClientId"])
    assert server.has_secret
    html = admin_client.get(url("appclient", "change", server.pk)).content.decode()
    assert secret not in html and "ClientSecret" not in html


def test_mirror_keeps_token_validity_units(cognito, mirrored):
    pool, client = mirrored
    cognito.update_user_pool_client(
        UserPoolId=pool.pool_id, ClientId=client.client_id, ClientName="spa", AccessTokenValidity=30,
        TokenValidityUnits={"AccessToken": "minutes", "IdToken": "hours", "RefreshToken": "days"},
    )
    pull_pool(pool=pool)
    client.refresh_from_db()
    assert client.token_validity_units == {"AccessToken": "minutes", "IdToken": "hours", "RefreshToken": "days"}


# --- pool settings --------------------------------------------------------------------------------


def settings_form(pool: UserPool, **overrides) -> dict:
    """The Settings page's POST as it renders for the pool, with `overrides` (None: an unticked box)."""
    return settings_post(pool, **overrides)


def test_pool_change_page_links_settings(admin_client, mirrored):
    pool, _ = mirrored
    html = admin_client.get(url("userpool", "change", pool.pk)).content.decode()
    assert url("userpool", "settings", pool.pk) in html
    assert f'action="{url("userpool", "sync", pool.pk)}"' in html
    page = admin_client.get(url("userpool", "settings", pool.pk))
    assert page.status_code == HTTPStatus.OK
    assert 'name="minimum_length"' in page.content.decode()


def test_pool_settings_reach_cognito(admin_client, cognito, emu, mirrored, django_capture_on_commit_callbacks):
    pool, _ = mirrored
    data = settings_form(
        pool, minimum_length="12", require_symbols="on", temporary_password_validity_days="3",
        mfa_configuration="OPTIONAL", mfa_methods=["SOFTWARE_TOKEN"], self_sign_up=None,
        deletion_protection="ACTIVE",
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("userpool", "settings", pool.pk), data)
    assert response.status_code == HTTPStatus.FOUND, response.context and response.context["form"].errors
    assert response["Location"] == url("userpool", "change", pool.pk)
    change = PendingChange.objects.get(operation="pool.update")
    assert change.status == "applied", change.last_error
    remote = cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    policy = remote["Policies"]["PasswordPolicy"]
    assert policy["MinimumLength"] == 12 and policy["RequireSymbols"] is True
    assert policy["TemporaryPasswordValidityDays"] == 3
    assert policy["RequireUppercase"] is True and policy["RequireNumbers"] is True  # kept
    assert remote["MfaConfiguration"] == "OPTIONAL"
    assert remote["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    assert remote["DeletionProtection"] == "ACTIVE"
    assert remote["LambdaConfig"] == LAMBDA
    assert audit_actions(change) == ["applied", "requested"]
    pool.refresh_from_db()
    assert pool.mfa_configuration == "OPTIONAL" and pool.allow_admin_create_user_only
    assert pool.temporary_password_validity_days == 3


def test_pool_mfa_on(admin_client, cognito, emu, mirrored, django_capture_on_commit_callbacks):
    pool, _ = mirrored
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("userpool", "settings", pool.pk), settings_form(
            pool, mfa_configuration="ON", mfa_methods=["SOFTWARE_TOKEN"]))
    assert response.status_code == HTTPStatus.FOUND
    assert PendingChange.objects.get(operation="pool.update").status == "applied"
    assert cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]["MfaConfiguration"] == "ON"


def test_pool_settings_unchanged_makes_no_change(admin_client, mirrored):
    pool, _ = mirrored
    response = admin_client.post(url("userpool", "settings", pool.pk), settings_form(pool))
    assert response.status_code == HTTPStatus.FOUND
    assert PendingChange.objects.count() == 0


@pytest.mark.parametrize(("overrides", "field"), [
    ({"minimum_length": "5"}, "minimum_length"),
    ({"minimum_length": "100"}, "minimum_length"),
    ({"temporary_password_validity_days": "400"}, "temporary_password_validity_days"),
    ({"mfa_configuration": "SOMETIMES"}, "mfa_configuration"),
    ({"deletion_protection": "MAYBE"}, "deletion_protection"),
    ({"minimum_length": "twelve"}, "minimum_length"),
])
def test_pool_settings_bad_input(admin_client, mirrored, overrides, field):
    pool, _ = mirrored
    response = admin_client.post(url("userpool", "settings", pool.pk), settings_form(pool, **overrides))
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert field in errors, errors
    assert field in response.content.decode()
    assert PendingChange.objects.count() == 0
    stored = UserPool.objects.get(pk=pool.pk)
    assert stored.password_policy == pool.password_policy


def test_pool_settings_need_permission(client, django_user_model, cognito, mirrored):
    pool, _ = mirrored
    client = staff_client(client, django_user_model, "view_userpool")
    assert url("userpool", "settings", pool.pk) not in client.get(url("userpool", "change", pool.pk)).content.decode()
    assert client.get(url("userpool", "settings", pool.pk)).status_code == HTTPStatus.FORBIDDEN
    response = client.post(url("userpool", "settings", pool.pk), settings_form(pool, minimum_length="20"))
    assert response.status_code == HTTPStatus.FORBIDDEN
    assert PendingChange.objects.count() == 0
    remote = cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["Policies"]["PasswordPolicy"]["MinimumLength"] == 10
    # The main change form stays read-only even with change_userpool: settings have their own view.
    client.logout()
    django_user_model.objects.filter(username="staff").delete()
    client = staff_client(client, django_user_model, "view_userpool", "change_userpool")
    assert client.get(url("userpool", "settings", pool.pk)).status_code == HTTPStatus.OK
    assert client.post(url("userpool", "change", pool.pk), {"name": "x"}).status_code == HTTPStatus.FORBIDDEN


def test_pool_page_shows_pending_changes_and_history(admin_client, mirrored):
    pool, _ = mirrored
    admin_client.post(url("userpool", "settings", pool.pk), settings_form(pool, minimum_length="14"))
    change = PendingChange.objects.get(operation="pool.update")
    assert change.status == "pending"  # on_commit never ran: still in the outbox
    html = admin_client.get(url("userpool", "change", pool.pk)).content.decode()
    pending = html.split("field-pending_changes", 1)[1].split("field-audit_history", 1)[0]
    assert "pool.update" in pending and "<td>pending</td>" in pending
    assert url("pendingchange", "change", change.pk) in pending
    assert "Policies.PasswordPolicy" in pending and "&quot;MinimumLength&quot;: 14" in pending
    history = html.split("field-audit_history", 1)[1]
    assert "<td>requested</td>" in history and "<td>admin</td>" in history


# --- the outbox: conflicts, retry, discard --------------------------------------------------------


def test_conflict_then_retry(admin_client, cognito, mirrored, django_capture_on_commit_callbacks):
    pool, _ = mirrored
    group = CognitoGroup.objects.get(pool=pool, name="admins")
    # The operator's save commits, but the push has not run yet (no on_commit callbacks here) ...
    response = admin_client.post(url("cognitogroup", "change", group.pk), {"description": "Admins", "precedence": "5"})
    assert response.status_code == HTTPStatus.FOUND
    change = PendingChange.objects.get(operation="group.update")
    # ... someone changes the group in Cognito meanwhile ...
    cognito.update_group(UserPoolId=pool.pool_id, GroupName="admins", Precedence=9, Description="Admins")
    # ... and then the worker runs.
    assert apply_change(change.pk).status == "conflict"
    assert remote_group(cognito, pool, "admins")["Precedence"] == 9
    group.refresh_from_db()
    assert group.precedence == 9

    response = admin_client.get(url("pendingchange", "changelist"), {"status__exact": "conflict"})
    assert [c.pk for c in response.context["cl"].result_list] == [change.pk]
    page = admin_client.get(url("pendingchange", "change", change.pk)).content.decode()
    values = page.split("field-values_table", 1)[1]
    assert "<td>precedence</td><td>1</td><td>5</td><td>9</td>" in values
    assert url("pendingchange", "retry", change.pk) in page

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("pendingchange", "changelist"), {
            "action": "retry_changes", "_selected_action": [change.pk],
        }, follow=True)
    assert "1 change(s) sent again" in response.content.decode()
    change.refresh_from_db()
    assert change.status == "applied", change.last_error
    assert remote_group(cognito, pool, "admins")["Precedence"] == 5
    actions = audit_actions(change)
    assert actions == ["applied", "conflict", "requested", "retried"]


def test_retry_button_and_refused_retry(admin_client, cognito, mirrored, django_capture_on_commit_callbacks):
    pool, client = mirrored
    admin_client.post(url("appclient", "change", client.pk), client_form(client, access_token_validity="2"))
    change = PendingChange.objects.get(operation="client.update")
    cognito.update_user_pool_client(
        UserPoolId=pool.pool_id, ClientId=client.client_id, **{
            k: v for k, v in describe_client(cognito, client).items()
            if k not in {"UserPoolId", "ClientId", "ClientSecret", "LastModifiedDate", "CreationDate"}
            and k != "AccessTokenValidity"
        }, AccessTokenValidity=5,
    )
    assert apply_change(change.pk).status == "conflict"
    assert describe_client(cognito, client)["AccessTokenValidity"] == 5
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("pendingchange", "retry", change.pk), follow=True)
    assert response.redirect_chain[0][0] == url("pendingchange", "change", change.pk)
    change.refresh_from_db()
    assert change.status == "applied", change.last_error
    assert describe_client(cognito, client)["AccessTokenValidity"] == 2
    # Retrying (or discarding) an applied change is refused with a message, not a 500.
    response = admin_client.post(url("pendingchange", "retry", change.pk), follow=True)
    assert response.status_code == HTTPStatus.OK
    assert "Only failed or conflicting changes can be retried" in response.content.decode()
    response = admin_client.post(url("pendingchange", "changelist"), {
        "action": "discard_changes", "_selected_action": [change.pk],
    }, follow=True)
    assert "cannot be discarded" in response.content.decode()
    assert PendingChange.objects.get(pk=change.pk).status == "applied"
    assert admin_client.get(url("pendingchange", "retry", change.pk)).status_code == HTTPStatus.METHOD_NOT_ALLOWED


def test_discard_reverts_mirror(admin_client, cognito, mirrored):
    pool, client = mirrored
    admin_client.post(url("appclient", "change", client.pk), client_form(client, callback_urls="https://new.example.com/cb"))
    change = PendingChange.objects.get(operation="client.update")
    assert AppClient.objects.get(pk=client.pk).callback_urls == ["https://new.example.com/cb"]
    page = admin_client.get(url("pendingchange", "change", change.pk)).content.decode()
    assert url("pendingchange", "discard", change.pk) in page
    response = admin_client.post(url("pendingchange", "discard", change.pk), follow=True)
    assert "1 change(s) discarded" in response.content.decode()
    change.refresh_from_db()
    assert change.status == "discarded"
    assert AppClient.objects.get(pk=client.pk).callback_urls == ["https://app.example.com/cb"]
    assert apply_change(change.pk) is None  # a late message does nothing
    assert describe_client(cognito, client)["CallbackURLs"] == ["https://app.example.com/cb"]
    assert "discarded" in audit_actions(change)


def test_discard_action_reverts_group(admin_client, mirrored):
    pool, _ = mirrored
    group = CognitoGroup.objects.get(pool=pool, name="admins")
    admin_client.post(url("cognitogroup", "change", group.pk), {"description": "Changed", "precedence": "1"})
    change = PendingChange.objects.get(operation="group.update")
    admin_client.post(url("pendingchange", "changelist"),
                      {"action": "discard_changes", "_selected_action": [change.pk]})
    assert PendingChange.objects.get(pk=change.pk).status == "discarded"
    assert CognitoGroup.objects.get(pk=group.pk).description == "Admins"


def test_outbox_permissions(client, django_user_model, cognito, mirrored):
    pool, _ = mirrored
    group = CognitoGroup.objects.get(pool=pool, name="admins")
    from directory.services import groups as group_services

    change = group_services.cognito_group_update(group=group, description="Changed", precedence=1, actor="ops")
    PendingChange.objects.filter(pk=change.pk).update(status="failed", last_error="boom <b>")
    client = staff_client(client, django_user_model, "view_pendingchange")
    page = client.get(url("pendingchange", "change", change.pk)).content.decode()
    assert "boom &lt;b&gt;" in page and "boom <b>" not in page
    assert url("pendingchange", "retry", change.pk) not in page
    assert url("pendingchange", "discard", change.pk) not in page
    changelist = client.get(url("pendingchange", "changelist")).content.decode()
    assert "retry_changes" not in changelist and "discard_changes" not in changelist
    for action in ("retry_changes", "discard_changes"):
        client.post(url("pendingchange", "changelist"), {"action": action, "_selected_action": [change.pk]})
    assert client.post(url("pendingchange", "retry", change.pk)).status_code == HTTPStatus.FORBIDDEN
    assert client.post(url("pendingchange", "discard", change.pk)).status_code == HTTPStatus.FORBIDDEN
    change.refresh_from_db()
    assert change.status == "failed"
    assert CognitoGroup.objects.get(pk=group.pk).description == "Changed"
    assert not AuditEvent.objects.filter(action__in=["retried", "discarded"]).exists()


def test_outbox_read_only(admin_client, mirrored):
    pool, _ = mirrored
    group = CognitoGroup.objects.get(pool=pool, name="admins")
    admin_client.post(url("cognitogroup", "change", group.pk), {"description": "Changed", "precedence": "1"})
    change = PendingChange.objects.get()
    assert admin_client.get(url("pendingchange", "add")).status_code == HTTPStatus.FORBIDDEN
    response = admin_client.post(url("pendingchange", "change", change.pk), {"status": "applied"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    response = admin_client.post(url("pendingchange", "delete", change.pk), {"post": "yes"})
    assert response.status_code == HTTPStatus.FORBIDDEN
    response = admin_client.get(url("pendingchange", "changelist"))
    html = response.content.decode()
    assert "delete_selected" not in html and "retry_changes" in html
    for params, expected in (({"q": "admins"}, 1), ({"q": "nobody"}, 0), ({"operation": "group.update"}, 1),
                             ({"object_type": "app_client"}, 0), ({"pool__id__exact": pool.pk}, 1)):
        response = admin_client.get(url("pendingchange", "changelist"), params)
        assert len(response.context["cl"].result_list) == expected, params
    assert PendingChange.objects.get(pk=change.pk).status == "pending"
