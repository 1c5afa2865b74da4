"""The shared request budget (directory/ratelimit.py): bucket arithmetic, the operation map,
configuration, fairness between pulls and pushes, a Redis bucket shared by several processes,
and the gateway taking a token before every call and every page."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

from directory import gateway, ratelimit
from directory.gateway import CognitoGateway, CognitoThrottled
from directory.ratelimit import Budget, LocalBackend, RedisBackend, category_for, parse_limits
from tests.cognito_helpers import create_pool, create_user

ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _fresh_local_buckets():
    ratelimit.reset_local()
    yield
    ratelimit.reset_local()


# --------------------------------------------------------------------------- operations and settings


def test_operations_map_to_cognito_categories():
    assert category_for("ListUsers") == category_for("list_users") == "UserList"
    assert category_for("ListUsersInGroup") == "UserList"
    assert category_for("AdminCreateUser") == category_for("SignUp") == "UserCreation"
    assert category_for("AdminConfirmSignUp") == "UserCreation"
    assert category_for("admin_update_user_attributes") == category_for("AdminDisableUser") == "UserUpdate"
    assert category_for("ResendConfirmationCode") == "UserResourceRead"
    assert category_for("AdminListGroupsForUser") == "UserResourceRead"
    assert category_for("DescribeUserPoolClient") == "UserPoolClientRead"
    assert category_for("UpdateUserPoolClient") == "UserPoolClientUpdate"
    assert category_for("DescribeUserPool") == category_for("ListUserPools") == "UserPoolRead"
    assert category_for("UpdateUserPool") == "UserPoolUpdate"
    assert category_for("ListGroups") == category_for("GetGroup") == "UserPoolResourceRead"
    assert category_for("CreateGroup") == "UserPoolResourceUpdate"
    assert category_for("AdminResetUserPassword") == "UserAccountRecovery"
    assert category_for("AdminGetUser") == "UserRead"
    # Unknown operations are charged to a small category, not let through.
    assert category_for("SomethingAwsAddsLater") == ratelimit.DEFAULT_CATEGORY
    assert ratelimit.COGNITO_QUOTAS[ratelimit.DEFAULT_CATEGORY] == 15


def test_every_operation_the_gateway_calls_has_a_category():
    source = (ROOT / "directory" / "gateway.py").read_text()
    called = set(re.findall(r"""_(?:call|paginate)\(\s*["']([a-z_]+)["']""", source))
    called |= set(re.findall(r"""["'](admin_(?:enable|disable)_user)["']""", source))
    assert {"list_users", "describe_user_pool", "admin_update_user_attributes", "admin_enable_user"} <= called
    unmapped = sorted(op for op in called if ratelimit._norm(op) not in ratelimit._BY_NORMALISED)
    assert unmapped == []


def test_limits_default_to_80_percent_and_merge_overrides():
    defaults = parse_limits(None)
    assert defaults["UserList"] == 24 and defaults["UserUpdate"] == 20 and defaults["UserCreation"] == 40
    assert defaults["UserPoolRead"] == 12 and defaults["UserPoolClientRead"] == 12
    assert all(defaults[c] < q for c, q in ratelimit.COGNITO_QUOTAS.items())
    merged = parse_limits("UserList=25, UserUpdate=20.5")
    assert merged["UserList"] == 25 and merged["UserUpdate"] == 20.5 and merged["UserCreation"] == 40
    assert parse_limits("off") is None and parse_limits("OFF") is None
    for bad, words in [("UserLst=5", "UserLst"), ("UserList=fast", "not a number"), ("UserList=0", "above 0"),
                       ("UserList", "CATEGORY=RATE")]:
        with pytest.raises(ValueError, match=words):
            parse_limits(bad)


def test_budget_follows_the_settings(settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.COGNITO_RATE_LIMIT_REDIS_URL = ""
    settings.COGNITO_RATE_LIMITS = "UserList=7"
    budget = ratelimit.budget()
    assert budget.enabled and isinstance(budget.backend, LocalBackend) and budget.limits["UserList"] == 7
    settings.COGNITO_RATE_LIMITS = "off"
    assert not ratelimit.budget().enabled
    assert ratelimit.acquire("ListUsers", region="us-east-1") == 0.0
    settings.COGNITO_RATE_LIMITS = ""
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6399/3"
    assert ratelimit.redis_url() == "redis://127.0.0.1:6399/3"
    assert isinstance(ratelimit.budget().backend, RedisBackend)
    settings.COGNITO_RATE_LIMIT_REDIS_URL = "redis://127.0.0.1:6398/9"
    assert ratelimit.budget().backend.url == "redis://127.0.0.1:6398/9"


# --------------------------------------------------------------------------- bucket arithmetic


def test_bucket_math_with_a_fake_clock():
    clock = FakeClock()
    backend = LocalBackend(clock=clock)

    def take(lane="push"):
        return backend.take("k", lane=lane, rate=10, burst=10, share=ratelimit.DEFAULT_SHARES[lane],
                            lanes=ratelimit.LANES)

    # A full bucket: one second's worth at once, then one token every 1/rate seconds.
    assert [take() for _ in range(10)] == [0.0] * 10
    assert take() == pytest.approx(0.1)
    clock.now += 0.05
    assert take() == pytest.approx(0.05)
    clock.now += 0.05
    assert take() == 0.0
    assert take() == pytest.approx(0.1)
    # Refill is capped at the burst.
    clock.now += 60
    assert [take() for _ in range(10)] == [0.0] * 10
    assert take() > 0


def _simulate(seconds: float, clients: dict[str, int], rate: float = 20.0) -> dict[str, int]:
    """Every client asks again as soon as it is allowed to (a hammering worker thread)."""
    clock = FakeClock()
    backend = LocalBackend(clock=clock)
    next_ask = {(lane, i): clock.now for lane, n in clients.items() for i in range(n)}
    got = dict.fromkeys(clients, 0)
    end = clock.now + seconds
    while clock.now < end:
        for (lane, i), when in sorted(next_ask.items(), key=lambda kv: kv[1]):
            if when > clock.now:
                continue
            wait = backend.take("k", lane=lane, rate=rate, burst=rate, share=ratelimit.DEFAULT_SHARES[lane],
                                lanes=ratelimit.LANES)
            if wait <= 0:
                got[lane] += 1
                next_ask[(lane, i)] = clock.now + 0.01  # the Cognito call itself
            else:
                next_ask[(lane, i)] = clock.now + min(wait, ratelimit.POLL_SECONDS)
        clock.now += 0.001
    return got


def test_fair_shares_in_the_arithmetic():
    alone = _simulate(10, {"pull": 4})
    assert 200 <= alone["pull"] <= 221  # the whole rate (20/s) plus the first second's burst
    both = _simulate(10, {"pull": 4, "push": 2})
    # The pull gets at most its 70 % while pushes wait; pushes get the rest.
    assert both["pull"] <= 0.7 * 20 * 10 + 20
    assert both["push"] >= 0.3 * 20 * 10 * 0.9
    assert both["pull"] + both["push"] <= 221
    # A flood of pushes cannot starve a pull either (pushes are capped at 90 % while it waits).
    flood = _simulate(10, {"pull": 1, "push": 6})
    assert flood["pull"] >= 0.1 * 20 * 10 * 0.9


# --------------------------------------------------------------------------- real threads, both backends


@pytest.fixture(params=["local", "redis"])
def backend(request):
    if request.param == "local":
        return LocalBackend()
    url = request.getfixturevalue("redis_url")
    return RedisBackend(url)


def _budget(backend, **limits) -> Budget:
    # A unique prefix: tests (and parallel runs) never share a bucket.
    return Budget(backend=backend, limits={**ratelimit.DEFAULT_LIMITS, **limits}, max_wait=30,
                  prefix=f"test-ratelimit:{uuid.uuid4().hex}")


def _hammer(budget: Budget, lane: str, stop: threading.Event, counts: dict[str, int], lock: threading.Lock) -> None:
    while not stop.is_set():
        budget.acquire("UserList", region="us-east-1", lane=lane)
        with lock:
            counts[lane] += 1


def test_threads_share_one_rate(backend):
    budget = _budget(backend, UserList=20)
    started = time.monotonic()
    threads = [threading.Thread(target=lambda: [budget.acquire("UserList", region="r1") for _ in range(15)])
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - started
    # 60 tokens at 20/s with a burst of half a second (10): at least (60 - 10) / 20 = 2.5 s.
    assert 2.4 <= elapsed <= 4, elapsed
    # Another region (or category) has a bucket of its own: a full burst at once.
    started = time.monotonic()
    for _ in range(10):
        budget.acquire("UserList", region="r2")
    assert time.monotonic() - started < 0.3


def test_pull_hammering_userlist_leaves_pushes_their_share(backend):
    rate, seconds = 20, 4.0
    budget = _budget(backend, UserList=rate)
    counts = {"pull": 0, "push": 0}
    lock = threading.Lock()
    stop = threading.Event()
    pulls = [threading.Thread(target=_hammer, args=(budget, "pull", stop, counts, lock)) for _ in range(4)]
    for t in pulls:
        t.start()
    time.sleep(1.0)  # the pull alone first: it has the whole bucket
    with lock:
        alone = counts["pull"]
    pushes = [threading.Thread(target=_hammer, args=(budget, "push", stop, counts, lock)) for _ in range(2)]
    with lock:
        counts["pull"] = 0
    for t in pushes:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in pulls + pushes:
        t.join(5)
    assert alone >= rate  # uncontended, the pull is not held to its share
    # Pushes got at least their 30 % share while the pull kept asking; the pull at most ~70 %.
    assert counts["push"] >= 0.3 * rate * seconds * 0.8, counts
    assert counts["pull"] <= 0.7 * rate * seconds + rate * 0.7 + 2, counts
    assert counts["pull"] >= 0.5 * rate * seconds, counts  # and the pull was not starved
    assert counts["pull"] + counts["push"] <= rate * (seconds + 0.5) + 2, counts


_CHILD = textwrap.dedent(
    """
    import sys, time
    from directory.ratelimit import Budget, RedisBackend, DEFAULT_LIMITS
    url, prefix, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    budget = Budget(backend=RedisBackend(url), limits={**DEFAULT_LIMITS, "UserList": 20}, max_wait=30, prefix=prefix)
    print("ready", flush=True)
    sys.stdin.readline()
    for _ in range(n):
        budget.acquire("UserList", region="us-east-1", lane="push")
    print("done", time.time(), flush=True)
    """
)


def test_redis_bucket_is_shared_by_processes(redis_url):
    prefix = f"test-ratelimit:{uuid.uuid4().hex}"
    procs = [
        subprocess.Popen([sys.executable, "-c", _CHILD, redis_url, prefix, "40"], cwd=ROOT, text=True,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(3)
    ]
    try:
        for p in procs:
            assert p.stdout.readline().strip() == "ready", p.stderr.read()
        started = time.time()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        finished = [float(p.stdout.readline().split()[1]) for p in procs]
    finally:
        for p in procs:
            p.kill()
            p.wait()
    elapsed = max(finished) - started
    # 120 tokens at 20/s (burst 10) across the three processes: >= 5.5 s. Each process with a
    # bucket of its own would have finished its 40 in about 1.5 s.
    assert 5.2 <= elapsed <= 8.5, elapsed


# --------------------------------------------------------------------------- through the gateway


@pytest.fixture
def local_budget(settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.COGNITO_RATE_LIMIT_REDIS_URL = ""
    return settings


def test_gateway_takes_a_token_per_call_and_per_page(cognito, local_budget, monkeypatch):
    local_budget.COGNITO_RATE_LIMITS = "UserList=5"
    pool_id = create_pool(cognito, name="budget")
    for i in range(130):
        create_user(cognito, pool_id, f"u{i:03d}", email=f"u{i}@example.com", name=f"U {i}")
    taken: list[tuple[str, str]] = []
    real = ratelimit.acquire

    def spy(operation, **kwargs):
        taken.append((operation, kwargs["lane"]))
        return real(operation, **kwargs)

    monkeypatch.setattr(ratelimit, "acquire", spy)
    gw = CognitoGateway("us-east-1", purpose="pull")
    started = time.monotonic()
    pages = list(gw.list_users(pool_id))
    assert [len(p) for p in pages] == [60, 60, 10]
    assert taken == [("list_users", "pull")] * 3  # one per page, none for a page never requested
    for i in range(7):
        assert gw.get_user(pool_id, f"u{i:03d}")["Username"] == f"u{i:03d}"
    # 10 UserList requests at 5/s with a burst of half a second (2.5): at least (10 - 2.5) / 5 = 1.5 s.
    assert time.monotonic() - started >= 1.45
    assert gw.budget_wait >= 0.5  # less than 1 s: the calls themselves let the bucket refill
    assert taken[3:] == [("list_users", "pull")] * 7
    gw.describe_user_pool(pool_id)
    assert taken[-1] == ("describe_user_pool", "pull")


def test_budget_off_does_not_wait(cognito, local_budget):
    local_budget.COGNITO_RATE_LIMITS = "off"
    pool_id = create_pool(cognito, name="nobudget")
    create_user(cognito, pool_id, "ann", email="ann@example.com", name="Ann")
    gw = CognitoGateway("us-east-1")
    started = time.monotonic()
    for _ in range(40):
        assert gw.get_user(pool_id, "ann") is not None
    assert gw.budget_wait == 0.0
    # 40 UserList calls with the default budget (24/s) would take over 0.6 s of waiting alone.
    assert time.monotonic() - started < 5


def test_no_token_within_the_wait_is_throttling(cognito, local_budget):
    local_budget.COGNITO_RATE_LIMITS = "UserList=1"
    local_budget.COGNITO_RATE_LIMIT_MAX_WAIT = 0.3
    pool_id = create_pool(cognito, name="starved")
    gw = CognitoGateway("us-east-1")
    assert gw.get_user(pool_id, "nobody") is None  # the one token of the burst
    with pytest.raises(CognitoThrottled) as caught:
        gw.get_user(pool_id, "nobody")
    assert caught.value.code == "LocalBudgetExhausted" and "UserList" in str(caught.value)
    assert gateway.translate(caught.value) is caught.value
