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


def form_data(form, **overrides) -> dict:
    """What a browser would post for an unbound form as rendered (its initial values), with overrides."""
    data: dict = {}
    for name, field in form.fields.items():
        value = form.initial.get(name, field.initial)
        value = field.prepare_value(value) if value is not None else None
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        elif isinstance(value, list | tuple):
            data[name] = list(value)
        elif value is not None:
            data[name] = value
    for name, value in overrides.items():
        if value is None or value is False:
            data.pop(name, None)
        elif value is True:
            data[name] = "on"
        else:
            data[name] = value
    return data


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
