"""Peak RSS of the sync process pulling 10,000 and 100,000 users: memory must stay flat.

How to run (PostgreSQL with trust auth on 127.0.0.1; the database is re-created):

    .venv/bin/python benchmarks/rss.py [--sizes 10000,100000] [--runs 1] [--db bench_rss]

One moto server subprocess holds a pool of each size. Each pull runs in a fresh child
process (this script with --child) that imports Django, pulls one pool into an empty
mirror and reports its VmHWM (peak resident set, /proc/self/status). Target: the peak
at 100,000 users within 20% of the peak at 10,000.
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

from benchmarks._common import MotoServer, ensure_database, setup_django  # noqa: E402


def vm_hwm_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def child(pool_id: str, db: str) -> None:
    setup_django(db, migrate=False)
    from directory.models import SyncRun, UserPool  # noqa: PLC0415 - Django is set up first
    from directory.sync.pull import pull_pool  # noqa: PLC0415 - Django is set up first

    UserPool.objects.filter(pool_id=pool_id).delete()
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    baseline = vm_hwm_kib()
    run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    print(json.dumps({"users": run.created, "baseline_kib": baseline, "peak_kib": vm_hwm_kib()}), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--db", default="bench_rss")
    parser.add_argument("--child", nargs=2, metavar=("POOL_ID", "DATABASE_URL"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    sizes = [int(s) for s in args.sizes.split(",")]
    db = ensure_database(args.db, fresh=True)
    setup_django(db)  # migrate once, here
    peaks: dict[int, list[int]] = {n: [] for n in sizes}
    with MotoServer(**{f"p{n}": n for n in sizes}) as moto:
        for _ in range(args.runs):
            for n in sizes:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", moto.pools[f"p{n}"], db],
                    env={**os.environ, "DJANGO_LOG_LEVEL": "WARNING"},
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
                result = json.loads(out.strip().splitlines()[-1])
                assert result["users"] == n, result
                peaks[n].append(result["peak_kib"])
                print(
                    f"  {n:>7,} users: peak RSS {result['peak_kib'] / 1024:6.1f} MiB "
                    f"(after imports and setup: {result['baseline_kib'] / 1024:6.1f} MiB)",
                    flush=True,
                )
    small, large = statistics.median(peaks[sizes[0]]), statistics.median(peaks[sizes[-1]])
    print(f"\npeak RSS of the sync process: {sizes[0]:,} users {small / 1024:.1f} MiB, "
          f"{sizes[-1]:,} users {large / 1024:.1f} MiB, ratio {large / small:.2f} (target <= 1.20)")


if __name__ == "__main__":
    main()
