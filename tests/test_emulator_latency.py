"""The emulator's latency mode: every Cognito call answered N ms late, side by side for concurrent
calls, the emulator's own endpoints on time, bad values refused naming the option."""

from __future__ import annotations

import json
import threading
import time
import urllib.request

import boto3
import pytest
from botocore.config import Config
from django.core.management import call_command
from django.core.management.base import CommandError

import emulator

pytestmark = pytest.mark.usefixtures("cognito")  # a freshly reset moto backend, which the servers share


def _client(server):
    return boto3.client(
        "cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint,
        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, max_pool_connections=10),
    )


def _timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_each_cognito_call_waits_and_concurrent_calls_wait_side_by_side():
    server = emulator.start_server(port=0, latency=400)
    try:
        client = _client(server)
        pool_id = client.create_user_pool(PoolName="far")["UserPool"]["Id"]
        assert _timed(lambda: client.list_users(UserPoolId=pool_id)) >= 0.4
        assert _timed(lambda: client.describe_user_pool(UserPoolId=pool_id)) >= 0.4
        # Six calls at once: each waits its 400 ms on its own request thread, not one after another (2.4 s).
        threads = [threading.Thread(target=client.list_users, kwargs={"UserPoolId": pool_id}) for _ in range(6)]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert 0.4 <= time.monotonic() - started < 2.0
    finally:
        server.stop()


def test_the_emulators_own_endpoints_are_not_delayed_and_quota_mode_still_counts():
    server = emulator.start_server(port=0, latency=3000, quota=True)
    try:
        url = f"{server.endpoint}{emulator.QUOTA_PATH}"
        started = time.monotonic()
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            counts = json.load(response)
        assert time.monotonic() - started < 2.5
        assert counts["refused"] == {}
        assert _timed(lambda: _client(server).list_user_pools(MaxResults=1)) >= 3.0
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            assert json.load(response)["allowed"] == {"UserPoolRead": 1}
    finally:
        server.stop()


def test_latency_comes_from_the_option_or_the_environment(monkeypatch):
    monkeypatch.delenv(emulator.LATENCY_VARIABLE, raising=False)
    assert emulator.latency_ms() == 0
    monkeypatch.setenv(emulator.LATENCY_VARIABLE, "80")
    assert emulator.latency_ms() == 80
    assert emulator.latency_ms(0) == 0  # the command's option wins
    monkeypatch.setenv(emulator.LATENCY_VARIABLE, "soon")
    with pytest.raises(ValueError, match="COGNITO_EMULATOR_LATENCY_MS: 'soon' is not a number of milliseconds"):
        emulator.latency_ms()


@pytest.mark.parametrize("value", ["-5", "abc", "nan"])
def test_the_command_refuses_a_bad_latency_naming_the_option(value):
    with pytest.raises(CommandError, match=r"--latency-ms: must be a number of milliseconds, 0 or more"):
        call_command("cognito_emulator", "--port", "0", "--latency-ms", value)


def test_the_command_refuses_a_bad_latency_from_the_environment(monkeypatch):
    monkeypatch.setenv(emulator.LATENCY_VARIABLE, "-1")
    with pytest.raises(CommandError, match="COGNITO_EMULATOR_LATENCY_MS: must be 0 or more milliseconds"):
        call_command("cognito_emulator", "--port", "0")
