"""Backup and restore throughput against the emulator (users/s), on PostgreSQL.

How to run (PostgreSQL with trust auth on 127.0.0.1):

    .venv/bin/python benchmarks/backup.py [--users 20000] [--restore 2000] [--db bench_backup] [--budget]

The emulator runs in its own process (benchmarks/_moto_server.py) with a pool of `--users` users (one in a
hundred in a group); the pool is pulled into a fresh database, backed up as JSON and as CSV (the worker's
service, timed: users/s and file size), and the first `--restore` users of the JSON file are restored into
another pool that signs in by e-mail (AdminCreateUser SUPPRESS, the group created, memberships added).
Without --budget the request budget is off, so the figures are the code's and the emulator's; with it,
Cognito's default budget applies (UserCreation at 80 % of 50/s), which is what bounds a real restore.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import MotoServer, Timer, ensure_database, setup_django  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--restore", type=int, default=2_000)
    parser.add_argument("--db", default="bench_backup")
    parser.add_argument("--budget", action="store_true", help="keep Cognito's request budget on")
    args = parser.parse_args()
    if args.budget:
        os.environ["COGNITO_RATE_LIMITS"] = ""
    with MotoServer(src=args.users) as server:
        setup_django(ensure_database(args.db, fresh=True))
        import boto3

        from directory.models import BackupChunk, CognitoUser, UserPool
        from directory.services.backup import user_backup_run, user_backup_start
        from directory.services.restore import user_restore_run, user_restore_start
        from directory.sync.lease import sync_pool

        client = boto3.client("cognito-idp", region_name="us-east-1", endpoint_url=server.endpoint)
        source = UserPool.objects.create(pool_id=server.pools["src"], region="us-east-1")
        with Timer() as t:
            run = sync_pool(pool=source, source="command")
        assert run.status == "succeeded", run.error
        print(f"pulled {CognitoUser.objects.filter(pool=source).count():,} users in {t.seconds:.1f} s", flush=True)

        files = {}
        for fmt in ("json", "csv"):
            job = user_backup_start(pool=source, fmt=fmt, actor="bench")
            with Timer() as t:
                job = user_backup_run(job=job)
            files[fmt] = "".join(BackupChunk.objects.filter(job=job, kind="output").order_by("seq")
                                 .values_list("data", flat=True))
            rate = job.processed / t.seconds
            print(f"backup {fmt}: {job.processed:,} users, {job.results['memberships']:,} memberships, "
                  f"{job.results['bytes'] / 1e6:.1f} MB in {t.seconds:.2f} s = {rate:,.0f} users/s", flush=True)

        target_id = client.create_user_pool(
            PoolName="target", UsernameAttributes=["email"],
            Schema=[{"Name": "email", "AttributeDataType": "String", "Required": True, "Mutable": True},
                    {"Name": "name", "AttributeDataType": "String", "Required": True, "Mutable": True}],
        )["UserPool"]["Id"]
        target = UserPool.objects.create(pool_id=target_id, region="us-east-1")
        assert sync_pool(pool=target, source="command").status == "succeeded"
        data = json.loads(files["json"])
        data["users"] = data["users"][: args.restore]
        job = user_restore_start(pool=target, content=json.dumps(data).encode(), file_name="bench.json",
                                 existing="skip", actor="bench")
        profile = cProfile.Profile() if os.environ.get("BENCH_PROFILE") else None
        with Timer() as t:
            while job.status != "done":
                if profile:
                    profile.enable()
                job = user_restore_run(job=job)
                if profile:
                    profile.disable()
                assert job.status in ("done", "queued"), job.error
        r = job.results
        print(f"restore: {job.processed:,} users (created {r['created']:,}, skipped {r['skipped']:,}, "
              f"failed {r['failed']:,}; groups {r['groups']}) in {t.seconds:.1f} s = "
              f"{job.processed / t.seconds:,.1f} users/s{' (budget on)' if args.budget else ''}", flush=True)
        listed = sum(len(p["Users"]) for p in client.get_paginator("list_users").paginate(UserPoolId=target_id))
        members = sum(len(p["Users"]) for p in client.get_paginator("list_users_in_group").paginate(
            UserPoolId=target_id, GroupName="staff"))
        print(f"the target pool holds {listed:,} users, {members:,} in staff", flush=True)
        assert listed == r["created"]
        if profile:
            pstats.Stats(profile).sort_stats("cumulative").print_stats(25)


if __name__ == "__main__":
    main()
