"""User changelist, searches and filters at 1,000,000 users on PostgreSQL: median and p95.

How to run (PostgreSQL with trust auth on 127.0.0.1):

    .venv/bin/python benchmarks/admin_1m.py [--users 1000000] [--requests 20] [--db bench_admin] [--fresh]

The database is created and filled once with INSERT ... SELECT generate_series (about a
minute), then reused unless --fresh. Requests go through Django's test Client logged in
as a superuser (the full admin stack: middleware, changelist, filters, paginator,
templates). Target: p95 <= 300 ms for every case.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import ensure_database, p95, setup_django  # noqa: E402

POOL_ID = "us-east-1_bench1m"


def populate(n: int, *, extra_attributes: str = "") -> None:
    """`extra_attributes`: more `'name', <SQL of i>` pairs for each user's attributes (search_1m.py)."""
    from django.db import connection

    from directory.models import CognitoGroup, UserPool

    pool = UserPool.objects.create(pool_id=POOL_ID, region="us-east-1", name="bench 1M")
    UserPool.objects.create(pool_id="us-east-1_small", region="us-east-1", name="small")
    staff = CognitoGroup.objects.create(pool=pool, name="staff", precedence=1)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO directory_cognitouser (
                pool_id, username, sub, email, email_verified, phone_number, phone_number_verified,
                name, status, enabled, attributes, mfa_options, remote_created_at, remote_modified_at,
                content_hash, is_test_user, test_user_expires_at)
            SELECT %(pool)s,
                   'user' || lpad(i::text, 7, '0'),
                   md5(i::text)::uuid::text,
                   'user' || i || '@example.com',
                   i %% 10 <> 0,
                   CASE WHEN i %% 3 = 0 THEN '+1555' || lpad(i::text, 7, '0') ELSE '' END,
                   false,
                   (ARRAY['Zoë', 'Łukasz', 'José', 'Ærø', 'Maria', 'Chen'])[1 + i %% 6] || ' Name ' || i,
                   CASE WHEN i %% 97 = 0 THEN 'UNCONFIRMED'
                        WHEN i %% 10 = 0 THEN 'FORCE_CHANGE_PASSWORD' ELSE 'CONFIRMED' END,
                   i %% 50 <> 0,
                   jsonb_build_object('sub', md5(i::text)::uuid::text, 'email', 'user' || i || '@example.com'
                                      {extra})
                   || CASE WHEN i %% 3 = 0 THEN jsonb_build_object('phone_number', '+1555' || lpad(i::text, 7, '0'))
                           ELSE '{}'::jsonb END,
                   '[]'::jsonb,
                   now() - i * interval '1 second',
                   now(),
                   md5(i::text) || md5(i::text),
                   false,
                   NULL
            FROM generate_series(1, %(n)s) AS i
            """.replace("{extra}", extra_attributes),
            {"pool": pool.pk, "n": n},
        )
        cursor.execute(
            "INSERT INTO directory_groupmembership (group_id, user_id) "
            "SELECT %s, id FROM directory_cognitouser WHERE id %% 20 = 0",
            [staff.pk],
        )
        cursor.execute("VACUUM ANALYZE directory_cognitouser")
        cursor.execute("VACUUM ANALYZE directory_groupmembership")
    print(f"populated {n:,} users in {time.perf_counter() - started:.0f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--db", default="bench_admin")
    parser.add_argument("--fresh", action="store_true")
    args = parser.parse_args()
    # Test-mode settings: plain static storage (no collectstatic needed) with DEBUG off.
    os.environ["DJANGO_TESTING"] = "1"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver"
    setup_django(ensure_database(args.db, fresh=args.fresh))

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse

    from directory.models import CognitoGroup, UserPool

    if not UserPool.objects.filter(pool_id=POOL_ID).exists():
        populate(args.users)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE directory_cognitouser")
        cursor.execute("ANALYZE directory_groupmembership")
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE relname = 'directory_cognitouser'")
        print(f"directory_cognitouser: about {cursor.fetchone()[0]:,} rows", flush=True)

    admin = get_user_model().objects.filter(username="bench").first() or get_user_model().objects.create_superuser(
        "bench", "bench@example.com", "bench-password"
    )
    setup_test_environment()  # the test Client then exposes each response's template context
    client = Client()
    client.force_login(admin)
    url = reverse("admin:directory_cognitouser_changelist")
    pool = UserPool.objects.get(pool_id=POOL_ID)
    group = CognitoGroup.objects.get(pool=pool, name="staff")
    sub = str(uuid.UUID(hashlib.md5(b"424242").hexdigest()))  # noqa: S324 - matches the SQL's md5()
    cases = {
        "changelist": {},
        "e-mail prefix": {"q": "user424242@exa"},
        "exact e-mail": {"q": "user424242@example.com"},
        "exact phone": {"q": "+15550424242"},
        "username prefix": {"q": "user04242"},
        "exact sub": {"q": sub},
        "name prefix": {"q": "maria name 42424"},
        "status filter": {"status__exact": "UNCONFIRMED"},
        "enabled filter": {"enabled__exact": "0"},
        "pool + status": {"pool__id__exact": str(pool.pk), "status__exact": "FORCE_CHANGE_PASSWORD"},
        "group filter": {"group": str(group.pk)},
        "page 50": {"p": "50"},
    }
    print(f"\n{'case':18s} {'median ms':>10s} {'p95 ms':>8s}  rows", flush=True)
    worst = 0.0
    for label, params in cases.items():
        times = []
        for i in range(args.requests + 2):
            started = time.perf_counter()
            response = client.get(url, params)
            elapsed = (time.perf_counter() - started) * 1000
            assert response.status_code == 200, (label, response.status_code)
            if i >= 2:  # two warm-up requests
                times.append(elapsed)
        rows = len(response.context["cl"].result_list)
        times.sort()
        high = p95(times)
        worst = max(worst, high)
        print(f"{label:18s} {statistics.median(times):10.1f} {high:8.1f}  {rows}", flush=True)
        assert rows > 0, f"{label}: no rows — the benchmark data does not match the query"
    print(f"\nworst p95: {worst:.0f} ms (target <= 300 ms)")


if __name__ == "__main__":
    main()
