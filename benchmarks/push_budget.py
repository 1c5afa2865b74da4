"""Push 1,000 attribute changes through the shared quota budget (run by hand).

    .venv/bin/python benchmarks/push_budget.py [--changes 1000] [--workers 2] [--threads 6]
                                               [--limits "UserList=24"] [--redis redis://127.0.0.1:6379/9]
                                               [--db bench_push]

What it does: starts the Cognito emulator in quota mode (`cognito_emulator --quota`:
Cognito's per-category rates, TooManyRequestsException past them) in a subprocess with a
pool of N users, mirrors the pool into PostgreSQL (database `--db`, re-created), starts
real Celery workers (subprocesses, thread pools) on a Redis broker (DB 9 by default, flushed:
keep it dedicated), makes N `cognito_user_update_attributes` edits (one per user) and waits
until every change is applied. The budget lives in the same Redis under a fresh key prefix.

Each push reads the user (ListUsers: UserList), writes it (AdminUpdateUserAttributes:
UserUpdate), reads it again to verify and once more to refresh the mirror: 3 UserList + 1
UserUpdate. With the default budget (80 % of Cognito's quotas: UserList 24/s, UserUpdate
20/s) UserList binds: at most 24 / 3 = 8 pushes a second. Printed: the achieved rate of
each category against its configured budget, pushes a second against the bound, and the
throttling answers seen (counted by the emulator, and retries recorded on the changes).
Target: >= 90 % of the configured rate with zero throttling errors.

Needs PostgreSQL (trust auth) and Redis on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE = "bench_push"


def _psql(sql: str) -> str:
    args = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-qAt", "-c", sql]
    return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()


def fresh_database(name: str = DATABASE) -> str:
    if _psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'") == "1":
        _psql(f'DROP DATABASE "{name}" WITH (FORCE)')
    _psql(f'CREATE DATABASE "{name}"')
    return f"postgres://postgres@127.0.0.1/{name}"


# --------------------------------------------------------------------------- the emulator process


def serve(users: int) -> None:
    """Child mode: the emulator in quota mode with one pool of `users` users (made inside
    moto's backend: AdminCreateUser over HTTP would itself be held to UserCreation's 50/s)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "cognito_admin.settings")
    for key, value in (("AWS_ACCESS_KEY_ID", "testing"), ("AWS_SECRET_ACCESS_KEY", "testing")):
        os.environ.setdefault(key, value)
    import boto3
    from moto.cognitoidp.models import CognitoIdpUser, cognitoidp_backends

    import emulator

    server = emulator.start_server(port=0, quota=True)
    client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
    pool_id = client.create_user_pool(
        PoolName="bench-push",
        Schema=[
            {"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
            {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True},
        ],
    )["UserPool"]["Id"]
    pool = cognitoidp_backends[emulator.ACCOUNT_ID]["us-east-1"].user_pools[pool_id]
    for i in range(users):
        attributes = [
            {"Name": "email", "Value": f"user{i}@example.com"},
            {"Name": "email_verified", "Value": "true"},
            {"Name": "name", "Value": f"Zoë Ångström {i}"},
        ]
        user = CognitoIdpUser(pool_id, f"user{i:05d}", None, "CONFIRMED", attributes)
        pool.users[user.username] = user
    print(json.dumps({"endpoint": server.endpoint, "pool_id": pool_id}), flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})


def quota_stats(endpoint: str, *, reset: bool = False) -> dict:
    request = urllib.request.Request(f"{endpoint}/_emulator/quota", method="DELETE" if reset else "GET")
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
        return json.load(response)


# --------------------------------------------------------------------------- the benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=2, help="celery worker processes")
    parser.add_argument("--threads", type=int, default=6, help="threads per worker")
    parser.add_argument("--limits", default="", help='COGNITO_RATE_LIMITS, e.g. "UserList=20" (default: 80 %%)')
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/9", help="broker and budget (flushed!)")
    parser.add_argument("--db", default=DATABASE, help="PostgreSQL database (re-created)")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        serve(args.serve)
        return

    emulator_proc = subprocess.Popen([sys.executable, __file__, "--serve", str(args.changes)], cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True, start_new_session=True)
    workers: list[subprocess.Popen] = []
    try:
        info = json.loads(emulator_proc.stdout.readline())
        endpoint, pool_id = info["endpoint"], info["pool_id"]
        prefix = f"bench-push:{uuid.uuid4().hex[:8]}"
        env = {
            **os.environ,
            "DATABASE_URL": fresh_database(args.db),
            "CELERY_BROKER_URL": args.redis,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "COGNITO_RATE_LIMITS": args.limits,
            "COGNITO_RATE_LIMIT_REDIS_URL": args.redis,
            "COGNITO_RATE_LIMIT_PREFIX": prefix,
            "DJANGO_SETTINGS_MODULE": "cognito_admin.settings",
            "DJANGO_DEBUG": "0",
            "DJANGO_SECRET_KEY": "benchmark-only",
            "DJANGO_LOG_LEVEL": "WARNING",
            "AWS_ENDPOINT_URL_COGNITO_IDENTITY_PROVIDER": endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
        os.environ.update(env)
        import django

        django.setup()
        import redis
        from django.core.management import call_command
        from django.db.models import Max, Sum

        from directory import ratelimit
        from directory.models import CognitoUser, PendingChange, UserPool
        from directory.services import users as user_services
        from directory.sync import lease

        redis.Redis.from_url(args.redis).flushdb()
        call_command("migrate", verbosity=0)
        pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
        run = lease.sync_pool(pool=pool, source="command")
        assert run.status == "succeeded", run.error
        users = list(CognitoUser.objects.filter(pool=pool).order_by("username"))
        assert len(users) == args.changes, len(users)
        limits = ratelimit.budget().limits
        assert limits is not None, "the budget is off"

        for n in range(args.workers):
            log = open(ROOT / "var" / f"bench-push-worker-{n}.log", "wb")  # noqa: SIM115 - lives with the worker
            workers.append(subprocess.Popen(
                [str(ROOT / ".venv" / "bin" / "celery"), "-A", "cognito_admin", "worker", "--pool", "threads",
                 "--concurrency", str(args.threads), "--without-gossip", "--without-mingle", "--without-heartbeat",
                 "--loglevel", "WARNING", "--hostname", f"bench{n}@%h"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            ))
        time.sleep(4)  # workers connect to the broker
        # The pull's tokens are spent; start the measured part on a full, idle budget.
        time.sleep(1.5)
        quota_stats(endpoint, reset=True)

        started = time.time()
        for i, user in enumerate(users):
            user_services.cognito_user_update_attributes(user=user, attributes={"name": f"Renamed {i}"}, actor="bench")
        enqueued = time.time() - started
        done = (PendingChange.Status.APPLIED, PendingChange.Status.FAILED, PendingChange.Status.CONFLICT)
        deadline = time.time() + max(600, args.changes)
        while PendingChange.objects.exclude(status__in=done).exists():
            if time.time() > deadline:
                raise SystemExit("timed out waiting for the changes")
            time.sleep(0.5)
        last = PendingChange.objects.aggregate(last=Max("applied_at"))["last"].timestamp()
        elapsed = last - started
        stats = quota_stats(endpoint)
        by_status = {str(s.value): PendingChange.objects.filter(status=s).count() for s in done}
        retried = PendingChange.objects.aggregate(n=Sum("throttled"))["n"] or 0
        import boto3

        client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=endpoint)
        remote_ok = sum(
            1
            for page in client.get_paginator("list_users").paginate(UserPoolId=pool_id)
            for u in page["Users"]
            if any(a["Name"] == "name" and a["Value"].startswith("Renamed ") for a in u["Attributes"])
        )

        print(f"\npush of {args.changes} attribute changes through the shared budget "
              f"({args.workers} workers x {args.threads} threads, Redis budget, emulator in quota mode)")
        print(f"  enqueued in {enqueued:.1f} s; all applied after {elapsed:.1f} s: "
              f"{args.changes / elapsed:.2f} changes/s")
        print(f"  outcome: {by_status}; renamed in Cognito: {remote_ok}")
        for category in ("UserList", "UserUpdate"):
            calls = stats["allowed"].get(category, 0)
            rate = calls / elapsed
            print(f"  {category:<11} {calls:5d} calls  {rate:6.2f}/s  configured {limits[category]:g}/s "
                  f"({100 * rate / limits[category]:.1f} %)  Cognito quota {stats['quotas'][category]:g}/s")
        bound = min(limits["UserList"] / 3, limits["UserUpdate"])
        print(f"  bound: 3 UserList + 1 UserUpdate a change -> {bound:.2f} changes/s; achieved "
              f"{args.changes / elapsed:.2f} ({100 * args.changes / elapsed / bound:.1f} %)")
        print(f"  throttling answers from the emulator: {sum(stats['refused'].values())} {stats['refused']}; "
              f"retries recorded on changes: {retried}")
    finally:
        for proc in [*workers, emulator_proc]:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(15)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
