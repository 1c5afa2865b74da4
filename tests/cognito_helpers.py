"""Helpers that build remote state on the moto server and inject faults into botocore."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from botocore.awsrequest import AWSResponse

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
