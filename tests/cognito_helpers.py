"""Helpers that build remote state on the moto server and inject faults into botocore."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.awsrequest import AWSResponse

# The botocore event that carries an UpdateUserPool request's parameters (to capture what was sent).
UPDATE_EVENT = "provide-client-params.cognito-identity-provider.UpdateUserPool"
# A Lambda trigger the e-shop pool carries, which a template push must keep.
ESHOP_LAMBDA = {"PreSignUp": "arn:aws:lambda:us-east-1:123456789012:function:pre"}

UNICODE_NAMES = ["Zoë Ångström", "李小龍", "Łukasz Żółć", "José Núñez", "Ærøskøbing Ølsen", "محمد علي"]


def create_pool(cognito, *, name: str = "shop", email_username: bool = False, **extra) -> str:
    schema = [
        {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
        {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
        {"Name": "department", "AttributeDataType": "String", "Mutable": True},
    ]
    params = {
        "PoolName": name,
        "Schema": schema,
        "AutoVerifiedAttributes": ["email"],
        "MfaConfiguration": "OFF",
        "Policies": {"PasswordPolicy": {"MinimumLength": 10, "RequireUppercase": True, "RequireNumbers": True}},
        **extra,
    }
    if email_username:
        params["UsernameAttributes"] = ["email"]
    return cognito.create_user_pool(**params)["UserPool"]["Id"]


def create_user(cognito, pool_id: str, username: str, *, email: str, name: str, **attrs) -> dict:
    attributes = [
        {"Name": "email", "Value": email},
        {"Name": "email_verified", "Value": "true"},
        {"Name": "name", "Value": name},
        *({"Name": k, "Value": v} for k, v in attrs.items()),
    ]
    return cognito.admin_create_user(
        UserPoolId=pool_id, Username=username, UserAttributes=attributes, MessageAction="SUPPRESS"
    )["User"]


def list_all_users(cognito, pool_id: str) -> list[dict]:
    users = []
    for page in cognito.get_paginator("list_users").paginate(UserPoolId=pool_id):
        users.extend(page["Users"])
    return users


class _Raw:
    def __init__(self, body: bytes) -> None:
        self._body = body

    def stream(self, **kwargs) -> Iterator[bytes]:
        yield self._body


def error_response(code: str, message: str = "injected", status: int = 400) -> AWSResponse:
    body = json.dumps({"__type": code, "message": message}).encode()
    return AWSResponse(
        "https://cognito-idp.us-east-1.amazonaws.com/",
        status,
        {"Content-Type": "application/x-amz-json-1.1"},
        _Raw(body),
    )


@contextmanager
def inject(client, operation: str, should_fail: Callable[[int], bool], code: str = "TooManyRequestsException"):
    """Answer `operation` with an error while should_fail(call_number) is true, through
    a `before-send` hook registered first, so botocore's own retry logic sees it."""
    calls = {"n": 0, "failed": 0}

    def hook(request, **kwargs):
        calls["n"] += 1
        if should_fail(calls["n"]):
            calls["failed"] += 1
            return error_response(code)
        return None

    event = f"before-send.cognito-identity-provider.{operation}"
    client.meta.events.register_first(event, hook)
    try:
        yield calls
    finally:
        client.meta.events.unregister(event, hook)


def described(cognito, pool) -> dict:
    """What Cognito holds for a mirrored pool now (DescribeUserPool)."""
    return cognito.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]


def make_pool(client, **extra) -> str:
    """A pool signing in by username, `email` and `name` required, e-mail auto-verified."""
    params = {
        "PoolName": "shop",
        "AutoVerifiedAttributes": ["email"],
        "Schema": [
            {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
            {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
        ],
        **extra,
    }
    return client.create_user_pool(**params)["UserPool"]["Id"]


def make_client(client, pool_id, *, secret: bool) -> dict:
    """An app client with (server) or without (spa) a secret, allowing the password flows."""
    return client.create_user_pool_client(
        UserPoolId=pool_id, ClientName="server" if secret else "spa", GenerateSecret=secret,
        ExplicitAuthFlows=["ALLOW_ADMIN_USER_PASSWORD_AUTH", "ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]


class MemoryPages:
    """A gateway answering a pull from memory: one page of `users`."""

    def __init__(self, users, name: str = "memory"):
        self.users, self.name = users, name

    def describe_user_pool(self, pool_id):
        return {"Id": pool_id, "Name": self.name}

    def get_user_pool_mfa_config(self, pool_id):
        return {"MfaConfiguration": "OFF"}

    def list_user_pool_clients(self, pool_id):
        return []

    def list_groups(self, pool_id):
        yield []

    def list_users(self, pool_id, **kwargs):
        yield self.users

    def list_users_in_group(self, pool_id, group_name):
        yield []
