"""Push path through services and the worker, against the moto server."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from directory import gateway
from directory.models import AppClient, AuditEvent, CognitoGroup, CognitoUser, GroupMembership, PendingChange, UserPool
from directory.services import clients as client_services
from directory.services import groups as group_services
from directory.services import pools as pool_services
from directory.services import users as user_services
from directory.sync.pull import pull_pool
from directory.sync.push import apply_change
from tests.cognito_helpers import create_pool, create_user, inject

pytestmark = pytest.mark.django_db


@pytest.fixture
def mirrored(cognito, django_capture_on_commit_callbacks):
    pool_id = create_pool(
        cognito,
        name="shop",
        LambdaConfig={"PreSignUp": "arn:aws:lambda:us-east-1:123456789012:function:pre"},
        UserPoolTags={"team": "identity"},
        DeletionProtection="ACTIVE",
        AccountRecoverySetting={"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
        UserAttributeUpdateSettings={"AttributesRequireVerificationBeforeUpdate": ["email"]},
        SmsConfiguration={"SnsCallerArn": "arn:aws:iam::123456789012:role/sns", "ExternalId": "x"},
        EmailConfiguration={"EmailSendingAccount": "COGNITO_DEFAULT"},
        AdminCreateUserConfig={
            "AllowAdminCreateUserOnly": False,
            "InviteMessageTemplate": {"EmailSubject": "Welcome", "EmailMessage": "Hi {username} {####}"},
        },
    )
    client = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName="spa",
        ExplicitAuthFlows=["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
        CallbackURLs=["https://app.example.com/cb"],
        RefreshTokenValidity=30,
    )["UserPoolClient"]
    cognito.create_group(UserPoolId=pool_id, GroupName="admins", Precedence=1)
    for i in range(3):
        create_user(cognito, pool_id, f"user{i}", email=f"user{i}@example.com", name=f"User {i}")
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    return pool, client["ClientId"]


def _remote_user(cognito, pool_id, username):
    user = cognito.admin_get_user(UserPoolId=pool_id, Username=username)
    return user, {a["Name"]: a["Value"] for a in user["UserAttributes"]}


def test_attribute_edit_reaches_cognito_and_is_audited(cognito, mirrored, django_capture_on_commit_callbacks):
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user0")
    with django_capture_on_commit_callbacks(execute=True):
        change = user_services.cognito_user_update_attributes(
            user=user, attributes={"name": "Zoë New", "custom:department": "sales"}, actor="alice"
        )
    change.refresh_from_db()
    assert change.status == "applied", change.last_error
    _, attrs = _remote_user(cognito, pool.pool_id, "user0")
    assert attrs["name"] == "Zoë New" and attrs["custom:department"] == "sales"
    user.refresh_from_db()
    assert user.name == "Zoë New" and user.attributes["custom:department"] == "sales"
    actions = list(
        AuditEvent.objects.filter(correlation_id=str(change.correlation_id)).values_list("action", flat=True)
    )
    assert sorted(actions) == ["applied", "requested"]
    applied = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="applied")
    assert applied.changes["attributes.name"] == ["User 0", "Zoë New"] and applied.actor == "alice"


def test_redelivered_change_is_applied_once(cognito, mirrored, django_capture_on_commit_callbacks):
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user1")
    change = user_services.cognito_user_set_enabled(user=user, enabled=False, actor="bob")
    assert apply_change(change.pk).status == "applied"
    # The same message again (at-least-once delivery), and even the row reset to pending
    # as a worker killed after the call but before it recorded the outcome would leave it.
    assert apply_change(change.pk) is None
    PendingChange.objects.filter(pk=change.pk).update(status="pending")
    calls = []
    client = gateway.get_client("us-east-1")
    with inject(client, "AdminDisableUser", lambda n: calls.append(n) and False):
        assert apply_change(change.pk).status == "applied"
    assert calls == []  # nothing sent the second time
    remote, _ = _remote_user(cognito, pool.pool_id, "user1")
    assert remote["Enabled"] is False
    assert AuditEvent.objects.filter(correlation_id=str(change.correlation_id), action="applied").count() == 1


def test_conflict_keeps_remote_value(cognito, mirrored):
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user2")
    change = user_services.cognito_user_update_attributes(user=user, attributes={"name": "Operator"}, actor="carol")
    cognito.admin_update_user_attributes(
        UserPoolId=pool.pool_id, Username="user2", UserAttributes=[{"Name": "name", "Value": "Someone Else"}]
    )
    result = apply_change(change.pk)
    assert result.status == "conflict"
    assert result.remote_values == {"attributes.name": "Someone Else"}
    _, attrs = _remote_user(cognito, pool.pool_id, "user2")
    assert attrs["name"] == "Someone Else"
    user.refresh_from_db()
    assert user.name == "Someone Else"
    event = AuditEvent.objects.get(correlation_id=str(result.correlation_id), action="conflict")
    assert event.outcome == "conflict" and event.changes["attributes.name"] == ["User 2", "Someone Else"]


def test_pool_update_sends_every_setting(cognito, mirrored):
    pool, _ = mirrored
    described = cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    sent = []
    client = gateway.get_client("us-east-1")

    def capture(params, **kwargs):
        sent.append(params)

    client.meta.events.register("provide-client-params.cognito-identity-provider.UpdateUserPool", capture)
    try:
        change = pool_services.user_pool_update(
            pool=pool,
            changes={
                "mfa_configuration": "OFF",
                "deletion_protection": "INACTIVE",
                "password_policy": {"MinimumLength": 14},
            },
            actor="dave",
        )
        result = apply_change(change.pk)
    finally:
        client.meta.events.unregister("provide-client-params.cognito-identity-provider.UpdateUserPool", capture)
    assert result.status == "applied", result.last_error
    assert len(sent) == 1
    request = sent[0]
    assert request["DeletionProtection"] == "INACTIVE"
    assert request["Policies"]["PasswordPolicy"]["MinimumLength"] == 14
    assert request["Policies"]["PasswordPolicy"]["RequireUppercase"] is True
    for key in (
        "LambdaConfig",
        "UserPoolTags",
        "AutoVerifiedAttributes",
        "AccountRecoverySetting",
        "UserAttributeUpdateSettings",
        "SmsConfiguration",
        "EmailConfiguration",
        "MfaConfiguration",
    ):
        assert request[key] == described[key], key
    assert (
        request["AdminCreateUserConfig"]["InviteMessageTemplate"]
        == described["AdminCreateUserConfig"]["InviteMessageTemplate"]
    )
    pool.refresh_from_db()
    assert pool.password_policy["MinimumLength"] == 14 and pool.deletion_protection == "INACTIVE"


def test_client_update(cognito, mirrored):
    pool, client_id = mirrored
    client = AppClient.objects.get(client_id=client_id)
    change = client_services.app_client_update(
        client=client, changes={"explicit_auth_flows": ["ALLOW_USER_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}, actor="erin"
    )
    assert apply_change(change.pk).status == "applied"
    remote = cognito.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=client_id)["UserPoolClient"]
    assert remote["ExplicitAuthFlows"] == ["ALLOW_USER_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    assert remote["CallbackURLs"] == ["https://app.example.com/cb"] and remote["RefreshTokenValidity"] == 30


def test_groups_and_memberships(cognito, mirrored):
    pool, _ = mirrored
    change = group_services.cognito_group_create(pool=pool, name="editors", description="Edit", precedence=5, actor="f")
    assert apply_change(change.pk).status == "applied"
    group = CognitoGroup.objects.get(pool=pool, name="editors")
    user = CognitoUser.objects.get(pool=pool, username="user0")
    change = user_services.cognito_user_set_group(user=user, group=group, member=True, actor="f")
    assert apply_change(change.pk).status == "applied"
    names = [
        g["GroupName"] for g in cognito.admin_list_groups_for_user(UserPoolId=pool.pool_id, Username="user0")["Groups"]
    ]
    assert names == ["editors"]
    change = group_services.cognito_group_update(group=group, description="Editors", precedence=3, actor="f")
    assert apply_change(change.pk).status == "applied"
    assert cognito.get_group(UserPoolId=pool.pool_id, GroupName="editors")["Group"]["Precedence"] == 3
    change = group_services.cognito_group_delete(group=group, actor="f")
    assert apply_change(change.pk).status == "applied"
    assert not CognitoGroup.objects.filter(pool=pool, name="editors").exists()
    assert not GroupMembership.objects.filter(user=user).exists()


def test_user_lifecycle(cognito, mirrored):
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user0")
    cognito.admin_set_user_password(UserPoolId=pool.pool_id, Username="user0", Password="Passw0rd!Long", Permanent=True)
    pull_pool(pool=pool)
    user.refresh_from_db()
    assert user.status == "CONFIRMED"
    change = user_services.cognito_user_reset_password(user=user, actor="g")
    assert apply_change(change.pk).status == "applied"
    assert cognito.admin_get_user(UserPoolId=pool.pool_id, Username="user0")["UserStatus"] == "RESET_REQUIRED"
    change = user_services.cognito_user_delete(user=CognitoUser.objects.get(pk=user.pk), actor="g")
    assert apply_change(change.pk).status == "applied"
    assert not CognitoUser.objects.filter(pk=user.pk).exists()
    with pytest.raises(cognito.exceptions.UserNotFoundException):
        cognito.admin_get_user(UserPoolId=pool.pool_id, Username="user0")


def test_bad_input_creates_no_change(mirrored):
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user1")
    for attributes, field in [
        ({"email": "not-an-email"}, "email"),
        ({"phone_number": "0044 123"}, "phone_number"),
        ({"favourite_colour": "red"}, "favourite_colour"),
        ({"name": "x" * 2049}, "name"),
        ({"sub": "abc"}, "sub"),
        ({"name": ""}, "name"),
    ]:
        with pytest.raises(ValidationError) as exc:
            user_services.cognito_user_update_attributes(user=user, attributes=attributes, actor="h")
        assert field in exc.value.message_dict
    assert PendingChange.objects.count() == 0


def test_throttled_push_lands_with_retries_counted(cognito, mirrored, monkeypatch):
    pool, _ = mirrored
    monkeypatch.setattr("botocore.endpoint.time.sleep", lambda s: None)
    user = CognitoUser.objects.get(pool=pool, username="user2")
    change = user_services.cognito_user_set_enabled(user=user, enabled=False, actor="i")
    client = gateway.get_client("us-east-1")
    with inject(client, "AdminDisableUser", lambda n: n <= 3):
        result = apply_change(change.pk)
    assert result.status == "applied" and result.throttled == 3
    event = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="applied")
    assert event.detail["retries"] == 3
    assert cognito.admin_get_user(UserPoolId=pool.pool_id, Username="user2")["Enabled"] is False


def test_pull_does_not_overwrite_a_field_with_a_pending_change(cognito, mirrored):
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user1")
    group = CognitoGroup.objects.get(pool=pool, name="admins")
    user_services.cognito_user_update_attributes(user=user, attributes={"name": "Operator Value"}, actor="j")
    user_services.cognito_user_set_group(user=user, group=group, member=True, actor="j")
    cognito.admin_update_user_attributes(
        UserPoolId=pool.pool_id,
        Username="user1",
        UserAttributes=[{"Name": "name", "Value": "Remote"}, {"Name": "custom:department", "Value": "ops"}],
    )
    assert pull_pool(pool=pool).status == "succeeded"
    user.refresh_from_db()
    assert user.name == "Operator Value"  # protected by the pending change
    assert user.attributes["custom:department"] == "ops"  # other fields still pulled
    assert GroupMembership.objects.filter(user=user, group=group).exists()  # pending add kept
    # Once the changes are settled, the pull takes Cognito's values again.
    for change in PendingChange.objects.filter(status="pending"):
        apply_change(change.pk)
    assert pull_pool(pool=pool).status == "succeeded"
    user.refresh_from_db()
    assert user.name == "Remote"


def test_failed_push_that_cannot_reread_reverts_the_mirror(cognito, mirrored):
    """The call fails and Cognito cannot be read afterwards: the mirror stops showing the value
    that was never applied."""
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user2")
    change = user_services.cognito_user_set_enabled(user=user, enabled=False, actor="k")
    user.refresh_from_db()
    assert user.enabled is False  # shown at once, while the change is on its way
    client = gateway.get_client("us-east-1")
    with (
        inject(client, "AdminDisableUser", lambda n: True, code="InvalidParameterException"),
        inject(client, "ListUsers", lambda n: n >= 2, code="InvalidParameterException"),
    ):
        result = apply_change(change.pk)
    assert result.status == "failed"
    user.refresh_from_db()
    assert user.enabled is True
    assert cognito.admin_get_user(UserPoolId=pool.pool_id, Username="user2")["Enabled"] is True
    assert AuditEvent.objects.filter(correlation_id=str(change.correlation_id), action="failed").exists()


def test_a_change_seen_by_a_push_is_audited_like_a_pull_would(cognito, mirrored):
    """A user finished her first sign-in in Cognito, then an operator disabled her: the push's
    re-read records the status change (source sync, linked to the change), not only its own."""
    pool, _ = mirrored
    user = CognitoUser.objects.get(pool=pool, username="user0")
    assert user.status == "FORCE_CHANGE_PASSWORD"
    cognito.admin_set_user_password(UserPoolId=pool.pool_id, Username="user0", Password="Passw0rd!Long", Permanent=True)
    change = user_services.cognito_user_set_enabled(user=user, enabled=False, actor="ops")
    assert apply_change(change.pk).status == "applied"
    user.refresh_from_db()
    assert (user.status, user.enabled) == ("CONFIRMED", False)
    seen = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="updated")
    assert seen.source == "sync" and seen.object_id == "user0"
    assert seen.changes == {"status": ["FORCE_CHANGE_PASSWORD", "CONFIRMED"]}
    assert seen.detail["seen_by_change"] == change.pk
    # Nothing is left for the next pull to find, and nothing was lost.
    assert pull_pool(pool=pool).status == "succeeded"
    assert not AuditEvent.objects.filter(object_id="user0", action="updated").exclude(pk=seen.pk).exists()


def test_a_pool_setting_changed_elsewhere_is_audited_by_the_push_that_sees_it(cognito, mirrored):
    pool, _ = mirrored
    described = cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    policy = {**described["Policies"]["PasswordPolicy"], "MinimumLength": 16}
    cognito.update_user_pool(UserPoolId=pool.pool_id, Policies={"PasswordPolicy": policy})  # e.g. the CLI
    change = pool_services.user_pool_update(pool=pool, changes={"deletion_protection": "INACTIVE"}, actor="ops")
    assert apply_change(change.pk).status == "applied"
    seen = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="updated")
    assert seen.object_type == "pool" and seen.source == "sync"
    assert seen.changes["password_policy"][1]["MinimumLength"] == 16
    assert "deletion_protection" not in seen.changes


def test_a_second_quick_edit_builds_on_the_first(cognito, mirrored, django_capture_on_commit_callbacks):
    """Two edits of the same setting in a row, their messages taken in the wrong order (two workers,
    a redelivery): the second waits for the first and lands, instead of ending as a conflict."""
    pool, _ = mirrored
    first = pool_services.user_pool_update(pool=pool, changes={"password_policy": {"MinimumLength": 12}}, actor="a")
    pool = UserPool.objects.get(pk=pool.pk)
    second = pool_services.user_pool_update(pool=pool, changes={"password_policy": {"MinimumLength": 14}}, actor="b")
    assert second.before["Policies.PasswordPolicy"]["MinimumLength"] == 12  # made on top of the first
    assert apply_change(second.pk) is None  # waits: the first is still on its way
    assert PendingChange.objects.get(pk=second.pk).status == "pending"
    with django_capture_on_commit_callbacks(execute=True):
        assert apply_change(first.pk).status == "applied"  # ...and, once done, sends the second
    assert PendingChange.objects.get(pk=second.pk).status == "applied"
    described = cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert described["Policies"]["PasswordPolicy"]["MinimumLength"] == 14
    assert not AuditEvent.objects.filter(action="conflict").exists()
