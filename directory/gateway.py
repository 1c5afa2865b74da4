"""The only module that talks to AWS: typed Cognito calls, paginators and error translation."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.session
import botocore.utils
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.retries import quota as retry_quota_module
from botocore.retries import standard

from . import ratelimit

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
        retries={"mode": "standard", "total_max_attempts": MAX_ATTEMPTS},
        connect_timeout=5,
        read_timeout=30,
        max_pool_connections=20,
    )


MAX_ATTEMPTS = 6


class _CognitoRetryConditions(standard.StandardRetryConditions):
    """botocore's `standard` conditions, except that LimitExceededException is not retried: botocore
    counts it as throttling, but for Cognito it is a hard quota (codes per user, e-mails per day)."""

    def is_retryable(self, context: Any) -> bool:
        if context.get_error_code() == "LimitExceededException":
            return False
        return super().is_retryable(context)


def _install_retry_policy(client: Any) -> None:
    # Same wiring as botocore.retries.standard.register_retry_handler, with our conditions.
    name = client.meta.service_model.service_id.hyphenize()
    unique_id = f"retry-config-{name}"
    client.meta.events.unregister(f"needs-retry.{name}", unique_id=unique_id)
    adapter = standard.RetryEventAdapter()
    detector = standard.ThrottlingErrorDetector(adapter)
    retry_quota = standard.RetryQuotaChecker(retry_quota_module.RetryQuota(), detector)
    handler = standard.RetryHandler(
        retry_policy=standard.RetryPolicy(
            retry_checker=_CognitoRetryConditions(max_attempts=MAX_ATTEMPTS),
            retry_backoff=standard.ExponentialBackoff(service_name=name, throttling_detector=detector),
        ),
        retry_event_adapter=adapter,
        retry_quota=retry_quota,
        service_name=name,
    )
    client.meta.events.register(f"after-call.{name}", retry_quota.release_retry_quota)
    client.meta.events.register(f"needs-retry.{name}", handler.needs_retry, unique_id=unique_id)


def utc_timestamp(value: Any) -> dt.datetime:
    """botocore's timestamp parser, answering in UTC (`dt.UTC`)."""
    if type(value) in (int, float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    parsed = botocore.utils.parse_timestamp(value)
    return parsed.astimezone(dt.UTC) if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def get_client(region: str) -> Any:
    """A cached boto3 client for one region (boto3 clients are thread-safe)."""
    with _clients_lock:
        client = _clients.get(region)
        if client is None:
            botocore_session = botocore.session.get_session()
            # Datetimes in UTC straight from the response: botocore's default parser gives
            # local-zone (dateutil tzlocal) datetimes, which a pull would convert again per user.
            botocore_session.get_component("response_parser_factory").set_parser_defaults(
                timestamp_parser=utc_timestamp
            )
            client = boto3.session.Session(botocore_session=botocore_session).client(
                SERVICE, region_name=region, config=client_config()
            )
            _install_retry_policy(client)
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

    def __init__(self, region: str, *, purpose: str = "push", account: str | None = None) -> None:
        self.region = region
        # The shared budget's lane: "pull" (syncs), "push" (the outbox) or "interactive"
        # (a call made inside an operator's request). See directory/ratelimit.py.
        self.purpose = purpose
        self.account = account
        # Retries botocore made (mostly throttling), summed over this gateway's calls.
        self.retries = 0
        # Seconds spent waiting for the shared request budget.
        self.budget_wait = 0.0
        # A pull lists several partitions at once through one gateway: its counters are shared.
        self._counters = threading.Lock()

    def _count(self, *, retries: int = 0, waited: float = 0.0) -> None:
        with self._counters:
            self.retries += retries
            self.budget_wait += waited

    @property
    def client(self) -> Any:
        return get_client(self.region)

    def _take_token(self, operation: str) -> None:
        """One token of the operation's quota category from the shared budget (blocks)."""
        try:
            waited = ratelimit.acquire(operation, region=self.region, lane=self.purpose, account=self.account)
        except ratelimit.BudgetTimeout as exc:
            raise CognitoThrottled(str(exc), code="LocalBudgetExhausted", operation=operation) from exc
        self._count(waited=waited)

    def _call(self, operation: str, **params: Any) -> dict[str, Any]:
        self._take_token(operation)
        try:
            response = getattr(self.client, operation)(**params)
        except Exception as exc:  # noqa: BLE001 - translated and re-raised
            if isinstance(exc, ClientError):
                self._count(retries=int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0)))
            raise translate(exc, operation) from exc
        self._count(retries=int(response.get("ResponseMetadata", {}).get("RetryAttempts", 0)))
        return _strip_metadata(response)

    def _paginate(self, operation: str, result_key: str, **params: Any) -> Iterator[list[dict[str, Any]]]:
        # Pages are fetched one by one, each after taking a token; a page without a next
        # token is the last, so no token is taken for a request that is never made.
        self._take_token(operation)
        try:
            paginator = self.client.get_paginator(operation)
            for page in paginator.paginate(**params):
                self._count(retries=int(page.get("ResponseMetadata", {}).get("RetryAttempts", 0)))
                yield page.get(result_key, [])
                if not (page.get("PaginationToken") or page.get("NextToken")):
                    return
                self._take_token(operation)
        except CognitoError:
            raise
        except Exception as exc:  # noqa: BLE001
            raise translate(exc, operation) from exc

    # Pools -----------------------------------------------------------------------
    def list_user_pools(self) -> Iterator[dict[str, Any]]:
        for page in self._paginate("list_user_pools", "UserPools", MaxResults=60):
            yield from page

    def describe_user_pool(self, pool_id: str) -> dict[str, Any]:
        return self._call("describe_user_pool", UserPoolId=pool_id)["UserPool"]

    def delete_user_pool(self, pool_id: str) -> None:
        """DeleteUserPool: the pool with its users, groups and clients. Cognito refuses it
        (InvalidParameterException) while the pool's deletion protection is ACTIVE."""
        self._call("delete_user_pool", UserPoolId=pool_id)

    def list_tags(self, arn: str) -> dict[str, str] | None:
        """Tags of a pool; None when the endpoint does not implement tagging (moto)."""
        try:
            return self._call("list_tags_for_resource", ResourceArn=arn).get("Tags", {})
        except CognitoError as exc:
            if exc.code in {"NotImplementedError", "InternalFailure", "InternalError", "500"}:
                return None
            raise

    def get_user_pool_mfa_config(self, pool_id: str) -> dict[str, Any] | None:
        """GetUserPoolMfaConfig (the MFA methods and their messages); None when the endpoint lacks it."""
        try:
            return self._call("get_user_pool_mfa_config", UserPoolId=pool_id)
        except CognitoError as exc:
            if exc.code in {"NotImplementedError", "InternalFailure", "InternalError", "500"}:
                return None
            raise

    def set_user_pool_mfa_config(self, pool_id: str, params: dict[str, Any]) -> None:
        """SetUserPoolMfaConfig: the mode and every method (an omitted method is turned off)."""
        self._call("set_user_pool_mfa_config", UserPoolId=pool_id, **params)

    def add_custom_attributes(self, pool_id: str, attributes: list[dict[str, Any]]) -> None:
        """AddCustomAttributes (names without `custom:`); Cognito never removes or changes one."""
        self._call("add_custom_attributes", UserPoolId=pool_id, CustomAttributes=attributes)

    def tag_resource(self, arn: str, tags: dict[str, str]) -> None:
        self._call("tag_resource", ResourceArn=arn, Tags=tags)

    def untag_resource(self, arn: str, keys: list[str]) -> None:
        self._call("untag_resource", ResourceArn=arn, TagKeys=keys)

    # App clients -------------------------------------------------------------------
    def list_user_pool_clients(self, pool_id: str) -> list[dict[str, Any]]:
        clients: list[dict[str, Any]] = []
        for page in self._paginate("list_user_pool_clients", "UserPoolClients", UserPoolId=pool_id, MaxResults=60):
            clients.extend(page)
        return clients

    def describe_user_pool_client(self, pool_id: str, client_id: str) -> dict[str, Any]:
        """The client record. The caller must drop `ClientSecret` before keeping it."""
        return self._call("describe_user_pool_client", UserPoolId=pool_id, ClientId=client_id)["UserPoolClient"]

    def delete_user_pool_client(self, pool_id: str, client_id: str) -> None:
        self._call("delete_user_pool_client", UserPoolId=pool_id, ClientId=client_id)

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

    def get_user(self, pool_id: str, username: str) -> dict[str, Any] | None:
        """One user's ListUsers record, or None. Uses ListUsers with a username filter rather
        than AdminGetUser, which Cognito bills as a monthly active user."""
        escaped = username.replace("\\", "\\\\").replace('"', '\\"')
        users = self._call("list_users", UserPoolId=pool_id, Filter=f'username = "{escaped}"', Limit=1)["Users"]
        for user in users:
            if user["Username"] == username:
                return user
        return None

    # User writes -----------------------------------------------------------------------
    def admin_create_user(
        self,
        pool_id: str,
        username: str,
        *,
        attributes: dict[str, str],
        delivery: list[str],
        temporary_password: str | None = None,
        suppress: bool = False,
    ) -> dict[str, Any]:
        """AdminCreateUser; returns Cognito's `User` record (no password in it). Without
        `temporary_password` Cognito generates one and delivers it itself. `delivery` is always
        sent: Cognito's default medium is SMS. The password is passed on to botocore and nothing else."""
        params: dict[str, Any] = {
            "UserPoolId": pool_id,
            "Username": username,
            "UserAttributes": [{"Name": k, "Value": v} for k, v in attributes.items()],
            "DesiredDeliveryMediums": list(delivery),
        }
        if temporary_password:
            params["TemporaryPassword"] = temporary_password
        if suppress:
            params["MessageAction"] = "SUPPRESS"
        return self._call("admin_create_user", **params)["User"]

    def admin_update_user_attributes(self, pool_id: str, username: str, attributes: dict[str, str]) -> None:
        self._call(
            "admin_update_user_attributes",
            UserPoolId=pool_id,
            Username=username,
            UserAttributes=[{"Name": k, "Value": v} for k, v in attributes.items()],
        )

    def admin_delete_user_attributes(self, pool_id: str, username: str, names: list[str]) -> None:
        self._call("admin_delete_user_attributes", UserPoolId=pool_id, Username=username, UserAttributeNames=names)

    def admin_set_user_enabled(self, pool_id: str, username: str, enabled: bool) -> None:
        operation = "admin_enable_user" if enabled else "admin_disable_user"
        self._call(operation, UserPoolId=pool_id, Username=username)

    def admin_delete_user(self, pool_id: str, username: str) -> None:
        self._call("admin_delete_user", UserPoolId=pool_id, Username=username)

    def admin_reset_user_password(self, pool_id: str, username: str) -> None:
        self._call("admin_reset_user_password", UserPoolId=pool_id, Username=username)

    def admin_confirm_sign_up(self, pool_id: str, username: str) -> None:
        self._call("admin_confirm_sign_up", UserPoolId=pool_id, Username=username)

    def admin_add_user_to_group(self, pool_id: str, username: str, group: str) -> None:
        self._call("admin_add_user_to_group", UserPoolId=pool_id, Username=username, GroupName=group)

    def admin_remove_user_from_group(self, pool_id: str, username: str, group: str) -> None:
        self._call("admin_remove_user_from_group", UserPoolId=pool_id, Username=username, GroupName=group)

    def admin_resend_invitation(
        self, pool_id: str, username: str, *, mediums: list[str]
    ) -> dict[str, Any]:
        """AdminCreateUser with MessageAction=RESEND: Cognito generates a new temporary password
        and sends the invitation again to a FORCE_CHANGE_PASSWORD user. Returns the User record."""
        return self._call(
            "admin_create_user",
            UserPoolId=pool_id,
            Username=username,
            MessageAction="RESEND",
            DesiredDeliveryMediums=mediums,
        ).get("User", {})

    def resend_confirmation_code(
        self, client_id: str, username: str, *, secret_hash: str | None = None
    ) -> dict[str, Any]:
        """ResendConfirmationCode (a client API: no Admin variant) for an UNCONFIRMED user.
        Returns Cognito's CodeDeliveryDetails (DeliveryMedium, masked Destination, AttributeName)."""
        params: dict[str, Any] = {"ClientId": client_id, "Username": username}
        if secret_hash is not None:
            params["SecretHash"] = secret_hash
        return self._call("resend_confirmation_code", **params).get("CodeDeliveryDetails", {})

    def sign_up(
        self,
        client_id: str,
        username: str,
        password: str,
        attributes: dict[str, str],
        *,
        secret_hash: str | None = None,
    ) -> dict[str, Any]:
        """SignUp (a client API): creates an UNCONFIRMED user and has Cognito send the verification
        message. Used only by the local-mode test send. Returns UserSub and CodeDeliveryDetails."""
        params: dict[str, Any] = {
            "ClientId": client_id,
            "Username": username,
            "Password": password,
            "UserAttributes": [{"Name": k, "Value": v} for k, v in attributes.items()],
        }
        if secret_hash is not None:
            params["SecretHash"] = secret_hash
        return self._call("sign_up", **params)

    def client_secret(self, pool_id: str, client_id: str) -> str | None:
        """The app client's secret, read now and returned only to the caller, who must drop it
        after use (never store, log or audit it). None when the client has no secret."""
        return self.describe_user_pool_client(pool_id, client_id).get("ClientSecret") or None

    def secret_hash_for(self, pool_id: str, client_id: str, username: str) -> str:
        """The SecretHash for a client with a secret. The secret lives only in this frame: read from
        Cognito, hashed, gone when the method returns."""
        secret = self.client_secret(pool_id, client_id)
        if secret is None:
            raise CognitoError(f"app client {client_id} has no secret any more; sync the pool", code="NoSecret")
        return secret_hash(secret, username, client_id)

    def admin_list_groups_for_user(self, pool_id: str, username: str) -> list[str]:
        names: list[str] = []
        for page in self._paginate(
            "admin_list_groups_for_user", "Groups", UserPoolId=pool_id, Username=username, Limit=60
        ):
            names.extend(g["GroupName"] for g in page)
        return names

    # Groups ----------------------------------------------------------------------------
    def get_group(self, pool_id: str, name: str) -> dict[str, Any]:
        return self._call("get_group", UserPoolId=pool_id, GroupName=name)["Group"]

    def create_group(self, pool_id: str, name: str, **params: Any) -> dict[str, Any]:
        return self._call("create_group", UserPoolId=pool_id, GroupName=name, **params)["Group"]

    def update_group(self, pool_id: str, name: str, **params: Any) -> dict[str, Any]:
        return self._call("update_group", UserPoolId=pool_id, GroupName=name, **params)["Group"]

    def delete_group(self, pool_id: str, name: str) -> None:
        self._call("delete_group", UserPoolId=pool_id, GroupName=name)

    # Creating pools and clients ----------------------------------------------------------
    def create_user_pool(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateUserPool; returns Cognito's `UserPool` record (its `Id` exists only from here on)."""
        return self._call("create_user_pool", **params)["UserPool"]


    def create_user_pool_client(self, params: dict[str, Any]) -> dict[str, Any]:
        """CreateUserPoolClient; returns the `UserPoolClient` record, `ClientSecret` included when one
        was generated. The caller shows the secret once and keeps it nowhere."""
        return self._call("create_user_pool_client", **params)["UserPoolClient"]

    # Full-config updates -----------------------------------------------------------------
    def update_user_pool(self, params: dict[str, Any]) -> None:
        """UpdateUserPool with a complete request (see `full_update_request`)."""
        self._call("update_user_pool", **params)

    def update_user_pool_client(self, params: dict[str, Any]) -> dict[str, Any]:
        """UpdateUserPoolClient with a complete request; the returned record has no secret."""
        record = self._call("update_user_pool_client", **params).get("UserPoolClient", {})
        record.pop("ClientSecret", None)
        return record

    def accepted_keys(self, operation: str) -> list[str]:
        """Members of an operation's request shape, from botocore's service model, so
        that keys AWS adds later are carried by full-config updates too."""
        return list(self.client.meta.service_model.operation_model(operation).input_shape.members)


def secret_hash(secret: str, username: str, client_id: str) -> str:
    """Cognito's SecretHash: Base64(HMAC_SHA256(key=client secret, message=username + client id))."""
    digest = hmac.new(secret.encode(), (username + client_id).encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


# DescribeUserPool names a few things differently from UpdateUserPool's request.
_DESCRIBE_TO_UPDATE_POOL = {"Id": "UserPoolId", "Name": "PoolName"}


def full_update_request(operation: str, described: dict[str, Any], accepted: list[str]) -> dict[str, Any]:
    """The complete UpdateUserPool / UpdateUserPoolClient request that leaves every setting
    as `described` has it: every accepted key the description carries, nothing else.

    UpdateUserPool(Client) resets every setting the request leaves out to its default, so
    the request must always be built from a fresh Describe, never from a partial dict.
    """
    renames = _DESCRIBE_TO_UPDATE_POOL if operation == "UpdateUserPool" else {}
    request: dict[str, Any] = {}
    for key, value in described.items():
        target = renames.get(key, key)
        if target in accepted and value is not None:
            request[target] = value
    if operation == "UpdateUserPool":
        # An empty SmsConfiguration/EmailConfiguration dict is refused; omit empties.
        request = {k: v for k, v in request.items() if v != {}}
    return request


def service_enum(shape: str) -> set[str]:
    """The allowed values of an enum shape in botocore's cognito-idp service model."""
    return set(_service_model().shape_for(shape).enum)


def service_shape(shape: str) -> Any:
    return _service_model().shape_for(shape)


_model_cache: dict[str, Any] = {}


def _service_model() -> Any:
    model = _model_cache.get("model")
    if model is None:
        model = botocore.session.get_session().get_service_model(SERVICE)
        _model_cache["model"] = model
    return model
