"""A full pull against what operators script, at Cognito's page latency, under the ListUsers budget.

How to run (PostgreSQL with trust auth on 127.0.0.1; its databases are re-created; the AWS CLI
on PATH for the `aws cognito-idp list-users` case):

    .venv/bin/python benchmarks/pull.py [--users 30000,100000] [--latency-ms 0,80] [--runs 3]
                                        [--previous REV] [--cases bare,cli,previous,pull,pull100]
                                        [--db bench_pull]

For each pool size and page latency, the emulator (benchmarks/_moto_server.py: users injected
into moto's backend, pagination O(1) a page) runs in a subprocess with `--latency-ms` — and, when
the latency is above 0, in quota mode, answering TooManyRequestsException past Cognito's 30
ListUsers requests a second. Each round times, in an order that rotates from round to round:

- `bare`: a boto3 paginator listing every user one page after another, discarding them;
- `cli`: `aws cognito-idp list-users` (the AWS CLI's own pagination) into a JSON file;
- `previous`: the previous release's pull (`--previous`, default the commit before the
  partitioned pull) in its own process, from a `git archive` of that commit, into its own database;
- `pull`: this pull with the default budget (80 % of Cognito's quota: 24 ListUsers a second);
- `pull100`: this pull with the budget at Cognito's quota (30 a second), at latencies above 0.

Each pull is a first import into an empty mirror (the tables are truncated before it, the pool
then created afresh) in a fresh process, timed around `pull_pool` only; it also lists the 1 %
of users in a group. At 0 ms the budget is off for every pull (`COGNITO_RATE_LIMITS=off`): the
code is measured, not the quota. Printed per configuration: median wall time, users/s, the
ratio to `bare`, the share of the budget's ceiling (60 users a page × the configured ListUsers
rate) and the throttling answers the emulator gave. Then this pull's unchanged re-sync: its
time and the rows it wrote to the user, membership and audit tables (pg_stat_user_tables).

Targets: at 80 ms with the default budget, 100,000 users at >= 90 % of the ceiling
(>= 1,300 users/s) and >= 2.1x faster than `bare`; with the budget at 100 %, >= 2.7x; 0
throttling answers; at 0 ms, <= 1.1x `bare`; the unchanged re-sync writes 0 rows.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (  # noqa: E402
    ROOT,
    MotoServer,
    Timer,
    bare_listing,
    ensure_database,
    table_writes,
    wait_stats_flush,
)

TABLES = ["directory_cognitouser", "directory_groupmembership", "directory_auditevent"]
PREVIOUS = "d41a55d"  # the release before partitioned pulls
LIMITS = {"pull": "", "pull100": "UserList=30", "previous": ""}
RATES = {"": 24.0, "UserList=30": 30.0}
LABELS = {
    "bare": "bare boto3 paginator, users discarded",
    "cli": "aws cognito-idp list-users > file",
    "previous": "previous release's full pull ({rev})",
    "pull": "this full pull, budget 80 % (24/s)",
    "pull100": "this full pull, budget 100 % (30/s)",
}
LABELS_WITHOUT_BUDGET = {"previous": "previous release's full pull ({rev})", "pull": "this full pull, budget off"}


# --------------------------------------------------------------------------- the pull, in a child


def child(root: str, database_url: str, pool_id: str, limits: str) -> None:
    """Pull one pool with the code under `root` (this checkout or the previous release's)."""
    sys.path.insert(0, root)
    os.environ.update(
        DATABASE_URL=database_url, DJANGO_SETTINGS_MODULE="cognito_admin.settings", DJANGO_DEBUG="0",
        DJANGO_SECRET_KEY="benchmark-only", DJANGO_LOG_LEVEL="WARNING", COGNITO_RATE_LIMITS=limits,
        AWS_REGION="us-east-1", AWS_DEFAULT_REGION="us-east-1", CELERY_BROKER_URL="memory://",
    )
    import django

    django.setup()
    from directory.models import SyncRun, UserPool
    from directory.sync.pull import pull_pool

    pool, _ = UserPool.objects.get_or_create(pool_id=pool_id, defaults={"region": "us-east-1"})
    with Timer() as t:
        run = pull_pool(pool=pool)
    assert run.status == SyncRun.Status.SUCCEEDED, run.error
    print(json.dumps({"seconds": t.seconds, "created": run.created, "unchanged": run.unchanged, "seen": run.seen}))


def run_child(root: Path, database_url: str, pool_id: str, limits: str) -> dict:
    # In the tree's own directory: Celery's Django fixup puts the working directory first on sys.path.
    out = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(root), database_url, pool_id, limits],
        cwd=root, env=os.environ.copy(), capture_output=True, text=True, check=False,
    )
    if out.returncode:
        raise RuntimeError(f"pull with {root} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def migrate(root: Path, database_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_DEBUG": "0", "DJANGO_SECRET_KEY": "benchmark-only",
           "CELERY_BROKER_URL": "memory://"}
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=root, env=env, check=True)


def truncate(database: str) -> None:
    """Empty every table of the app (a first import starts from a clean database)."""
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-qAt", "-c"]
    tables = subprocess.run(
        [*psql, "SELECT string_agg(tablename, ', ') FROM pg_tables "
                "WHERE schemaname = 'public' AND tablename LIKE 'directory%'"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    subprocess.run([*psql, f"TRUNCATE {tables} RESTART IDENTITY CASCADE"], check=True, capture_output=True)


def export(rev: str) -> Path:
    """The previous release's tree, from `git archive` (no worktree: nothing in the repo changes)."""
    target = Path(tempfile.gettempdir()) / f"cognito-admin-{rev}"
    if not (target / "manage.py").exists():
        target.mkdir(parents=True, exist_ok=True)
        archive = subprocess.run(["git", "archive", rev], cwd=ROOT, capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


# --------------------------------------------------------------------------- the listings


def cli_listing(endpoint: str, pool_id: str, expected: int) -> float:
    """Seconds for `aws cognito-idp list-users` (its own pagination, 60 a page) to write every user to a file."""
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_PAGER": ""}
    with tempfile.NamedTemporaryFile("w+", suffix=".json") as out:
        with Timer() as t:
            subprocess.run(
                ["aws", "cognito-idp", "list-users", "--user-pool-id", pool_id, "--endpoint-url", endpoint,
                 "--page-size", "60", "--output", "json"],
                stdout=out, env=env, check=True,
            )
        out.seek(0)
        listed = len(json.load(out)["Users"])
    assert listed == expected, listed
    return t.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", default="30000,100000")
    parser.add_argument("--latency-ms", default="0,80")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--previous", default=PREVIOUS)
    parser.add_argument("--cases", default="bare,cli,previous,pull,pull100")
    parser.add_argument("--db", default="bench_pull")
    parser.add_argument("--child", nargs=4, metavar=("ROOT", "DATABASE_URL", "POOL_ID", "LIMITS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    cases = args.cases.split(",")
    new_db = ensure_database(args.db, fresh=True)
    migrate(ROOT, new_db)
    previous_root = prev_db = None
    if "previous" in cases:
        previous_root = export(args.previous)
        prev_db = ensure_database(f"{args.db}_prev", fresh=True)
        migrate(previous_root, prev_db)
    os.environ["DATABASE_URL"] = new_db  # table_writes reads this database through Django
    from benchmarks._common import setup_django

    setup_django(new_db, migrate=False)
    results: list[tuple[int, float, dict[str, list[dict]]]] = []
    for latency in (float(v) for v in args.latency_ms.split(",")):
        for users in (int(v) for v in args.users.split(",")):
            results.append((users, latency, measure(args, cases, users, latency, new_db, previous_root, prev_db)))
    print("\n=== summary ===")
    for users, latency, measured in results:
        report(users, latency, measured, args)


def measure(args, cases, users, latency, new_db, previous_root, prev_db) -> dict[str, list[dict]]:
    quota = latency > 0
    wanted = [c for c in cases if c != "pull100" or latency > 0]
    measured: dict[str, list[dict]] = {c: [] for c in wanted}
    print(f"\n{users:,} users, {latency:g} ms a page, quota mode {'on' if quota else 'off'}", flush=True)
    with MotoServer(latency_ms=latency, quota=quota, bench=users) as moto:
        pool_id = moto.pools["bench"]
        for round_no in range(args.runs):
            order = wanted[round_no % len(wanted):] + wanted[: round_no % len(wanted)]
            for case in order:
                if quota:
                    moto.quota(reset=True)
                if case == "bare":
                    seconds, listed = bare_listing(moto.endpoint, pool_id)
                    assert listed == users, listed
                    result = {"seconds": seconds}
                elif case == "cli":
                    result = {"seconds": cli_listing(moto.endpoint, pool_id, users)}
                else:
                    limits = "off" if latency == 0 else LIMITS[case]
                    root, database = (previous_root, prev_db) if case == "previous" else (ROOT, new_db)
                    truncate(database.rsplit("/", 1)[1])
                    result = run_child(root, database, pool_id, limits)
                    assert result["created"] == users, result
                if quota:
                    result["throttled"] = moto.quota()["refused"].get("UserList", 0)
                measured[case].append(result)
                print(f"  round {round_no + 1} {case:9s} {result['seconds']:7.1f} s "
                      f"({users / result['seconds']:6,.0f} users/s) throttled {result.get('throttled', '-')}",
                      flush=True)
        if "pull" in wanted:
            limits = "off" if latency == 0 else LIMITS["pull"]
            truncate(new_db.rsplit("/", 1)[1])
            run_child(ROOT, new_db, pool_id, limits)
            wait_stats_flush()
            before = table_writes(TABLES)
            result = run_child(ROOT, new_db, pool_id, limits)
            wait_stats_flush()
            after = table_writes(TABLES)
            writes = {t.removeprefix("directory_"): after.get(t, 0) - before.get(t, 0) for t in TABLES}
            assert result["unchanged"] == users, result
            measured["resync"] = [{"seconds": result["seconds"], "writes": writes}]
            print(f"  unchanged re-sync {result['seconds']:7.1f} s, rows written {writes}", flush=True)
    report(users, latency, measured, args)
    return measured


def report(users: int, latency: float, measured: dict[str, list[dict]], args) -> None:
    bare = statistics.median(r["seconds"] for r in measured["bare"]) if measured.get("bare") else None
    print(f"\n{users:,} users, {latency:g} ms a page (median of {args.runs}, interleaved):")
    print(f"  {'':44s} {'wall':>8s} {'users/s':>9s} {'vs bare':>8s} {'of ceiling':>11s} {'throttled':>10s}")
    for case in ("bare", "cli", "previous", "pull", "pull100"):
        runs = measured.get(case)
        if not runs:
            continue
        seconds = statistics.median(r["seconds"] for r in runs)
        ratio = f"{seconds / bare:.2f}" if bare else "-"
        limits = "off" if latency == 0 else LIMITS.get(case)
        ceiling = f"{users / seconds / (60 * RATES[limits]):.0%}" if limits in RATES else "-"
        throttled = sum(r.get("throttled", 0) for r in runs) if latency else "-"
        label = (LABELS_WITHOUT_BUDGET if latency == 0 else LABELS).get(case, LABELS[case]).format(rev=args.previous)
        print(f"  {label:44s} {seconds:7.1f}s {users / seconds:9,.0f} {ratio:>8s} {ceiling:>11s} {throttled!s:>10s}")
        if case in ("pull", "pull100") and bare:
            print(f"  {'':44s} {'':8s} {'':9s} {'':8s} (bare / this: {bare / seconds:.2f}x faster)")
    resync = measured.get("resync")
    if resync:
        print(f"  unchanged re-sync: {resync[0]['seconds']:.1f} s, rows written {resync[0]['writes']}")


if __name__ == "__main__":
    main()
