"""What the emulator's parts share: the WSGI types, Cognito's X-Amz-Target header, moto's backend."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from moto.cognitoidp.models import cognitoidp_backends

ACCOUNT_ID = "123456789012"  # the account moto maps every fake access key to
TARGET_PREFIX = "AWSCognitoIdentityProviderService."

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[Environ, StartResponse], Iterable[bytes]]
# A shim gets the request and the wrapped moto app, and either answers or calls through.
Handler = Callable[[Environ, StartResponse, WSGIApp], Iterable[bytes]]


def target(operation: str) -> str:
    """The X-Amz-Target header value boto3 sends for a Cognito operation."""
    return TARGET_PREFIX + operation


def cognito_backend(region: str) -> Any:
    """moto's Cognito backend for `region` in this process (what the emulator's server serves)."""
    return cognitoidp_backends[ACCOUNT_ID][region]
