"""Search by any attribute at 1,000,000 users on PostgreSQL: median and p95 per criterion set.

How to run (PostgreSQL with trust auth on 127.0.0.1):

    .venv/bin/python benchmarks/search_1m.py [--users 1000000] [--requests 20] [--db bench_search] [--fresh]

The users are loaded once by admin_1m.py's loader (INSERT ... SELECT generate_series) with a few
more attributes (given_name, custom:tier, custom:company, custom:employee_id); the two GIN indexes
(jsonb_path_ops on the users, migration 0010; pg_trgm on their search texts, migration 0015) are
dropped for the load and built after it (their build times are printed).
Each case is timed twice: the whole changelist page through Django's test Client (middleware,
changelist, capped count, templates) and the list's query alone; the plan's indexes are printed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ensure_database, p95, setup_django  # noqa: E402

EXTRA_ATTRIBUTES = """,
    'given_name', (ARRAY['Zoë', 'Łukasz', 'José', 'Ærø', 'Maria', 'Chen'])[1 + i %% 6],
    'custom:tier', (ARRAY['gold', 'silver', 'bronze', 'basic', 'trial'])[1 + i %% 5],
    'custom:company', 'Company ' || (i %% 10007),
    'custom:employee_id', 'E' || lpad(i::text, 7, '0')"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--db", default="bench_search")
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    os.environ["DJANGO_TESTING"] = "1"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    setup_django(ensure_database(args.db, fresh=args.fresh))

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from benchmarks.admin_1m import POOL_ID, populate
    from directory import selectors
    from directory.models import CognitoUser, UserPool

    if not UserPool.objects.filter(pool_id=POOL_ID).exists():
        index_sql = _index_sql()
        with connection.cursor() as cursor:
            for name in ("directory_user_attrs_path", "directory_usersearch_trgm"):
                cursor.execute(f"DROP INDEX IF EXISTS {name}")
        # The trigger writes each user's search text as the users go in (a plain heap without its index).
        populate(args.users, extra_attributes=EXTRA_ATTRIBUTES)
        with connection.cursor() as cursor:
            for statement in index_sql:
                started = time.perf_counter()
                cursor.execute(statement)
                print(f"{statement[:90]}: {time.perf_counter() - started:.0f} s", flush=True)
            cursor.execute("ANALYZE directory_cognitouser")
            cursor.execute("ANALYZE directory_usersearch")
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'directory_cognitouser'")
        print(f"directory_cognitouser: about {cursor.fetchone()[0]:,} rows", flush=True)
        cursor.execute(
            "SELECT relname, pg_size_pretty(pg_relation_size(oid)) FROM pg_class "
            "WHERE relname IN ('directory_user_attrs_path', 'directory_usersearch_trgm', 'directory_cognitouser', "
            "'directory_usersearch')"
        )
        for name, size in cursor.fetchall():
            print(f"  size of {name}: {size}", flush=True)

    admin = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
        "bench", "bench@example.com", "bench-password"
    )
    setup_test_environment()
    client = Client()
    client.force_login(admin)
    url = reverse("admin:directory_cognitouser_changelist")
    pool = UserPool.objects.get(pool_id=POOL_ID)
    k = 424242 if args.users > 424242 else args.users // 2 + 1
    cases = {
        "email equals": [f"email__eq__user{k}@example.com"],
        "custom equals (rare)": [f"custom:employee_id__eq__E{k:07d}"],
        "custom equals (20%)": ["custom:tier__eq__gold"],
        "email starts with": [f"email__sw__user{k // 10}"],
        "custom starts with": [f"custom:employee_id__sw__E{k // 10:06d}"],
        "custom contains": [f"custom:company__co__pany {k % 10007}"],
        "name contains": ["given_name__co__ukas"],
        "two criteria": [f"custom:tier__eq__{('gold', 'silver', 'bronze', 'basic', 'trial')[k % 5]}",
                         f"email__sw__user{k // 10}"],
        "three + pool filter": ["custom:tier__eq__silver", "custom:company__sw__company 100", "email__co__@example"],
    }
    print(f"\n{'case':22s} {'page med':>9s} {'page p95':>9s} {'query med':>10s} {'query p95':>10s}  shown  count  plan",
          flush=True)
    for label, criteria_params in cases.items():
        params = {"attr": criteria_params}
        if label.endswith("pool filter"):
            params["pool__id__exact"] = str(pool.pk)
        page_times, query_times = [], []
        criteria, errors = selectors.parse_attribute_criteria(criteria_params)
        assert not errors, errors
        qs = selectors.users_matching_attributes(
            CognitoUser.objects.filter(pool=pool).order_by("pool_id", "username"), criteria
        )
        for i in range(args.requests + 2):
            started = time.perf_counter()
            response = client.get(url, params)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (label, response.status_code)
            started = time.perf_counter()
            list(qs.values_list("pk", flat=True)[:100])
            query_elapsed = (time.perf_counter() - started) * 1000
            if i >= 2:
                page_times.append(elapsed)
                query_times.append(query_elapsed)
        cl = response.context["cl"]
        plan = qs.values_list("pk", flat=True)[:100].explain()
        indexes = sorted({w for w in plan.replace("(", " ").replace(")", " ").split() if w.startswith("directory_")})
        print(
            f"{label:22s} {statistics.median(page_times):9.1f} {p95(page_times):9.1f} "
            f"{statistics.median(query_times):10.1f} {p95(query_times):10.1f}  {len(cl.result_list):5d}  "
            f"{cl.paginator.count_display:>6s}  {', '.join(indexes) or 'seq scan'}",
            flush=True,
        )
        assert len(cl.result_list) > 0, f"{label}: no rows — the benchmark data does not match the query"


def _migration(name: str):
    """A migration module (its name starts with a digit: loaded by path)."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / f"directory/migrations/{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _index_sql() -> tuple[str, ...]:
    """The CREATE INDEX statements of the two search indexes: jsonb_path_ops on the user table
    (migration 0010) and the trigram index on the search texts (migration 0015)."""
    path = next(s for s in _migration("0010_i16_search_attribute_indexes").CREATE_SQL if "jsonb_path_ops" in s)
    trgm = next(s for s in _migration("0015_search_text_table").CREATE_SQL if "gin_trgm_ops" in s)
    return path, trgm


if __name__ == "__main__":
    main()
