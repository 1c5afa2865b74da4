"""The emulator's quota mode: Cognito's per-category request rates enforced with Cognito's
throttling answer, and the gateway, held below them by the shared budget, never sees one."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

import emulator
from directory import gateway, ratelimit
from directory.gateway import CognitoGateway
from tests.cognito_helpers import create_pool


@pytest.fixture
def quota_server(moto_server):
    """The emulator in quota mode on its own port (sharing moto's backends with `cognito`)."""
    server = emulator.start_server(port=0, quota=True)
    previous = os.environ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"]
    os.environ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = server.endpoint
    gateway.reset_clients()
    ratelimit.reset_local()
    try:
        yield server
    finally:
        server.stop()
        os.environ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = previous
        gateway.reset_clients()
        ratelimit.reset_local()


def stats(server) -> dict:
    with urllib.request.urlopen(f"{server.endpoint}{emulator.QUOTA_PATH}", timeout=5) as response:  # noqa: S310
        return json.load(response)


def reset_stats(server) -> None:
    request = urllib.request.Request(f"{server.endpoint}{emulator.QUOTA_PATH}", method="DELETE")
    urllib.request.urlopen(request, timeout=5).read()  # noqa: S310


def _hammer(call, threads: int, per_thread: int) -> None:
    def run():
        for _ in range(per_thread):
            call()

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()


def test_quota_mode_answers_too_many_requests_past_the_rate(cognito, quota_server):
    pool_id = create_pool(cognito, name="quota")  # through the plain moto server: not counted
    reset_stats(quota_server)
    # No retries: every answer is seen as it came.
    client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=quota_server.endpoint,
                          config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
    answers: list[object] = []
    started = time.monotonic()
    for _ in range(60):
        try:
            client.describe_user_pool(UserPoolId=pool_id)
            answers.append("ok")
        except ClientError as exc:
            answers.append(exc.response)
    elapsed = time.monotonic() - started
    refused = [a for a in answers if a != "ok"]
    # DescribeUserPool is UserPoolRead, 15/s: a burst of 15 passes, then 15 a second of the time
    # the burst took (a slow machine's burst lasts longer), and the rest is refused.
    allowed_at_most = 15 + int(15 * elapsed) + 1
    assert 15 <= answers.count("ok") <= allowed_at_most, (answers.count("ok"), elapsed)
    assert len(refused) >= 60 - allowed_at_most > 0
    first = refused[0]
    assert first["Error"]["Code"] == "TooManyRequestsException"
    assert first["Error"]["Message"] == "Rate exceeded"
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert first["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "TooManyRequestsException"
    counted = stats(quota_server)
    assert counted["refused"] == {"UserPoolRead": len(refused)}
    assert counted["allowed"] == {"UserPoolRead": answers.count("ok")}
    assert counted["quotas"]["UserList"] == 30
    # Categories are separate: ListUsers (UserList, 30/s) still passes right after.
    assert client.list_users(UserPoolId=pool_id)["Users"] == []
    # And after a second the bucket has refilled.
    time.sleep(1.1)
    client.describe_user_pool(UserPoolId=pool_id)


def test_gateway_below_the_quota_sees_no_throttling(cognito, quota_server, settings):
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.COGNITO_RATE_LIMIT_REDIS_URL = ""
    # 60 % of Cognito's UserPoolRead quota (15/s): a client-side bucket lets through its burst plus its rate in
    # any one second, and requests can bunch on the way (threads on a loaded machine), so the margin is wide.
    settings.COGNITO_RATE_LIMITS = "UserPoolRead=9"
    pool_id = create_pool(cognito, name="polite")
    reset_stats(quota_server)
    gateways = [CognitoGateway("us-east-1", purpose=p) for p in ("pull", "push", "push", "interactive")]
    index = iter(range(10**6))
    lock = threading.Lock()

    def call():
        with lock:
            gw = gateways[next(index) % len(gateways)]
        gw.describe_user_pool(pool_id)
        gw.get_user(pool_id, "nobody")

    started = time.monotonic()
    _hammer(call, threads=6, per_thread=10)
    elapsed = time.monotonic() - started
    counted = stats(quota_server)
    assert counted["refused"] == {}, counted
    assert counted["allowed"] == {"UserPoolRead": 60, "UserList": 60}
    assert sum(gw.retries for gw in gateways) == 0
    # 60 DescribeUserPool at the budget's 9/s (burst 9): at least (60 - 9) / 9 = 5.7 s.
    assert elapsed >= 5.5, elapsed


def test_without_the_budget_the_same_load_is_throttled(cognito, quota_server, settings):
    """The counter-check: the test above would fail if the budget did nothing."""
    settings.COGNITO_RATE_LIMITS = "off"
    pool_id = create_pool(cognito, name="rude")
    reset_stats(quota_server)
    gw = CognitoGateway("us-east-1")
    _hammer(lambda: gw.describe_user_pool(pool_id), threads=6, per_thread=10)
    # botocore retried the throttled calls (standard mode) — they were answered with throttling.
    assert stats(quota_server)["refused"].get("UserPoolRead", 0) > 0
    assert gw.retries > 0


def test_quota_mode_is_off_unless_asked(monkeypatch):
    monkeypatch.delenv("COGNITO_EMULATOR_QUOTA", raising=False)
    assert emulator.quota_mode() is False
    monkeypatch.setenv("COGNITO_EMULATOR_QUOTA", "1")
    assert emulator.quota_mode() is True
    assert emulator.quota_mode(False) is False  # the command's flag wins
    monkeypatch.setenv("COGNITO_EMULATOR_QUOTA", "false")
    assert emulator.quota_mode() is False
    # Without quota mode the emulator answers whatever the rate.
    server = emulator.start_server(port=0)
    try:
        client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint,
                              config=Config(retries={"mode": "standard", "total_max_attempts": 1}))
        for _ in range(30):
            client.list_user_pools(MaxResults=10)
    finally:
        server.stop()
