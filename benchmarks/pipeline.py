"""The local pull pipeline alone (mapping, hashing, diffing, writing, audit) fed pre-fetched pages,
this checkout side by side with the previous release.

How to run (PostgreSQL with trust auth on 127.0.0.1; its databases are re-created):

    .venv/bin/python benchmarks/pipeline.py [--users 50000] [--runs 3] [--previous REV] [--db bench_pipeline]

Each run is a fresh process per tree — this checkout, then the previous release (`--previous`,
default the commit before the partitioned pull, from a `git archive`; `--previous ''` skips
it), in alternating order — each into its own database. A run times three cases: a first
import into an empty pool (for this checkout the pool's baseline: one `imported` audit event
per kind instead of one `created` event per user), a re-sync where every user changed (one
attribute and the modification date: an `updated` event each), and an unchanged re-sync.
After each case this checkout also catches up the attribute search's texts of the users the pull
wrote (`directory.search_index`, which the pull leaves for after it): printed as the users/s of
the pull and its catch-up together, beside the pull's own.
Printed: users/s (median of --runs) per case and tree, the ratio, and where the CPU went:
microseconds a user in the pulling process and in the rest of the machine (PostgreSQL's
backends, WAL writer and the kernel: all busy time /proc/stat counts, less the process's).

Targets: first import >= 1.8x the previous release's; changed and unchanged no slower.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, Timer, ensure_database, pages  # noqa: E402
from benchmarks.pull import PREVIOUS, export, migrate  # noqa: E402

CASES = ("insert", "changed", "unchanged")


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

    def get_user_pool_mfa_config(self, pool_id: str) -> dict[str, Any]:
        return {"MfaConfiguration": "OFF"}

    def list_user_pool_clients(self, pool_id: str) -> list[dict[str, Any]]:
        return []

    def list_groups(self, pool_id: str):
        yield []

    def list_users(self, pool_id: str, **kwargs: Any):
        yield from self.user_pages

    def list_users_in_group(self, pool_id: str, group_name: str):
        yield []


def child(root: str, database_url: str, n: int, run_no: int) -> None:
    """One run of the three cases with the code under `root`; prints JSON."""
    sys.path.insert(0, root)
    os.environ.update(
        DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="cognito_admin.settings", DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="benchmark-only", DJANGO_LOG_LEVEL="WARNING", COGNITO_RATE_LIMITS="off",
        AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", CELERY_BROKER_URL="memory://",
    )
    import django

    django.setup()
    from directory.models import SyncRun, UserPool
    from directory.sync.pull import pull_pool

    try:  # the attribute search's texts, written after the pull (not in the previous release)
        from directory import search_index
    except ImportError:
        search_index = None

    variants = {v: pages(n, variant=v) for v in ("", "a")}
    # The pre-fetched input (millions of objects) is the benchmark's, not the pipeline's:
    # keep the garbage collector from re-scanning it on every full collection.
    gc.collect()
    gc.freeze()
    pool = UserPool.objects.create(pool_id=f"us-east-1_bench{run_no}", region="us-east-1", name="bench")
    out: dict[str, dict[str, float]] = {}
    for case, variant, expect in (("insert", "", "created"), ("changed", "a", "updated"),
                                  ("unchanged", "a", "unchanged")):
        own, busy = process_cpu(), machine_busy_cpu()
        with Timer() as t:
            run = pull_pool(pool=pool, gateway=PrefetchedGateway(variants[variant]))
        own, busy = process_cpu() - own, machine_busy_cpu() - busy
        assert run.status == SyncRun.Status.SUCCEEDED, run.error
        assert getattr(run, expect) == n, (case, run.summary)
        pool.refresh_from_db()
        out[case] = {"rate": n / t.seconds, "here": own * 1e6 / n, "elsewhere": max(busy - own, 0.0) * 1e6 / n}
        if search_index is not None:
            # What a pull leaves for after it: the search texts of the users it wrote.
            with Timer() as c:
                search_index.catch_up()
            out[case]["with_search"] = n / (t.seconds + c.seconds)
    print(json.dumps(out))


def run_child(root: Path, database_url: str, n: int, run_no: int) -> dict[str, dict[str, float]]:
    # In the tree's own directory: Celery's Django fixup puts the working directory first on sys.path.
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(root), database_url, str(n), str(run_no)],
        cwd=root, capture_output=True, text=True, check=False,
    )
    if out.returncode:
        raise RuntimeError(f"pipeline run with {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--previous", default=PREVIOUS)
    parser.add_argument("--db", default="bench_pipeline")
    parser.add_argument("--child", nargs=4, metavar=("ROOT", "DATABASE_URL", "USERS", "RUN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        root, database_url, n, run_no = args.child
        child(root, database_url, int(n), int(run_no))
        return
    trees = {"this": (ROOT, ensure_database(args.db, fresh=True))}
    if args.previous:
        trees["previous"] = (export(args.previous), ensure_database(f"{args.db}_prev", fresh=True))
    for root, database in trees.values():
        migrate(root, database)
    n = args.users
    results: dict[str, list[dict[str, dict[str, float]]]] = {name: [] for name in trees}
    for run_no in range(args.runs):
        order = list(trees) if run_no % 2 == 0 else list(reversed(trees))
        for name in order:
            root, database = trees[name]
            result = run_child(root, database, n, run_no)
            results[name].append(result)
            print(f"  run {run_no + 1} {name:8s} " + "  ".join(
                f"{case} {result[case]['rate']:7,.0f}/s ({result[case]['here']:.0f}+{result[case]['elsewhere']:.0f} µs)"
                for case in CASES
            ), flush=True)
    label = {"this": "this checkout", "previous": f"previous release ({args.previous})"}
    print(f"\nlocal pipeline on PostgreSQL, {n:,} users, median of {args.runs}, interleaved:")
    medians = {name: {case: statistics.median(r[case]["rate"] for r in runs) for case in CASES}
               for name, runs in results.items()}
    for name, runs in results.items():
        print(f"  {label[name]}:")
        for case in CASES:
            here = statistics.median(r[case]["here"] for r in runs)
            elsewhere = statistics.median(r[case]["elsewhere"] for r in runs)
            listed = ", ".join(f"{r[case]['rate']:,.0f}" for r in runs)
            ratio = ""
            if name == "this" and "previous" in medians:
                ratio = f"  {medians['this'][case] / medians['previous'][case]:.2f}x the previous release"
            print(f"    {case:9s} {medians[name][case]:9,.0f} users/s (runs: {listed}); CPU a user: "
                  f"{here:.0f} µs here + {elsewhere:.0f} µs elsewhere{ratio}")
            if all("with_search" in r[case] for r in runs):
                both = statistics.median(r[case]["with_search"] for r in runs)
                ratio = ""
                if name == "this" and "previous" in medians:
                    ratio = f"  {both / medians['previous'][case]:.2f}x the previous release"
                print(f"    {'':9s} {both:9,.0f} users/s with the search texts' catch-up after the pull{ratio}")
    print("targets: first import >= 1.8x the previous release's; changed and unchanged no slower")


if __name__ == "__main__":
    main()
