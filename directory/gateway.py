"""The only module that talks to AWS: typed Cognito calls, paginators and error translation."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

SERVICE = "cognito-idp"
# Cognito returns at most 60 users a page.
USERS_PAGE_SIZE = 60

# Error codes that mean "the thing is not there".
_NOT_FOUND = {"ResourceNotFoundException", "UserNotFoundException", "GroupNotFoundException"}
_CONFLICT = {
    "UsernameExistsException",
    "AliasExistsException",
    "GroupExistsException",
    "ConcurrentModificationException",
}
_THROTTLED = {"TooManyRequestsException", "ThrottlingException"}


class CognitoError(Exception):
    """A Cognito call failed; `code` is Cognito's error code, `message` its text."""

    def __init__(self, message: str, *, code: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.operation = operation

    def __str__(self) -> str:
        prefix = f"{self.operation}: " if self.operation else ""
        code = f"{self.code}: " if self.code else ""
        return f"{prefix}{code}{self.message}"


class CognitoNotFound(CognitoError):
    """The pool, client, group or user does not exist (any more)."""


class CognitoConflict(CognitoError):
    """The object already exists, or was changed concurrently."""


class CognitoThrottled(CognitoError):
    """Cognito answered TooManyRequestsException even after botocore's retries."""


class CognitoUnavailable(CognitoError):
    """Cognito could not be reached (connection refused, timeout, DNS...)."""


class CognitoLimitExceeded(CognitoError):
    """A hard quota (LimitExceededException): retrying does not help."""


class CognitoInvalid(CognitoError):
    """Cognito refused the request's parameters (InvalidParameter, InvalidPassword...)."""


def translate(exc: Exception, operation: str = "") -> CognitoError:
    """Map a botocore exception onto the project's exceptions."""
    if isinstance(exc, CognitoError):
        return exc
    if isinstance(exc, ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "")
        message = err.get("Message", "") or str(exc)
        if code in _NOT_FOUND:
            cls: type[CognitoError] = CognitoNotFound
        elif code in _CONFLICT:
            cls = CognitoConflict
        elif code in _THROTTLED:
            cls = CognitoThrottled
        elif code == "LimitExceededException":
            cls = CognitoLimitExceeded
        elif code.startswith("Invalid") or code in {"UserLambdaValidationException"}:
            cls = CognitoInvalid
        else:
            cls = CognitoError
        return cls(message, code=code, operation=operation)
    if isinstance(exc, BotoCoreError):
        return CognitoUnavailable(str(exc), code=type(exc).__name__, operation=operation)
    return CognitoError(str(exc), code=type(exc).__name__, operation=operation)


_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


def client_config() -> Config:
    # `standard` retries Cognito's TooManyRequestsException with backoff; `legacy` does not.
    return Config(
        retries={"mode": "standard", "total_max_attempts": 6},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=20,
    )


def get_client(region: str) -> Any:
    """A cached boto3 client for one region (boto3 clients are thread-safe)."""
    with _clients_lock:
        client = _clients.get(region)
        if client is None:
            client = boto3.session.Session().client(SERVICE, region_name=region, config=client_config())
            _clients[region] = client
        return client


def reset_clients() -> None:
    """Forget cached clients (tests, and after the endpoint changes)."""
    with _clients_lock:
        _clients.clear()


def _strip_metadata(response: dict[str, Any]) -> dict[str, Any]:
    response.pop("ResponseMetadata", None)
    return response


class CognitoGateway:
    """Typed calls against one region. Every method raises only `CognitoError` subclasses."""

    def __init__(self, region: str) -> None:
        self.region = region

    @property
    def client(self) -> Any:
        return get_client(self.region)

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        try:
            return _strip_metadata(getattr(self.client, operation)(**params))
        except Exception as exc:  # noqa: BLE001 - translated and re-raised
            raise translate(exc, operation) from exc

    def _paginate(self, operation: str, result_key: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        try:
            paginator = self.client.get_paginator(operation)
            for page in paginator.paginate(**params):
                yield page.get(result_key, [])
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, operation) from exc

    # Pools -----------------------------------------------------------------------
    def list_user_pools(self) -> Iterator[dict[str, Any]]:
        for page in self._paginate("list_user_pools", "UserPools", MaxResults=60):
            yield from page

    def describe_user_pool(self, pool_id: str) -> dict[str, Any]:
        return self._call("describe_user_pool", UserPoolId=pool_id)["UserPool"]

    def list_tags(self, arn: str) -> dict[str, str] | None:
        """Tags of a pool; None when the endpoint does not implement tagging (moto)."""
        try:
            return self._call("list_tags_for_resource", ResourceArn=arn).get("Tags", {})
        except CognitoError as exc:
            if exc.code in {"NotImplementedError", "InternalFailure", "InternalError", "500"}:
                return None
            raise

    # App clients -------------------------------------------------------------------
    def list_user_pool_clients(self, pool_id: str) -> list[dict[str, Any]]:
        clients: list[dict[str, Any]] = []
        for page in self._paginate("list_user_pool_clients", "UserPoolClients", UserPoolId=pool_id, MaxResults=60):
            clients.extend(page)
        return clients

    def describe_user_pool_client(self, pool_id: str, client_id: str) -> dict[str, Any]:
        """The client record. The caller must drop `ClientSecret` before keeping it."""
        return self._call("describe_user_pool_client", UserPoolId=pool_id, ClientId=client_id)[
            "UserPoolClient"
        ]

    # Groups --------------------------------------------------------------------------
    def list_groups(self, pool_id: str) -> Iterator[list[dict[str, Any]]]:
        yield from self._paginate("list_groups", "Groups", UserPoolId=pool_id, Limit=60)

    def list_users_in_group(self, pool_id: str, group_name: str) -> Iterator[list[dict[str, Any]]]:
        yield from self._paginate(
            "list_users_in_group", "Users", UserPoolId=pool_id, GroupName=group_name, Limit=USERS_PAGE_SIZE
        )

    # Users ---------------------------------------------------------------------------
    def list_users(self, pool_id: str, *, filter: str | None = None) -> Iterator[list[dict[str, Any]]]:
        """Pages of users (60 a page). ListUsers is not billed as active users; AdminGetUser is."""
        params: dict[str, Any] = {"UserPoolId": pool_id, "Limit": USERS_PAGE_SIZE}
        if filter:
            params["Filter"] = filter
        yield from self._paginate("list_users", "Users", **params)
