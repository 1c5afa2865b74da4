"""Every setting of a pool's Settings page, through the admin and the outbox, against the emulator:
what lands in Cognito, what is refused before anything is sent, what never changes, and that a
user of an e-mail sign-in pool can still sign in after any Settings or Messages save."""

from __future__ import annotations

import json
from http import HTTPStatus

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from moto.cognitoidp.models import cognitoidp_backends

from directory.models import AuditEvent, PendingChange, UserPool
from directory.services import changes as change_services
from directory.services import pools as pool_services
from directory.settings_catalog import EDITABLE, create_request_parts, form_fields
from directory.sync.pull import pull_pool
from tests.cognito_helpers import ESHOP_LAMBDA, create_pool
from tests.settings_helpers import settings_post
from tests.test_messages import VALID as VALID_MESSAGES

pytestmark = pytest.mark.django_db

PASSWORD = "Passw0rd!Long"
EMAIL = "ada@example.com"
SES = "arn:aws:ses:us-east-1:123456789012:identity/example.com"
SMS_ROLE = "arn:aws:iam::123456789012:role/cognito-sms"
FN = "arn:aws:lambda:us-east-1:123456789012:function:"
KMS = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def url(view: str, *args) -> str:
    return reverse(f"admin:directory_userpool_{view}", args=args)


@pytest.fixture
def calls():
    """Every Cognito operation the gateway sends while the test runs."""
    from directory import gateway

    sent: list[str] = []
    client = gateway.get_client("us-east-1")

    def capture(model, **kwargs):
        sent.append(model.name)

    client.meta.events.register("before-call.cognito-identity-provider", capture)
    yield sent
    client.meta.events.unregister("before-call.cognito-identity-provider", capture)


@pytest.fixture
def shop(emu):
    """An e-mail sign-in pool (case-insensitive), a client with the password flow, a user who signs in."""
    pool_id = create_pool(
        emu, name="shop", email_username=True, UsernameConfiguration={"CaseSensitive": False},
        LambdaConfig=ESHOP_LAMBDA, UserPoolTags={"team": "shop", "owner": "ada"},
        AccountRecoverySetting={"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]},
    )
    client = emu.create_user_pool_client(
        UserPoolId=pool_id, ClientName="app",
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    emu.admin_create_user(
        UserPoolId=pool_id, Username=EMAIL, MessageAction="SUPPRESS",
        UserAttributes=[{"Name": "email", "Value": EMAIL}, {"Name": "email_verified", "Value": "true"},
                        {"Name": "name", "Value": "Ada"}],
    )
    emu.admin_set_user_password(UserPoolId=pool_id, Username=EMAIL, Password=PASSWORD, Permanent=True)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    pool.refresh_from_db()
    assert email_signs_in(emu, client["ClientId"])
    return pool, client["ClientId"]


def email_signs_in(emu, client_id: str) -> bool:
    result = emu.initiate_auth(ClientId=client_id, AuthFlow="USER_PASSWORD_AUTH",
                               AuthParameters={"USERNAME": EMAIL, "PASSWORD": PASSWORD})
    return bool(result["AuthenticationResult"]["IdToken"])


def save(admin_client, pool, capture, **overrides):
    with capture(execute=True):
        response = admin_client.post(url("settings", pool.pk), settings_post(pool, **overrides))
    assert response.status_code == HTTPStatus.FOUND, response.context and response.context["form"].errors
    return PendingChange.objects.filter(pool=pool).order_by("-pk").first()


def described(emu, pool) -> dict:
    return emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]


EVERYTHING = {
    "pool_name": "shop renamed",
    "mfa_configuration": "OPTIONAL",
    "mfa_methods": ["SOFTWARE_TOKEN", "SMS", "EMAIL"],
    "mfa_sms_message": "Shop code: {####}",
    "mfa_email_subject": "Your shop code",
    "mfa_email_message": "Your shop sign-in code is {####}.",
    "auto_verified_attributes": ["email"],
    "keep_original_attributes": ["email"],
    "email_sending_account": "DEVELOPER",
    "ses_source_arn": SES,
    "from_email_address": "Shop <no-reply@example.com>",
    "reply_to_email_address": "help@example.com",
    "ses_configuration_set": "shop-set",
    "sms_role_arn": SMS_ROLE,
    "sms_external_id": "shop-external",
    "remember_devices": "user_opt_in",
    "account_recovery": "verified_email,verified_phone_number",
    "user_pool_tier": "PLUS",
    "lambda_pre_sign_up": FN + "pre2",
    "lambda_post_confirmation": FN + "welcome",
    "lambda_pre_token_generation": FN + "claims",
    "lambda_custom_email_sender": FN + "mailer",
    "lambda_kms_key_id": KMS,
    "tags": "team=web\nenv=staging",
    "add_custom_attributes": "tier\nscore:Number:immutable",
    "deletion_protection": "ACTIVE",
    "minimum_length": "12",
    "self_sign_up": False,
}


def test_every_setting_lands_in_cognito_and_the_mirror(admin_client, emu, shop, django_capture_on_commit_callbacks):
    pool, client_id = shop
    change = save(admin_client, pool, django_capture_on_commit_callbacks, **EVERYTHING)
    assert change.status == "applied", change.last_error
    remote = described(emu, pool)
    assert remote["Name"] == "shop renamed"
    assert remote["EmailConfiguration"] == {
        "EmailSendingAccount": "DEVELOPER", "SourceArn": SES, "From": "Shop <no-reply@example.com>",
        "ReplyToEmailAddress": "help@example.com", "ConfigurationSet": "shop-set",
    }
    assert remote["SmsConfiguration"] == {"SnsCallerArn": SMS_ROLE, "ExternalId": "shop-external"}
    assert remote["DeviceConfiguration"] == {"ChallengeRequiredOnNewDevice": False,
                                             "DeviceOnlyRememberedOnUserPrompt": True}
    assert remote["UserAttributeUpdateSettings"] == {"AttributesRequireVerificationBeforeUpdate": ["email"]}
    assert remote["AccountRecoverySetting"]["RecoveryMechanisms"] == [
        {"Priority": 1, "Name": "verified_email"}, {"Priority": 2, "Name": "verified_phone_number"}]
    assert remote["UserPoolTier"] == "PLUS" and remote["DeletionProtection"] == "ACTIVE"
    assert remote["Policies"]["PasswordPolicy"]["MinimumLength"] == 12
    assert remote["AdminCreateUserConfig"]["AllowAdminCreateUserOnly"] is True
    lambdas = remote["LambdaConfig"]
    assert lambdas["PreSignUp"] == FN + "pre2" and lambdas["PostConfirmation"] == FN + "welcome"
    assert lambdas["PreTokenGeneration"] == FN + "claims"
    assert lambdas["CustomEmailSender"] == {"LambdaVersion": "V1_0", "LambdaArn": FN + "mailer"}
    assert lambdas["KMSKeyID"] == KMS
    schema = {a["Name"]: a for a in remote["SchemaAttributes"]}
    assert schema["custom:tier"]["AttributeDataType"] == "String" and schema["custom:tier"]["Mutable"] is True
    assert schema["custom:score"]["AttributeDataType"] == "Number" and schema["custom:score"]["Mutable"] is False
    # Tags through TagResource / UntagResource: changed, added, removed.
    arn = remote["Arn"]
    assert emu.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "web", "env": "staging"}
    assert remote["UserPoolTags"] == {"team": "web", "env": "staging"}
    mfa = emu.get_user_pool_mfa_config(UserPoolId=pool.pool_id)
    assert mfa["MfaConfiguration"] == "OPTIONAL" == remote["MfaConfiguration"]
    assert mfa["SoftwareTokenMfaConfiguration"] == {"Enabled": True}
    assert mfa["SmsMfaConfiguration"]["SmsAuthenticationMessage"] == "Shop code: {####}"
    assert mfa["SmsMfaConfiguration"]["SmsConfiguration"]["SnsCallerArn"] == SMS_ROLE
    assert mfa["EmailMfaConfiguration"] == {"Subject": "Your shop code", "Message": "Your shop sign-in code is {####}."}
    # What never changes stayed.
    assert remote["UsernameAttributes"] == ["email"] and remote["UsernameConfiguration"] == {"CaseSensitive": False}
    assert schema["email"]["Required"] is True and "custom:department" in schema
    assert email_signs_in(emu, client_id)
    # The mirror holds what Cognito holds; the page shows it.
    pool.refresh_from_db()
    assert pool.name == "shop renamed" and pool.device_configuration["DeviceOnlyRememberedOnUserPrompt"] is True
    assert set(pool.mfa_methods) == {"SoftwareTokenMfaConfiguration", "SmsMfaConfiguration", "EmailMfaConfiguration"}
    assert pool.tags == {"team": "web", "env": "staging"} and pool.user_pool_tier == "PLUS"
    page = admin_client.get(url("change", pool.pk)).content.decode()
    for shown in ("User opt-in", "Authenticator apps, SMS message, E-mail message", "Send e-mail with Amazon SES",
                  FN + "welcome", "Plus", "custom:score"):
        assert shown in page, shown
    # Audited with before and after, requested by the operator and applied by the worker.
    events = AuditEvent.objects.filter(correlation_id=str(change.correlation_id))
    requested = events.get(action="requested")
    assert requested.actor == "admin" and requested.changes["Name"] == ["shop", "shop renamed"]
    assert requested.changes["UserPoolTags"] == [{"team": "shop", "owner": "ada"}, {"team": "web", "env": "staging"}]
    assert events.filter(action="applied", outcome="ok").exists()
    # Nothing left to change: the same page saved again sends nothing.
    again = PendingChange.objects.count()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(url("settings", pool.pk), settings_post(pool))
    assert PendingChange.objects.count() == again


def test_settings_can_be_turned_off_again(admin_client, emu, shop, django_capture_on_commit_callbacks):
    pool, client_id = shop
    save(admin_client, pool, django_capture_on_commit_callbacks, remember_devices="always",
         mfa_configuration="ON", mfa_methods=["SOFTWARE_TOKEN"], lambda_post_confirmation=FN + "w")
    assert described(emu, pool)["DeviceConfiguration"]["DeviceOnlyRememberedOnUserPrompt"] is False
    change = save(admin_client, pool, django_capture_on_commit_callbacks, remember_devices="no",
                  mfa_configuration="OFF", mfa_methods=[], lambda_pre_sign_up="", lambda_post_confirmation="",
                  tags="", account_recovery="admin_only")
    assert change.status == "applied", change.last_error
    remote = described(emu, pool)
    assert "DeviceConfiguration" not in remote and remote["MfaConfiguration"] == "OFF"
    assert not remote.get("LambdaConfig") and not remote.get("UserPoolTags")
    assert remote["AccountRecoverySetting"]["RecoveryMechanisms"] == [{"Priority": 1, "Name": "admin_only"}]
    assert emu.get_user_pool_mfa_config(UserPoolId=pool.pool_id)["SoftwareTokenMfaConfiguration"] == {"Enabled": False}
    assert emu.list_tags_for_resource(ResourceArn=remote["Arn"])["Tags"] == {}
    assert email_signs_in(emu, client_id)


BAD_INPUT = [
    ({"pool_name": ""}, "pool_name"),
    ({"pool_name": "shop/../x"}, "pool_name"),
    ({"mfa_configuration": "ON", "mfa_methods": []}, "mfa_configuration"),
    ({"mfa_methods": ["SMS"]}, "mfa_methods"),
    ({"mfa_methods": ["EMAIL"]}, "mfa_methods"),
    ({"mfa_methods": ["EMAIL"], "email_sending_account": "DEVELOPER", "ses_source_arn": SES, "user_pool_tier": "LITE"},
     "mfa_methods"),
    ({"mfa_methods": ["BIOMETRIC"]}, "mfa_methods"),
    ({"mfa_methods": ["SMS"], "sms_role_arn": SMS_ROLE, "mfa_sms_message": "no code"}, "mfa_sms_message"),
    ({"mfa_methods": ["EMAIL"], "email_sending_account": "DEVELOPER", "ses_source_arn": SES,
      "mfa_email_message": "no code here"}, "mfa_email_message"),
    ({"auto_verified_attributes": ["phone_number"]}, "auto_verified_attributes"),
    ({"keep_original_attributes": ["phone_number"]}, "keep_original_attributes"),
    ({"auto_verified_attributes": [], "keep_original_attributes": ["email"]}, "keep_original_attributes"),
    ({"email_sending_account": "DEVELOPER"}, "email_sending_account"),
    ({"email_sending_account": "SENDMAIL"}, "email_sending_account"),
    ({"ses_source_arn": "not-an-arn-at-all-really"}, "ses_source_arn"),
    ({"ses_source_arn": FN + "pre"}, "ses_source_arn"),
    ({"email_sending_account": "DEVELOPER", "ses_source_arn": SES, "from_email_address": "nobody"},
     "from_email_address"),
    ({"from_email_address": "no-reply@example.com"}, "from_email_address"),
    ({"reply_to_email_address": "help@"}, "reply_to_email_address"),
    ({"email_sending_account": "DEVELOPER", "ses_source_arn": SES, "ses_configuration_set": "bad set!"},
     "ses_configuration_set"),
    ({"sms_role_arn": "arn:aws:sns:us-east-1:123456789012:topic"}, "sms_role_arn"),
    ({"sms_external_id": "ext"}, "sms_external_id"),
    ({"remember_devices": "sometimes"}, "remember_devices"),
    ({"account_recovery": "carrier_pigeon"}, "account_recovery"),
    ({"account_recovery": "verified_phone_number"}, "account_recovery"),
    ({"user_pool_tier": "GOLD"}, "user_pool_tier"),
    ({"lambda_pre_sign_up": "my-function"}, "lambda_pre_sign_up"),
    ({"lambda_user_migration": "arn:aws:s3:::bucket-name-here"}, "lambda_user_migration"),
    ({"lambda_custom_sms_sender": FN + "sms"}, "lambda_kms_key_id"),
    ({"lambda_kms_key_id": FN + "notakey"}, "lambda_kms_key_id"),
    ({"tags": "no-equals-sign"}, "tags"),
    ({"tags": "aws:reserved=1"}, "tags"),
    ({"tags": "team=" + "x" * 257}, "tags"),
    ({"add_custom_attributes": "department"}, "add_custom_attributes"),
    ({"add_custom_attributes": "bad name!"}, "add_custom_attributes"),
    ({"add_custom_attributes": "x:Blob"}, "add_custom_attributes"),
    ({"add_custom_attributes": "a" * 21}, "add_custom_attributes"),
    ({"deletion_protection": "MAYBE"}, "deletion_protection"),
    ({"minimum_length": "5"}, "minimum_length"),
]


@pytest.mark.parametrize(("overrides", "field"), BAD_INPUT, ids=[f"{f}-{i}" for i, (_, f) in enumerate(BAD_INPUT)])
def test_bad_input_gets_a_field_error_and_sends_nothing(admin_client, emu, shop, calls, overrides, field):
    pool, _ = shop
    before = described(emu, pool)
    mirror = UserPool.objects.get(pk=pool.pk).raw
    calls.clear()
    response = admin_client.post(url("settings", pool.pk), settings_post(pool, **overrides))
    assert response.status_code == HTTPStatus.OK
    errors = response.context["form"].errors
    assert field in errors, errors
    assert f'id="id_{field}' in response.content.decode() and "errorlist" in response.content.decode()
    assert calls == [] and not PendingChange.objects.exists()
    assert described(emu, pool) == before and UserPool.objects.get(pk=pool.pk).raw == mirror


def test_locked_settings_are_shown_with_the_reason_and_refused(admin_client, shop):
    pool, _ = shop
    page = admin_client.get(url("settings", pool.pk)).content.decode()
    locked = page.split('id="locked-settings"', 1)[1]
    assert "Sign-in identifiers" in locked and "E-mail address" in locked
    assert "Cognito fixes UsernameAttributes and AliasAttributes" in locked
    assert "Case-sensitive sign-in" in locked and "Required attributes" in locked and "custom:department" in locked
    assert 'name="sign_in_identifiers"' not in page and 'name="case_sensitive"' not in page
    with pytest.raises(ValidationError) as exc:
        pool_services.user_pool_update(pool=pool, changes={"sign_in_identifiers": ["username"]}, actor="ops")
    assert "sign_in_identifiers cannot be changed after the pool is created" in str(exc.value)
    assert not PendingChange.objects.exists()


def test_email_sign_in_survives_settings_and_messages_saves(
    admin_client, emu, shop, django_capture_on_commit_callbacks
):
    pool, client_id = shop
    change = save(admin_client, pool, django_capture_on_commit_callbacks, minimum_length="11")
    assert change.status == "applied", change.last_error
    assert email_signs_in(emu, client_id)
    review = admin_client.post(url("messages", pool.pk), {**VALID_MESSAGES, "_review": "1"})
    assert review.status_code == HTTPStatus.OK, review.content.decode()[:500]
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url("messages", pool.pk), {
            **VALID_MESSAGES, "remote_hash": review.context["remote_hash"], "_confirm": "1"})
    assert response.status_code == HTTPStatus.FOUND
    messages_change = PendingChange.objects.filter(pool=pool).order_by("-pk").first()
    assert messages_change.operation != "pool.update"
    assert messages_change.status == "applied", messages_change.last_error
    remote = described(emu, pool)
    assert remote["UsernameAttributes"] == ["email"] and remote["UsernameConfiguration"] == {"CaseSensitive": False}
    assert email_signs_in(emu, client_id)
    pool.refresh_from_db()
    assert pool.username_attributes == ["email"] and pool.sign_in_identifiers == ["email"]


def _drop_after_update(pool_id: str, drop):
    """A botocore hook that makes "Cognito" lose something right after the UpdateUserPool call."""

    def hook(**kwargs):
        drop(cognitoidp_backends["123456789012"]["us-east-1"].user_pools[pool_id])

    return hook


@pytest.mark.parametrize(("drop", "named"), [
    (lambda p: p.extended_config.pop("UsernameAttributes"), "UsernameAttributes (Sign-in identifiers)"),
    (lambda p: p.extended_config.update(UsernameConfiguration={"CaseSensitive": True}),
     "UsernameConfiguration.CaseSensitive (Case-sensitive sign-in)"),
    (lambda p: p.extended_config["LambdaConfig"].pop("PreSignUp"), "LambdaConfig.PreSignUp (Pre sign-up)"),
    (lambda p: p.schema_attributes.pop("custom:department"), "SchemaAttributes.custom:department"),
    (lambda p: p.extended_config.update(DeletionProtection="ACTIVE"), "DeletionProtection (Deletion protection)"),
])
def test_a_setting_lost_in_cognito_fails_the_change_naming_it(
    admin_client, emu, shop, django_capture_on_commit_callbacks, drop, named
):
    from directory import gateway

    pool, _ = shop
    client = gateway.get_client("us-east-1")
    hook = _drop_after_update(pool.pool_id, drop)
    client.meta.events.register("after-call.cognito-identity-provider.UpdateUserPool", hook)
    try:
        change = save(admin_client, pool, django_capture_on_commit_callbacks, minimum_length="14")
    finally:
        client.meta.events.unregister("after-call.cognito-identity-provider.UpdateUserPool", hook)
    assert change.status == "failed"
    assert "settings other than the intended ones changed" in change.last_error and named in change.last_error
    failed = AuditEvent.objects.get(correlation_id=str(change.correlation_id), action="failed")
    assert named in failed.detail["error"]


def test_a_setting_that_does_not_land_fails_the_change(admin_client, emu, shop, django_capture_on_commit_callbacks):
    from directory import gateway

    pool, _ = shop
    client = gateway.get_client("us-east-1")
    hook = _drop_after_update(pool.pool_id, lambda p: p.extended_config.pop("DeviceConfiguration"))
    client.meta.events.register("after-call.cognito-identity-provider.UpdateUserPool", hook)
    try:
        change = save(admin_client, pool, django_capture_on_commit_callbacks, remember_devices="always")
    finally:
        client.meta.events.unregister("after-call.cognito-identity-provider.UpdateUserPool", hook)
    assert change.status == "failed" and "did not take the requested value: remember_devices" in change.last_error
    pool.refresh_from_db()
    assert pool.device_configuration == {}  # the mirror shows what Cognito holds


def test_discard_reverts_the_mirror(admin_client, shop):
    pool, _ = shop
    before = UserPool.objects.get(pk=pool.pk)
    response = admin_client.post(url("settings", pool.pk), settings_post(pool, **EVERYTHING))
    assert response.status_code == HTTPStatus.FOUND
    change = PendingChange.objects.get(pool=pool)
    assert change.status == "pending"  # on_commit never ran
    shown = UserPool.objects.get(pk=pool.pk)
    assert shown.name == "shop renamed" and shown.device_configuration and shown.mfa_methods
    assert shown.email_configuration["EmailSendingAccount"] == "DEVELOPER" and shown.tags["env"] == "staging"
    assert "custom:tier" in {a["Name"] for a in shown.schema}
    change_services.pending_change_discard(change=change, actor="admin")
    after = UserPool.objects.get(pk=pool.pk)
    for field in ("name", "password_policy", "mfa_configuration", "mfa_methods", "allow_admin_create_user_only",
                  "auto_verified_attributes", "user_attribute_update_settings", "email_configuration",
                  "sms_configuration", "lambda_config", "account_recovery_setting", "device_configuration",
                  "user_pool_tier", "tags", "username_attributes"):
        assert getattr(after, field) == getattr(before, field), field
    assert after.deletion_protection == (before.deletion_protection or "INACTIVE")  # Cognito's meaning of none
    assert {a["Name"] for a in after.schema} == {a["Name"] for a in before.schema}


def test_create_request_parts_make_the_pool_the_settings_describe(emu):
    fields = form_fields(EDITABLE)
    assert fields["remember_devices"].initial == "no" and fields["mfa_configuration"].initial == "OFF"
    assert [c for c, _ in fields["remember_devices"].choices] == ["no", "always", "user_opt_in"]
    assert "Lambda" in fields["lambda_pre_sign_up"].help_text or "sign" in fields["lambda_pre_sign_up"].help_text
    values = {name: field.initial for name, field in fields.items()}
    values.update(pool_name="staging", mfa_configuration="OPTIONAL", mfa_methods=["SOFTWARE_TOKEN"],
                  tags={"env": "staging"}, remember_devices="always", add_custom_attributes="tier",
                  sign_in_identifiers=["email"], required_attributes=["email", "name"])
    parts = create_request_parts(values)
    create = parts["create"]
    assert create["PoolName"] == "staging" and create["UserPoolTags"] == {"env": "staging"}
    assert create["UsernameAttributes"] == ["email"] and create["MfaConfiguration"] == "OFF"
    pool_id = emu.create_user_pool(**create)["UserPool"]["Id"]
    emu.set_user_pool_mfa_config(UserPoolId=pool_id, **parts["mfa"])
    remote = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert remote["MfaConfiguration"] == "OPTIONAL" and remote["DeviceConfiguration"]
    assert remote["UsernameAttributes"] == ["email"] and remote["UserPoolTags"] == {"env": "staging"}
    schema = {a["Name"]: a for a in remote["SchemaAttributes"]}
    assert schema["name"]["Required"] is True and "custom:tier" in schema
    assert remote["AutoVerifiedAttributes"] == ["email"]
    assert remote["UserAttributeUpdateSettings"] == {"AttributesRequireVerificationBeforeUpdate": ["email"]}



# The emulator keeps what Cognito keeps -------------------------------------------------------------------


def _code(exc_info) -> str:
    return exc_info.value.response["Error"]["Code"]


def test_emulator_update_keeps_identifiers_case_and_schema(emu):
    from botocore.exceptions import ClientError

    pool_id = create_pool(emu, name="alias", AliasAttributes=["email", "preferred_username"],
                          UsernameConfiguration={"CaseSensitive": True},
                          DeviceConfiguration={"DeviceOnlyRememberedOnUserPrompt": True},
                          UserAttributeUpdateSettings={"AttributesRequireVerificationBeforeUpdate": ["email"]})
    before = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    emu.update_user_pool(UserPoolId=pool_id, AutoVerifiedAttributes=["email"],
                         DeviceConfiguration={"ChallengeRequiredOnNewDevice": True})
    after = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert after["AliasAttributes"] == ["email", "preferred_username"]
    assert after["UsernameConfiguration"] == {"CaseSensitive": True}
    assert after["SchemaAttributes"] == before["SchemaAttributes"]
    # What UpdateUserPool carries is reset to the request, as Cognito does.
    assert after["DeviceConfiguration"] == {"ChallengeRequiredOnNewDevice": True}
    assert "UserAttributeUpdateSettings" not in after
    emu.add_custom_attributes(UserPoolId=pool_id, CustomAttributes=[{"Name": "tier", "AttributeDataType": "String"}])
    schema = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]["SchemaAttributes"]
    assert "custom:tier" in {a["Name"] for a in schema}
    with pytest.raises(ClientError) as exc:
        emu.add_custom_attributes(UserPoolId=pool_id,
                                  CustomAttributes=[{"Name": "tier", "AttributeDataType": "String"}])
    assert _code(exc) == "InvalidParameterException"
    with pytest.raises(ClientError) as exc:
        emu.add_custom_attributes(UserPoolId=pool_id, CustomAttributes=[
            {"Name": f"a{i}", "AttributeDataType": "String"} for i in range(50)])
    assert _code(exc) == "LimitExceededException"


def test_emulator_mfa_config_as_cognito_checks_it(emu):
    from botocore.exceptions import ClientError

    pool_id = create_pool(emu, name="mfa")
    for params in (
        {"MfaConfiguration": "ON"},
        {"MfaConfiguration": "OPTIONAL", "SoftwareTokenMfaConfiguration": {"Enabled": False}},
        {"MfaConfiguration": "ON", "SmsMfaConfiguration": {"SmsAuthenticationMessage": "{####}"}},
        {"MfaConfiguration": "ON", "EmailMfaConfiguration": {"Message": "code {####}", "Subject": "code"}},
    ):
        with pytest.raises(ClientError) as exc:
            emu.set_user_pool_mfa_config(UserPoolId=pool_id, **params)
        assert _code(exc) == "InvalidParameterException", params
    assert emu.get_user_pool_mfa_config(UserPoolId=pool_id)["MfaConfiguration"] == "OFF"
    emu.update_user_pool(UserPoolId=pool_id, UserPoolTier="LITE", EmailConfiguration={
        "EmailSendingAccount": "DEVELOPER", "SourceArn": SES})
    with pytest.raises(ClientError) as exc:
        emu.set_user_pool_mfa_config(UserPoolId=pool_id, MfaConfiguration="ON",
                                     EmailMfaConfiguration={"Message": "code {####}", "Subject": "code"})
    assert _code(exc) == "FeatureUnavailableInTierException"
    emu.update_user_pool(UserPoolId=pool_id, UserPoolTier="ESSENTIALS", EmailConfiguration={
        "EmailSendingAccount": "DEVELOPER", "SourceArn": SES}, SmsConfiguration={"SnsCallerArn": SMS_ROLE})
    emu.set_user_pool_mfa_config(
        UserPoolId=pool_id, MfaConfiguration="ON", SoftwareTokenMfaConfiguration={"Enabled": True},
        SmsMfaConfiguration={"SmsAuthenticationMessage": "Code {####}"},
        EmailMfaConfiguration={"Message": "code {####}", "Subject": "code"})
    mfa = emu.get_user_pool_mfa_config(UserPoolId=pool_id)
    assert mfa["MfaConfiguration"] == "ON" and mfa["EmailMfaConfiguration"]["Subject"] == "code"
    assert mfa["SmsMfaConfiguration"]["SmsConfiguration"]["SnsCallerArn"] == SMS_ROLE
    described_pool = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert described_pool["MfaConfiguration"] == "ON" and described_pool["SmsAuthenticationMessage"] == "Code {####}"
    # The emulator's state on disk keeps the e-mail method across a restart.
    from emulator import state

    state.load(json.loads(json.dumps(state.dump())))
    restored = emu.get_user_pool_mfa_config(UserPoolId=pool_id)
    restored.pop("ResponseMetadata")
    mfa.pop("ResponseMetadata")
    assert restored == mfa


def test_emulator_tags(emu):
    from botocore.exceptions import ClientError

    pool_id = create_pool(emu, name="tags", UserPoolTags={"team": "shop"})
    arn = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]["Arn"]
    assert emu.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "shop"}
    emu.tag_resource(ResourceArn=arn, Tags={"env": "prod", "team": "web"})
    emu.untag_resource(ResourceArn=arn, TagKeys=["env", "missing"])
    assert emu.list_tags_for_resource(ResourceArn=arn)["Tags"] == {"team": "web"}
    assert emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]["UserPoolTags"] == {"team": "web"}
    with pytest.raises(ClientError) as exc:
        emu.tag_resource(ResourceArn=arn.replace(pool_id, "us-east-1_missing00"), Tags={"a": "b"})
    assert _code(exc) == "ResourceNotFoundException"
