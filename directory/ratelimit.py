"""Shared request budget: one token bucket per account, region and Cognito quota category.

Cognito's request-rate quotas are per account and region, per category (UserList 30/s,
UserUpdate 25/s …), shared by every caller. Every gateway call takes one token of its
operation's category before it is sent, from a bucket that every worker process shares
through Redis (an atomic Lua script) when the broker is Redis, or that lives in this
process (thread-safe) with the embedded filesystem broker. The budget is set below
Cognito's quotas (80 % by default), so Cognito's throttling stays the exception that
botocore retries, not the way the project finds its speed.

Lanes keep it fair: a gateway says what it is for (`pull`, `push`, `interactive`). While
another lane has asked for tokens within the last second, a lane with a share below 1 gets
at most that share of the category's rate (pulls 70 %, pushes 90 %, interactive calls made
inside an operator's request 100 %), so a big pull cannot starve operators' edits and a
bulk push cannot starve a pull. Alone, every lane may use the whole rate.
"""

from __future__ import annotations

import logging
import random
import re
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

# Cognito's default quotas (requests per second, per account and region).
# https://docs.aws.amazon.com/cognito/latest/developerguide/quotas.html#category_operations
COGNITO_QUOTAS: dict[str, float] = {
    "UserAuthentication": 120,
    "UserCreation": 50,
    "UserFederation": 25,
    "UserAccountRecovery": 30,
    "UserRead": 120,
    "UserUpdate": 25,
    "UserResourceRead": 50,
    "UserResourceUpdate": 25,
    "UserList": 30,
    "UserPoolRead": 15,
    "UserPoolUpdate": 15,
    "UserPoolResourceRead": 20,
    "UserPoolResourceUpdate": 15,
    "UserPoolClientRead": 15,
    "UserPoolClientUpdate": 15,
    "UserImportJobRead": 5,
    "UserImportJobUpdate": 5,
}
DEFAULT_FRACTION = 0.8
DEFAULT_LIMITS: dict[str, float] = {name: round(quota * DEFAULT_FRACTION, 3) for name, quota in COGNITO_QUOTAS.items()}

_CATEGORY_OPERATIONS: dict[str, tuple[str, ...]] = {
    "UserAuthentication": (
        "AdminInitiateAuth", "AdminRespondToAuthChallenge", "InitiateAuth", "RespondToAuthChallenge",
        "GetTokensFromRefreshToken", "RevokeToken", "GlobalSignOut", "AdminUserGlobalSignOut",
        "AssociateSoftwareToken", "VerifySoftwareToken", "ConfirmDevice", "GetUser", "ChangePassword",
    ),
    "UserCreation": ("AdminCreateUser", "SignUp", "AdminConfirmSignUp", "ConfirmSignUp"),
    "UserFederation": ("AdminLinkProviderForUser", "AdminDisableProviderForUser"),
    "UserAccountRecovery": ("AdminResetUserPassword", "ForgotPassword", "ConfirmForgotPassword"),
    "UserRead": ("AdminGetUser",),
    "UserUpdate": (
        "AdminUpdateUserAttributes", "AdminDeleteUserAttributes", "AdminEnableUser", "AdminDisableUser",
        "AdminDeleteUser", "AdminAddUserToGroup", "AdminRemoveUserFromGroup", "AdminSetUserPassword",
        "AdminSetUserSettings", "AdminSetUserMFAPreference", "AdminDeleteSoftwareToken", "AdminForgetDevice",
        "AdminUpdateDeviceStatus", "AdminUpdateAuthEventFeedback", "AdminRevokeUserSession",
        "UpdateUserAttributes", "DeleteUserAttributes", "DeleteUser", "SetUserSettings", "SetUserMFAPreference",
        "VerifyUserAttribute", "UpdateDeviceStatus", "ForgetDevice", "UpdateAuthEventFeedback",
    ),
    "UserResourceRead": (
        "AdminListGroupsForUser", "AdminGetDevice", "AdminListDevices", "AdminListUserAuthEvents",
        "AdminListUserSessions", "AdminGetUserAuthFactors", "ResendConfirmationCode",
        "GetUserAttributeVerificationCode", "GetDevice", "ListDevices", "GetUserAuthFactors",
    ),
    "UserList": ("ListUsers", "ListUsersInGroup"),
    "UserPoolRead": (
        "DescribeUserPool", "ListUserPools", "GetUserPoolMfaConfig", "DescribeRiskConfiguration",
        "GetLogDeliveryConfiguration", "GetSigningCertificate", "GetUserPoolSessionConfiguration",
    ),
    "UserPoolUpdate": (
        "CreateUserPool", "UpdateUserPool", "DeleteUserPool", "SetUserPoolMfaConfig", "AddCustomAttributes",
        "SetRiskConfiguration", "SetLogDeliveryConfiguration", "SetUserPoolSessionConfiguration",
    ),
    "UserPoolResourceRead": (
        "GetGroup", "ListGroups", "ListTagsForResource", "DescribeResourceServer", "ListResourceServers",
        "DescribeIdentityProvider", "ListIdentityProviders", "GetIdentityProviderByIdentifier",
        "DescribeUserPoolDomain", "GetUICustomization", "GetCSVHeader", "DescribeManagedLoginBranding",
        "DescribeManagedLoginBrandingByClient", "ListTerms", "DescribeTerms",
    ),
    "UserPoolResourceUpdate": (
        "CreateGroup", "UpdateGroup", "DeleteGroup", "TagResource", "UntagResource", "CreateResourceServer",
        "UpdateResourceServer", "DeleteResourceServer", "CreateIdentityProvider", "UpdateIdentityProvider",
        "DeleteIdentityProvider", "CreateUserPoolDomain", "UpdateUserPoolDomain", "DeleteUserPoolDomain",
        "SetUICustomization", "CreateManagedLoginBranding", "UpdateManagedLoginBranding",
        "DeleteManagedLoginBranding", "CreateTerms", "UpdateTerms", "DeleteTerms",
    ),
    "UserPoolClientRead": ("DescribeUserPoolClient", "ListUserPoolClients", "ListUserPoolClientSecrets"),
    "UserPoolClientUpdate": (
        "CreateUserPoolClient", "UpdateUserPoolClient", "DeleteUserPoolClient", "AddUserPoolClientSecret",
        "DeleteUserPoolClientSecret", "SetUserPoolClientSessionConfiguration",
    ),
    "UserImportJobRead": ("DescribeUserImportJob", "ListUserImportJobs"),
    "UserImportJobUpdate": ("CreateUserImportJob", "StartUserImportJob", "StopUserImportJob"),
}  # fmt: skip
# An operation not in the map (one AWS adds later) is charged to a small category: being
# too careful costs a little speed, being too generous costs throttling.
DEFAULT_CATEGORY = "UserPoolUpdate"


def _norm(operation: str) -> str:
    return operation.replace("_", "").lower()


OPERATION_CATEGORY: dict[str, str] = {op: cat for cat, ops in _CATEGORY_OPERATIONS.items() for op in ops}
_BY_NORMALISED = {_norm(op): cat for op, cat in OPERATION_CATEGORY.items()}


def category_for(operation: str) -> str:
    """The quota category of a Cognito operation, by API name (`ListUsers`) or boto3 method (`list_users`)."""
    return _BY_NORMALISED.get(_norm(operation), DEFAULT_CATEGORY)


LANES = ("pull", "push", "interactive")
DEFAULT_SHARES: dict[str, float] = {"pull": 0.7, "push": 0.9, "interactive": 1.0}
# A lane counts as waiting for this long after it last asked for a token; waiters poll
# more often than that (POLL_SECONDS), so a waiting lane is always seen.
CONTENTION_WINDOW = 1.0
POLL_SECONDS = 0.25
# A bucket holds at most half a second of its rate. Cognito's own bucket holds a second of
# the quota, so even a budget set at the quota itself leaves it half a second of slack for
# requests that bunch on their way (threads, the network); a full second here would let a
# budget at 100 % drain it and be throttled by every request that arrives a little early.
BURST_SECONDS = 0.5
EPSILON = 1e-9


class BudgetTimeout(Exception):
    """No token came within the configured wait; the gateway reports it as throttling."""

    def __init__(self, category: str, waited: float) -> None:
        super().__init__(f"local request budget for {category} exhausted: no token within {waited:.0f} s")
        self.category = category
        self.waited = waited


def parse_limits(value: str | Mapping[str, Any] | None) -> dict[str, float] | None:
    """Limits per category from `"UserList=25,UserUpdate=20"` (or a dict) merged over the
    defaults; None when the value is `off`. Raises ValueError naming a bad entry."""
    if value is None:
        return dict(DEFAULT_LIMITS)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in {"off", "false", "0", "none", "disabled"}:
            return None
        items: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in re.split(r"[,\s]+", text))):
            name, sep, number = part.partition("=")
            if not sep:
                raise ValueError(f"COGNITO_RATE_LIMITS: {part!r} is not CATEGORY=RATE")
            items[name.strip()] = number.strip()
    else:
        items = dict(value)
    limits = dict(DEFAULT_LIMITS)
    for name, raw in items.items():
        if name not in COGNITO_QUOTAS:
            known = ", ".join(COGNITO_QUOTAS)
            raise ValueError(f"COGNITO_RATE_LIMITS: unknown quota category {name!r} (known: {known})")
        try:
            rate = float(raw)
        except (TypeError, ValueError):
            raise ValueError(f"COGNITO_RATE_LIMITS: {name}={raw!r} is not a number") from None
        if rate <= 0:
            raise ValueError(f"COGNITO_RATE_LIMITS: {name} must be above 0 per second (or the whole setting `off`)")
        limits[name] = rate
    return limits


# --------------------------------------------------------------------------- backends


class Backend(Protocol):
    def take(self, key: str, *, lane: str, rate: float, burst: float, share: float, lanes: Iterable[str]) -> float:
        """Take one token: 0 when taken, else the seconds to wait before asking again."""


@dataclass
class _State:
    tokens: float
    stamp: float
    lane_tokens: dict[str, float] = field(default_factory=dict)
    lane_stamp: dict[str, float] = field(default_factory=dict)
    demand: dict[str, float] = field(default_factory=dict)


def _take(state: _State, now: float, *, lane: str, rate: float, burst: float, share: float,
          lanes: Iterable[str]) -> float:
    """The bucket arithmetic, shared by the local backend and mirrored by the Lua script."""
    state.tokens = min(burst, state.tokens + max(0.0, now - state.stamp) * rate)
    state.stamp = now
    state.demand[lane] = now
    contended = any(o != lane and now - state.demand.get(o, -1e18) < CONTENTION_WINDOW for o in lanes)
    lane_tokens = 0.0
    if share < 1:
        cap = max(1.0, burst * share)
        lane_tokens = state.lane_tokens.get(lane, cap)
        lane_tokens = min(cap, lane_tokens + max(0.0, now - state.lane_stamp.get(lane, now)) * rate * share)
        state.lane_stamp[lane] = now
    # EPSILON: a refill that lands on 1 token must not be lost to float rounding.
    wait = (1 - state.tokens) / rate if state.tokens < 1 - EPSILON else 0.0
    if share < 1 and contended and lane_tokens < 1 - EPSILON:
        wait = max(wait, (1 - lane_tokens) / (rate * share))
    if wait == 0:
        state.tokens -= 1
        lane_tokens = max(0.0, lane_tokens - 1)
    if share < 1:
        state.lane_tokens[lane] = lane_tokens
    return wait


class LocalBackend:
    """Buckets in this process, guarded by one lock (the embedded broker's workers are threads)."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, _State] = {}

    def take(self, key: str, *, lane: str, rate: float, burst: float, share: float, lanes: Iterable[str]) -> float:
        with self._lock:
            now = self._clock()
            state = self._buckets.get(key)
            if state is None:
                state = self._buckets[key] = _State(tokens=burst, stamp=now)
            return _take(state, now, lane=lane, rate=rate, burst=burst, share=share, lanes=lanes)

    def reset(self) -> None:
        with self._lock:
            self._buckets.clear()


# The same arithmetic as _take, atomically in Redis. Redis's own clock (TIME) is used so
# that workers on machines with different clocks agree.
_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local lane, share, window = ARGV[3], tonumber(ARGV[4]), tonumber(ARGV[5])
local key = KEYS[1]
local v = redis.call('HMGET', key, 't', 'ts', 'lt:' .. lane, 'lts:' .. lane)
local tokens = tonumber(v[1]) or burst
local stamp = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - stamp) * rate)
local contended = false
for i = 7, #ARGV do
  if ARGV[i] ~= lane then
    local d = tonumber(redis.call('HGET', key, 'd:' .. ARGV[i]))
    if d and now - d < window then contended = true end
  end
end
local lt = 0
if share < 1 then
  local cap = math.max(1, burst * share)
  lt = tonumber(v[3]) or cap
  local lts = tonumber(v[4]) or now
  lt = math.min(cap, lt + math.max(0, now - lts) * rate * share)
end
local wait = 0
if tokens < 1 - 1e-9 then wait = (1 - tokens) / rate end
if share < 1 and contended and lt < 1 - 1e-9 then wait = math.max(wait, (1 - lt) / (rate * share)) end
if wait == 0 then
  tokens = tokens - 1
  lt = math.max(0, lt - 1)
end
redis.call('HSET', key, 't', tostring(tokens), 'ts', tostring(now), 'd:' .. lane, tostring(now))
if share < 1 then redis.call('HSET', key, 'lt:' .. lane, tostring(lt), 'lts:' .. lane, tostring(now)) end
redis.call('PEXPIRE', key, tonumber(ARGV[6]))
return tostring(wait)
"""


class RedisBackend:
    """Buckets in Redis, shared by every process; one EVALSHA per token."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._script = self.client.register_script(_LUA)

    def take(self, key: str, *, lane: str, rate: float, burst: float, share: float, lanes: Iterable[str]) -> float:
        # An idle bucket is full again after burst/rate seconds; keep it a little longer.
        ttl_ms = int(max(10.0, 2 * burst / rate + CONTENTION_WINDOW) * 1000)
        reply = self._script(keys=[key], args=[rate, burst, lane, share, CONTENTION_WINDOW, ttl_ms, *lanes])
        return float(reply)


# --------------------------------------------------------------------------- the budget


@dataclass
class Budget:
    """Token buckets for every category, on one backend; `limits` None means no budget."""

    backend: Backend | None
    limits: dict[str, float] | None = field(default_factory=lambda: dict(DEFAULT_LIMITS))
    shares: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    max_wait: float = 60.0
    prefix: str = "cognito-admin:ratelimit"

    @property
    def enabled(self) -> bool:
        return self.limits is not None and self.backend is not None

    def key(self, category: str, *, account: str, region: str) -> str:
        return f"{self.prefix}:{account}:{region}:{category}"

    def acquire(self, category: str, *, region: str, account: str = "default", lane: str = "push") -> float:
        """Block until a token of `category` is available; return the seconds waited.
        Raises BudgetTimeout after `max_wait` seconds."""
        if not self.enabled:
            return 0.0
        assert self.limits is not None and self.backend is not None
        rate = self.limits.get(category) or self.limits[DEFAULT_CATEGORY]
        burst = max(1.0, rate * BURST_SECONDS)
        share = self.shares.get(lane, 1.0)
        key = self.key(category, account=account, region=region)
        started = time.monotonic()
        while True:
            wait = self.backend.take(key, lane=lane, rate=rate, burst=burst, share=share, lanes=LANES)
            waited = time.monotonic() - started
            if wait <= 0:
                return waited
            if waited + wait > self.max_wait:
                raise BudgetTimeout(category, waited)
            # Poll at least every POLL_SECONDS so this lane keeps counting as waiting; the
            # jitter keeps threads that woke together from asking in lockstep.
            time.sleep(min(wait, POLL_SECONDS) + random.uniform(0, 0.002))


# --------------------------------------------------------------------------- from settings

_local = LocalBackend()
_redis: dict[str, RedisBackend] = {}
_lock = threading.Lock()
_cache: dict[str, Any] = {}


def redis_url() -> str:
    """The Redis the budget lives in: COGNITO_RATE_LIMIT_REDIS_URL, else the broker when it is Redis, else ''."""
    url = getattr(settings, "COGNITO_RATE_LIMIT_REDIS_URL", "") or ""
    if url:
        return url
    broker = getattr(settings, "CELERY_BROKER_URL", "") or ""
    return broker if broker.startswith(("redis://", "rediss://")) else ""


def _backend(url: str) -> Backend:
    if not url:
        return _local
    with _lock:
        backend = _redis.get(url)
        if backend is None:
            backend = _redis[url] = RedisBackend(url)
        return backend


def budget() -> Budget:
    """The budget the settings describe (rebuilt only when they change)."""
    raw = getattr(settings, "COGNITO_RATE_LIMITS", "")
    url = redis_url()
    share = float(getattr(settings, "COGNITO_RATE_LIMIT_PULL_SHARE", DEFAULT_SHARES["pull"]))
    max_wait = float(getattr(settings, "COGNITO_RATE_LIMIT_MAX_WAIT", 60))
    prefix = getattr(settings, "COGNITO_RATE_LIMIT_PREFIX", "") or "cognito-admin:ratelimit"
    signature = repr((raw if isinstance(raw, str) else sorted(dict(raw or {}).items()), url, share, max_wait, prefix))
    cached = _cache.get("budget")
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        limits = parse_limits(raw or None)
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from exc
    made = Budget(
        backend=_backend(url) if limits is not None else None,
        limits=limits,
        shares={**DEFAULT_SHARES, "pull": share},
        max_wait=max_wait,
        prefix=prefix,
    )
    _cache["budget"] = (signature, made)
    return made


def default_account() -> str:
    """The account part of the bucket keys: COGNITO_ACCOUNT_ID, else "default".

    One deployment talks to one account (its credentials'). The pool ARN's account is not
    used: discovery, pushes and interactive calls do not always know the pool, and a budget
    is shared only if every caller names it the same way. Set COGNITO_ACCOUNT_ID when
    deployments for several accounts share one Redis."""
    return getattr(settings, "COGNITO_ACCOUNT_ID", "") or "default"


_fallback_logged: dict[str, float] = {}


def acquire(operation: str, *, region: str, lane: str = "push", account: str | None = None) -> float:
    """Take one token for a Cognito operation (blocking); return the seconds waited.

    When the budget's Redis cannot be reached the token comes from this process's bucket
    instead (logged at most once a minute): a Redis blip must not stop every Cognito call."""
    current = budget()
    if not current.enabled:
        return 0.0
    category = category_for(operation)
    account = account or default_account()
    try:
        return current.acquire(category, region=region, account=account, lane=lane)
    except BudgetTimeout:
        raise
    except Exception as exc:  # noqa: BLE001 - redis errors: fall back to the local bucket
        if isinstance(current.backend, LocalBackend):
            raise
        now = time.monotonic()
        if now - _fallback_logged.get("at", -1e9) > 60:
            _fallback_logged["at"] = now
            logger.warning("rate-limit Redis unavailable (%s); using this process's budget", exc)
        local = Budget(backend=_local, limits=current.limits, shares=current.shares, max_wait=current.max_wait,
                       prefix=current.prefix)
        return local.acquire(category, region=region, account=account, lane=lane)


def reset_local() -> None:
    """Empty this process's buckets (tests)."""
    _local.reset()
