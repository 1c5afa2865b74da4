"""The local pull pipeline alone (mapping, hashing, diffing, writing, audit) fed pre-fetched pages.

How to run (PostgreSQL with trust auth on 127.0.0.1; the database is created if missing):

    .venv/bin/python benchmarks/pipeline.py [--users 50000] [--runs 3] [--db bench_pipeline]

Prints users/s (median of --runs) for a first-time insert into an empty pool, a re-sync
where every user changed (one attribute and the modification date), and an unchanged
re-sync, and where the CPU went: microseconds a user in this process (mapping, hashing,
diffing, building COPY text) and in the rest of the machine (PostgreSQL's backends, WAL
writer and the kernel: all busy time /proc/stat counts, less this process's). On two
cores, users/s can never exceed 2 / (the sum). Target: >= 20,000 users/s on PostgreSQL
(>= 10x Cognito's 1,800 users/s ceiling).
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import Timer, ensure_database, pages, setup_django  # noqa: E402


def process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_cpu() -> float:
    """Seconds of CPU the whole machine has spent busy (all but idle and iowait), or 0 without /proc."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(v) for v in stat.readline().split()[1:]]
    except OSError:
        return 0.0
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


class PrefetchedGateway:
    """Answers a pull's reads from memory: no network, only the local pipeline is measured."""

    def __init__(self, user_pages: list[list[dict[str, Any]]]) -> None:
        self.user_pages = user_pages
        self.retries = 0

    def describe_user_pool(self, pool_id: str) -> dict[str, Any]:
        return {"Id": pool_id, "Name": "bench", "EstimatedNumberOfUsers": 0}

    def list_user_pool_clients(self, pool_id: str) -> list[dict[str, Any]]:
        return []

    def list_groups(self, pool_id: str):
        yield []

    def list_users(self, pool_id: str, **kwargs: Any):
        yield from self.user_pages

    def list_users_in_group(self, pool_id: str, group_name: str):
        yield []


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--db", default="bench_pipeline")
    args = parser.parse_args()
    setup_django(ensure_database(args.db, fresh=True))

    from directory.models import SyncRun, UserPool  # noqa: PLC0415 - Django is set up first
    from directory.sync.pull import pull_pool  # noqa: PLC0415 - Django is set up first

    n = args.users
    print(f"building {n:,} records in memory ...", flush=True)
    variants = {v: pages(n, variant=v) for v in ("", "a", "b")}
    # The pre-fetched input (millions of objects) is the benchmark's, not the pipeline's:
    # keep the garbage collector from re-scanning it on every full collection.
    gc.collect()
    gc.freeze()
    results: dict[str, list[float]] = {"insert": [], "changed": [], "unchanged": []}
    cpu: dict[str, list[tuple[float, float]]] = {case: [] for case in results}
    for run_no in range(args.runs):
        pool = UserPool.objects.create(pool_id=f"us-east-1_bench{run_no}", region="us-east-1", name="bench")

        def timed(case: str, variant: str, expect: str, run_no: int = run_no) -> None:
            own, busy = process_cpu(), machine_busy_cpu()
            with Timer() as t:
                run = pull_pool(pool=pool, gateway=PrefetchedGateway(variants[variant]))  # noqa: B023
            own, busy = process_cpu() - own, machine_busy_cpu() - busy
            assert run.status == SyncRun.Status.SUCCEEDED, run.error
            assert getattr(run, expect) == n, (case, run.summary)
            results[case].append(n / t.seconds)
            cpu[case].append((own * 1e6 / n, max(busy - own, 0.0) * 1e6 / n))
            print(
                f"  run {run_no + 1} {case:9s} {t.seconds:7.2f} s  {n / t.seconds:9,.0f} users/s  "
                f"CPU a user: {cpu[case][-1][0]:4.0f} µs here, {cpu[case][-1][1]:4.0f} µs elsewhere",
                flush=True,
            )

        timed("insert", "", "created")
        timed("changed", "a" if run_no % 2 == 0 else "b", "updated")
        timed("unchanged", "a" if run_no % 2 == 0 else "b", "unchanged")
    print(f"\nlocal pipeline on PostgreSQL, {n:,} users, median of {args.runs}:")
    for case, values in results.items():
        listed = ", ".join(f"{v:,.0f}" for v in values)
        here = statistics.median(c[0] for c in cpu[case])
        elsewhere = statistics.median(c[1] for c in cpu[case])
        print(
            f"  {case:9s} {statistics.median(values):9,.0f} users/s   (runs: {listed});  "
            f"CPU a user: {here:.0f} µs in this process + {elsewhere:.0f} µs elsewhere (PostgreSQL)"
        )
    print("target: >= 20,000 users/s")


if __name__ == "__main__":
    main()
