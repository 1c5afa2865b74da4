"""Peak RSS of the sync process pulling 10,000 and 100,000 users: memory must stay flat.

How to run (PostgreSQL with trust auth on 127.0.0.1; its databases are re-created):

    .venv/bin/python benchmarks/rss.py [--sizes 10000,100000] [--runs 3] [--previous REV] [--db bench_rss]

One moto server subprocess holds a pool of each size. Each pull runs from a clean start: the
app's tables are truncated, then a fresh child process (this script with --child) imports
Django, creates the pool and pulls it into the empty mirror — in 16 partitions listed at once,
as any pool from 2,000 users is — and reports its VmHWM (peak resident set,
/proc/self/status). With `--previous REV` (default the commit before the partitioned pull;
'' skips it) the previous release's pull is measured the same way, alternating with this
checkout's, into its own database. Target: the peak at 100,000 users within 20% of the peak
at 10,000.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ROOT, MotoServer, ensure_database  # noqa: E402
from benchmarks.pull import PREVIOUS, export, migrate, truncate  # noqa: E402


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(root: str, pool_id: str, db: str) -> None:
    sys.path.insert(0, root)
    os.environ.update(
        DATABASE_URL=db, DJANGO_SETTINGS_MODULE="cognito_admin.settings", DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="benchmark-only", DJANGO_LOG_LEVEL="WARNING", COGNITO_RATE_LIMITS="off",
        AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", CELERY_BROKER_URL="memory://",
    )
    import django

    django.setup()
    from directory.models import SyncRun, UserPool
    from directory.sync.pull import pull_pool

    # The parent emptied the tables: nothing to delete here (deleting 100,000 rows through Django's
    # collector would itself be the peak).
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    baseline = vm_hwm_kib()
    run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    partitions = run.partitions.filter(kind="users").count() if hasattr(run, "partitions") else 1
    print(json.dumps({"users": run.created, "baseline_kib": baseline, "peak_kib": vm_hwm_kib(),
                      "partitions": partitions}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--previous", default=PREVIOUS)
    parser.add_argument("--db", default="bench_rss")
    parser.add_argument("--child", nargs=3, metavar=("ROOT", "POOL_ID", "DATABASE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    trees = {"this checkout": (ROOT, ensure_database(args.db, fresh=True))}
    if args.previous:
        trees[f"previous release ({args.previous})"] = (
            export(args.previous), ensure_database(f"{args.db}_prev", fresh=True)
        )
    for root, database in trees.values():
        migrate(root, database)
    peaks: dict[tuple[str, int], list[int]] = {(name, n): [] for name in trees for n in sizes}
    with MotoServer(**{f"p{n}": n for n in sizes}) as moto:
        for run_no in range(args.runs):
            order = list(trees) if run_no % 2 == 0 else list(reversed(trees))
            for name in order:
                root, db = trees[name]
                for n in sizes:
                    truncate(db.rsplit("/", 1)[1])
                    # In the tree's own directory: Celery's Django fixup puts it first on sys.path.
                    out = subprocess.run(
                        [sys.executable, str(Path(__file__).resolve()), "--child", str(root), moto.pools[f"p{n}"], db],
                        cwd=root, env=os.environ.copy(), capture_output=True, text=True, check=True,
                    ).stdout
                    result = json.loads(out.strip().splitlines()[-1])
                    assert result["users"] == n, result
                    peaks[(name, n)].append(result["peak_kib"])
                    print(
                        f"  {name}: {n:>7,} users in {result['partitions']} partition(s): peak RSS "
                        f"{result['peak_kib'] / 1024:6.1f} MiB (after imports and setup: "
                        f"{result['baseline_kib'] / 1024:6.1f} MiB)",
                        flush=True,
                    )
    print(f"\npeak RSS of the sync process, median of {args.runs} (target: ratio <= 1.20):")
    for name in trees:
        small, large = statistics.median(peaks[(name, sizes[0])]), statistics.median(peaks[(name, sizes[-1])])
        print(f"  {name}: {sizes[0]:,} users {small / 1024:.1f} MiB, {sizes[-1]:,} users {large / 1024:.1f} MiB, "
              f"ratio {large / small:.2f}")


if __name__ == "__main__":
    main()
