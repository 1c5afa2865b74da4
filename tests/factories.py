"""factory_boy factories for the directory models."""

from __future__ import annotations

import uuid

import factory
from factory.django import DjangoModelFactory

from directory.models import (
    AppClient,
    AuditEvent,
    CognitoGroup,
    CognitoUser,
    GroupMembership,
    SyncRun,
    UserPool,
    UserStatus,
)

STANDARD_SCHEMA = [
    {
        "Name": "sub",
        "AttributeDataType": "String",
        "DeveloperOnlyAttribute": False,
        "Mutable": False,
        "Required": True,
        "StringAttributeConstraints": {"MinLength": "1", "MaxLength": "2048"},
    },
    {
        "Name": "email",
        "AttributeDataType": "String",
        "DeveloperOnlyAttribute": False,
        "Mutable": True,
        "Required": True,
        "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"},
    },
    {
        "Name": "name",
        "AttributeDataType": "String",
        "DeveloperOnlyAttribute": False,
        "Mutable": True,
        "Required": True,
        "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"},
    },
    {
        "Name": "email_verified",
        "AttributeDataType": "Boolean",
        "DeveloperOnlyAttribute": False,
        "Mutable": True,
        "Required": False,
    },
    {
        "Name": "phone_number",
        "AttributeDataType": "String",
        "DeveloperOnlyAttribute": False,
        "Mutable": True,
        "Required": False,
        "StringAttributeConstraints": {"MinLength": "0", "MaxLength": "2048"},
    },
]


def _pool_id(n: int) -> str:
    """Cognito's shape: region, "_", nine alphanumerics."""
    return f"us-east-1_T{n:08d}"


class UserPoolFactory(DjangoModelFactory):
    class Meta:
        model = UserPool

    pool_id = factory.Sequence(_pool_id)
    region = "us-east-1"
    name = factory.Sequence(lambda n: f"pool-{n}")
    arn = factory.LazyAttribute(lambda o: f"arn:aws:cognito-idp:{o.region}:123456789012:userpool/{o.pool_id}")
    status = "Enabled"
    username_attributes = factory.LazyFunction(lambda: ["email"])
    schema = factory.LazyFunction(lambda: [dict(a) for a in STANDARD_SCHEMA])
    auto_verified_attributes = factory.LazyFunction(lambda: ["email"])
    password_policy = factory.LazyFunction(
        lambda: {
            "MinimumLength": 8,
            "RequireUppercase": True,
            "RequireLowercase": True,
            "RequireNumbers": True,
            "RequireSymbols": False,
            "TemporaryPasswordValidityDays": 7,
        }
    )
    verification_message_template = factory.LazyFunction(
        lambda: {
            "DefaultEmailOption": "CONFIRM_WITH_CODE",
            "EmailSubject": "Your verification code",
            "EmailMessage": "<p>Your code is <b>{####}</b></p>",
            "SmsMessage": "Your code is {####}",
        }
    )
    admin_create_user_config = factory.LazyFunction(
        lambda: {
            "AllowAdminCreateUserOnly": False,
            "InviteMessageTemplate": {
                "EmailSubject": "Welcome",
                "EmailMessage": "Hello {username}, your temporary password is {####}",
                "SMSMessage": "Hello {username}, your temporary password is {####}",
            },
        }
    )
    email_configuration = factory.LazyFunction(lambda: {"EmailSendingAccount": "COGNITO_DEFAULT"})
    account_recovery_setting = factory.LazyFunction(
        lambda: {"RecoveryMechanisms": [{"Priority": 1, "Name": "verified_email"}]}
    )
    deletion_protection = "INACTIVE"
    estimated_number_of_users = 0
    raw = factory.LazyAttribute(lambda o: {"Id": o.pool_id, "Name": o.name, "Arn": o.arn})


class AppClientFactory(DjangoModelFactory):
    class Meta:
        model = AppClient

    pool = factory.SubFactory(UserPoolFactory)
    client_id = factory.Sequence(lambda n: f"client{n:021d}")
    name = factory.Sequence(lambda n: f"app-{n}")
    has_secret = False
    explicit_auth_flows = factory.LazyFunction(
        lambda: ["ALLOW_USER_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    )
    access_token_validity = 60
    id_token_validity = 60
    refresh_token_validity = 30
    token_validity_units = factory.LazyFunction(
        lambda: {"AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days"}
    )
    raw = factory.LazyAttribute(lambda o: {"ClientId": o.client_id, "ClientName": o.name})


class CognitoGroupFactory(DjangoModelFactory):
    class Meta:
        model = CognitoGroup

    pool = factory.SubFactory(UserPoolFactory)
    name = factory.Sequence(lambda n: f"group-{n}")
    description = factory.LazyAttribute(lambda o: f"The {o.name} group")
    precedence = factory.Sequence(lambda n: n)


class CognitoUserFactory(DjangoModelFactory):
    class Meta:
        model = CognitoUser

    pool = factory.SubFactory(UserPoolFactory)
    sub = factory.LazyFunction(lambda: str(uuid.uuid4()))
    username = factory.LazyAttribute(lambda o: o.sub)
    email = factory.Sequence(lambda n: f"user{n}@example.com")
    email_verified = True
    name = factory.Sequence(lambda n: f"User {n}")
    phone_number = ""
    phone_number_verified = False
    status = UserStatus.CONFIRMED
    enabled = True
    attributes = factory.LazyAttribute(
        lambda o: {
            "sub": o.sub,
            "email": o.email,
            "email_verified": "true" if o.email_verified else "false",
            "name": o.name,
            **({"phone_number": o.phone_number} if o.phone_number else {}),
        }
    )


class GroupMembershipFactory(DjangoModelFactory):
    class Meta:
        model = GroupMembership

    group = factory.SubFactory(CognitoGroupFactory)
    user = factory.SubFactory(CognitoUserFactory, pool=factory.SelfAttribute("..group.pool"))


class SyncRunFactory(DjangoModelFactory):
    class Meta:
        model = SyncRun

    pool = factory.SubFactory(UserPoolFactory)
    source = "worker"
    status = SyncRun.Status.SUCCEEDED


class AuditEventFactory(DjangoModelFactory):
    class Meta:
        model = AuditEvent

    source = AuditEvent.Source.SYNC
    action = "updated"
    object_type = "user"
    object_id = factory.Sequence(lambda n: f"object-{n}")
    object_repr = factory.LazyAttribute(lambda o: o.object_id)
    pool_id = factory.Sequence(_pool_id)
    changes = factory.LazyFunction(lambda: {"email": ["old@example.com", "new@example.com"]})
    outcome = AuditEvent.Outcome.OK
