"""Shared helpers for the hand-run benchmarks: Django on a named PostgreSQL database, synthetic users."""

from __future__ import annotations

import datetime as dt
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PG = "postgres://postgres@127.0.0.1/{name}"


def ensure_database(name: str, *, fresh: bool = False) -> str:
    """Create (or re-create) a PostgreSQL database through psql; PostgreSQL has trust auth here."""
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAt", "-c"]
    exists = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                            capture_output=True, text=True, check=True).stdout.strip() == "1"
    if exists and fresh:
        subprocess.run([*psql, f'DROP DATABASE "{name}" WITH (FORCE)'], check=True)
        exists = False
    if not exists:
        subprocess.run([*psql, f'CREATE DATABASE "{name}"'], check=True)
    return PG.format(name=name)


def setup_django(database_url: str, *, migrate: bool = True) -> None:
    """Point Django at `database_url` (DEBUG off: no query log eating memory) and migrate."""
    sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = database_url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cognito_admin.settings")
    os.environ["DJANGO_DEBUG"] = "0"
    os.environ.setdefault("DJANGO_SECRET_KEY", "benchmark-only")
    # The shared quota budget would pace the emulator like Cognito; benchmarks measure the code.
    os.environ.setdefault("COGNITO_RATE_LIMITS", "off")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    os.environ.setdefault("AWS_REGION", "us-east-1")
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    import django

    django.setup()
    if migrate:
        from django.core.management import call_command

        call_command("migrate", verbosity=0)


BASE_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def fake_user(i: int, *, variant: str = "") -> dict[str, Any]:
    """A ListUsers record as botocore returns it (datetimes parsed), deterministic in `i`."""
    attributes = [
        {"Name": "sub", "Value": str(uuid.UUID(int=i + 1))},
        {"Name": "email", "Value": f"user{i}@example.com"},
        {"Name": "email_verified", "Value": "true"},
        {"Name": "name", "Value": f"Zoë Ångström {i}{variant}"},
        {"Name": "custom:department", "Value": f"dept{i % 17}"},
    ]
    if i % 3 == 0:
        attributes.append({"Name": "phone_number", "Value": f"+1555{i % 10_000_000:07d}"})
    modified = BASE_TIME + dt.timedelta(seconds=i + (86_400 if variant else 0))
    return {
        "Username": f"user{i:07d}",
        "Attributes": attributes,
        "UserCreateDate": BASE_TIME + dt.timedelta(seconds=i),
        "UserLastModifiedDate": modified,
        "Enabled": i % 50 != 0,
        "UserStatus": "CONFIRMED" if i % 7 else "FORCE_CHANGE_PASSWORD",
    }


def pages(n: int, *, variant: str = "", page_size: int = 60) -> list[list[dict[str, Any]]]:
    return [[fake_user(i, variant=variant) for i in range(s, min(n, s + page_size))] for s in range(0, n, page_size)]


def p95(times: list[float]) -> float:
    """The 95th percentile (nearest rank) of a benchmark's timings."""
    ordered = sorted(times)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def median_of(runs: int, fn: Callable[[], float]) -> tuple[float, list[float]]:
    values = [fn() for _ in range(runs)]
    return statistics.median(values), values


class Timer:
    """with Timer() as t: ...; t.seconds"""

    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def table_writes(tables: list[str]) -> dict[str, int]:
    """n_tup_ins + n_tup_upd + n_tup_del per table (PostgreSQL's statistics collector)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = ANY(%s)",
            [tables],
        )
        return dict(cursor.fetchall())


def wait_stats_flush() -> None:
    # PostgreSQL 15 publishes a backend's table counters at commit, at most once a second.
    time.sleep(1.5)


def chunks(seq: list, size: int) -> Iterator[list]:
    for start in range(0, len(seq), size):
        yield seq[start : start + size]


class MotoServer:
    """benchmarks/_moto_server.py in a subprocess (its own GIL): `with MotoServer(big=100_000) as m:`.

    `latency_ms` and `quota` are the emulator's latency and quota modes."""

    def __init__(self, *, latency_ms: float = 0.0, quota: bool = False, **pools: int) -> None:
        self.pools_spec = pools
        self.options = [*(["--latency-ms", str(latency_ms)] if latency_ms else []), *(["--quota"] if quota else [])]

    def __enter__(self) -> MotoServer:
        import json

        args = [f"{name}={count}" for name, count in self.pools_spec.items()]
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "benchmarks" / "_moto_server.py"), *self.options, *args],
            stdout=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the moto server did not start")
        info = json.loads(line)
        self.endpoint: str = info["endpoint"]
        self.pools: dict[str, str] = info["pools"]
        os.environ["AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER"] = self.endpoint
        for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
            os.environ.setdefault(key, value)
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)

    def quota(self, *, reset: bool = False) -> dict[str, Any]:
        """The emulator's quota counts (allowed / refused per category); `reset` clears them."""
        import json
        import urllib.request

        request = urllib.request.Request(f"{self.endpoint}/_emulator/quota", method="DELETE" if reset else "GET")
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return json.load(response)


def bare_listing(endpoint: str, pool_id: str) -> tuple[float, int]:
    """Seconds to page every user with a plain boto3 paginator (60 a page), discarding them."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "cognito-idp",
        region_name="us-east-1",
        endpoint_url=endpoint,
        config=Config(retries={"mode": "standard"}),
    )
    n = 0
    with Timer() as t:
        for page in client.get_paginator("list_users").paginate(UserPoolId=pool_id, Limit=60):
            n += len(page["Users"])
    return t.seconds, n
