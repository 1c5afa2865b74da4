"""Pull of 100,000 users from a moto server into PostgreSQL, against bare listing; then the unchanged re-sync.

How to run (PostgreSQL with trust auth on 127.0.0.1; the database is re-created):

    .venv/bin/python benchmarks/pull_100k.py [--users 100000] [--runs 3] [--db bench_pull]

The moto server runs in a subprocess (benchmarks/_moto_server.py: users injected into its
backend, pagination made O(1) a page), so it does not share this process's GIL. Each run
times, back to back: bare listing (a boto3 paginator paging every user and discarding
them) and a first-time pull into an empty mirror (pool deleted before each run; 1% of
the users are in a group, so the pull also lists memberships). Then the unchanged re-sync:
its time and the rows it wrote to the user, membership and audit tables
(pg_stat_user_tables n_tup_ins + n_tup_upd + n_tup_del deltas). The shared quota budget
is switched off (COGNITO_RATE_LIMITS=off): the code is measured, not Cognito's quotas.
Targets: pull <= 1.3x bare listing; re-sync writes 0 rows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    MotoServer,
    Timer,
    bare_listing,
    ensure_database,
    setup_django,
    table_writes,
    wait_stats_flush,
)

TABLES = ["directory_cognitouser", "directory_groupmembership", "directory_auditevent"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="bench_pull")
    args = parser.parse_args()
    n = args.users
    with MotoServer(bench=n) as moto:
        pool_id = moto.pools["bench"]
        setup_django(ensure_database(args.db, fresh=True))
        from directory.models import CognitoUser, SyncRun, UserPool  # noqa: PLC0415 - Django is set up first
        from directory.sync.pull import pull_pool  # noqa: PLC0415 - Django is set up first

        listing, pulling = [], []
        for run_no in range(args.runs):
            UserPool.objects.filter(pool_id=pool_id).delete()
            seconds, listed = bare_listing(moto.endpoint, pool_id)
            assert listed == n, listed
            listing.append(seconds)
            pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
            with Timer() as t:
                run = pull_pool(pool=pool)
            assert run.status == SyncRun.Status.SUCCEEDED, run.error
            assert run.created == n and CognitoUser.objects.filter(pool=pool).count() == n
            pulling.append(t.seconds)
            print(
                f"  run {run_no + 1}: bare listing {seconds:6.1f} s ({n / seconds:,.0f} users/s), "
                f"pull {t.seconds:6.1f} s ({n / t.seconds:,.0f} users/s), ratio {t.seconds / seconds:.2f}",
                flush=True,
            )

        resync_times, resync_writes = [], []
        for _ in range(2):
            wait_stats_flush()
            before = table_writes(TABLES)
            with Timer() as t:
                run = pull_pool(pool=pool)
            assert run.status == SyncRun.Status.SUCCEEDED, run.error
            wait_stats_flush()
            after = table_writes(TABLES)
            writes = {table: after.get(table, 0) - before.get(table, 0) for table in TABLES}
            resync_times.append(t.seconds)
            resync_writes.append(writes)
            print(f"  unchanged re-sync: {t.seconds:6.1f} s, unchanged={run.unchanged:,}, rows written {writes}")

    listing_median, pull_median = statistics.median(listing), statistics.median(pulling)
    print(f"\npull of {n:,} users from the moto server into PostgreSQL, median of {args.runs}:")
    print(f"  bare listing    {listing_median:6.1f} s  {n / listing_median:8,.0f} users/s")
    print(f"  full pull       {pull_median:6.1f} s  {n / pull_median:8,.0f} users/s")
    print(f"  ratio           {pull_median / listing_median:6.2f}x   (target <= 1.3x)")
    print(f"  unchanged re-sync {statistics.median(resync_times):6.1f} s, rows written: {resync_writes[-1]} (target 0)")


if __name__ == "__main__":
    main()
