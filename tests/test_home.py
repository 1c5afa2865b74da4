"""The directory home (the admin's index): each pool's users, sparkline, last sync and its health, open
changes, e-mails today against the default sender's limit, latest audit events and charts, for the
operator's permissions; the Administration section; and a query count that does not grow with users."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import timedelta
from http import HTTPStatus

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from directory.models import AuditEvent, CognitoUser, PendingChange, SyncRun
from tests.factories import AuditEventFactory, CognitoUserFactory, UserPoolFactory

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


def _run(pool, *, days_ago: float, seen: int, status=SyncRun.Status.SUCCEEDED, seconds: float = 12, error=""):
    run = SyncRun.objects.create(pool=pool, status=status, seen=seen, error=error)
    started = timezone.now() - timedelta(days=days_ago)
    finished = None if status == SyncRun.Status.RUNNING else started + timedelta(seconds=seconds)
    SyncRun.objects.filter(pk=run.pk).update(started_at=started, finished_at=finished)
    return run


def _change(pool, status, *, applied_minutes_ago: float | None = None):
    change = PendingChange.objects.create(
        pool=pool, object_type="user", object_key="someone", operation=PendingChange.Operation.USER_SET_ENABLED,
        payload={"enabled": False}, before={"enabled": True}, fields=["enabled"], status=status,
    )
    if applied_minutes_ago is not None:
        PendingChange.objects.filter(pk=change.pk).update(
            applied_at=timezone.now() - timedelta(minutes=applied_minutes_ago)
        )
    return change


def _email_sent(pool, *, when=None):
    return AuditEventFactory(
        pool_id=pool.pool_id, action=AuditEvent.Action.RESEND_CODE, object_type="user", outcome="ok",
        detail={"delivery": {"DeliveryMedium": "EMAIL", "Destination": "a***@e***"}},
        **({"created_at": when} if when else {}),
    )


@pytest.fixture
def mirror():
    """Three pools: one healthy and growing, one whose last pull failed, one never synced."""
    shop = UserPoolFactory(name="eshop-fcj", estimated_number_of_users=1190)
    for day, seen in ((20, 1000), (10, 1100), (1, 1150), (0.01, 1200)):
        _run(shop, days_ago=day, seen=seen, seconds=day + 5)
    staff = UserPoolFactory(name="staff-portal", estimated_number_of_users=40,
                            email_configuration={"EmailSendingAccount": "DEVELOPER"})
    _run(staff, days_ago=2, seen=40)
    _run(staff, days_ago=0.02, seen=3, status=SyncRun.Status.FAILED, error="AccessDeniedException: not allowed\nmore")
    never = UserPoolFactory(name="fresh-pool", estimated_number_of_users=7)
    for status in ("pending", "pending", "failed", "conflict", "applying"):
        _change(shop, status)
    for minutes in (5, 10, 70):
        _change(shop, "applied", applied_minutes_ago=minutes)
    _change(staff, "failed")
    for _ in range(3):
        _email_sent(shop)
    _email_sent(shop, when=timezone.now() - timedelta(days=1))  # yesterday's does not count
    AuditEventFactory(pool_id=shop.pool_id, action="applied", object_repr="ana@example.com", actor="ops")
    return {"shop": shop, "staff": staff, "never": never}


def _row(page: str, pool) -> str:
    match = re.search(rf'<tr class="pool-row" data-pool="{re.escape(pool.pool_id)}">(.*?)</tr>', page, re.S)
    assert match, f"no row for {pool.pool_id}"
    return match.group(1)


def _svgs(html: str) -> list[ET.Element]:
    return [ET.fromstring(found) for found in re.findall(r"<svg .*?</svg>", html, re.S)]


def test_home_shows_each_pool_with_users_health_changes_and_emails(admin_client, mirror):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == HTTPStatus.OK
    page = response.content.decode()

    shop = _row(page, mirror["shop"])
    assert re.search(r'class="num users"[^>]*>1,200<', shop)  # the last complete pull's count
    assert "health-ok" in shop
    assert re.findall(r'class="change-(\w+)[^"]*"[^>]*>(\d+)<', shop) == [
        ("pending", "2"), ("applying", "1"), ("failed", "1"), ("conflict", "1")
    ]
    failed_url = f"?pool__id__exact={mirror['shop'].pk}&amp;status__exact=failed"
    assert failed_url in shop
    assert re.search(r'class="emails email-ok">3 / 50<', shop)

    staff = _row(page, mirror["staff"])
    assert re.search(r'class="num users"[^>]*>40<', staff)  # the failed run's 3 is not a count
    assert "health-failing" in staff and "AccessDeniedException: not allowed" in staff and "more" not in staff
    assert "(own SES)" in staff

    never = _row(page, mirror["never"])
    assert "health-never" in never and re.search(r'class="num users"[^>]*>7<', never)
    assert re.findall(r'>(\d+)</a>', never) == ["0", "0", "0", "0"]


def test_sparkline_follows_the_daily_counts(admin_client, mirror):
    page = admin_client.get(reverse("admin:index")).content.decode()
    (spark,) = _svgs(_row(page, mirror["shop"]))
    assert spark.get("class") == "sparkline"
    (line,) = spark.iter(f"{SVG}polyline")
    points = [tuple(map(float, pair.split(","))) for pair in line.get("points").split()]
    # One point per day with a pull (days 20, 10, 1 and today), left to right, rising: 1000 is drawn
    # lowest (the largest y), 1200 highest; the last one is marked.
    assert len(points) == 4
    assert [x for x, _ in points] == sorted(x for x, _ in points)
    assert [y for _, y in points] == sorted((y for _, y in points), reverse=True)
    (marker,) = spark.iter(f"{SVG}circle")
    assert (float(marker.get("cx")), float(marker.get("cy"))) == points[-1]
    (never_spark,) = _svgs(_row(page, mirror["never"]))
    assert "no data" in ET.tostring(never_spark, encoding="unicode")


def test_charts_are_well_formed_svg(admin_client, mirror):
    page = admin_client.get(reverse("admin:index")).content.decode()
    charts = re.search(r'<section class="home-charts".*?</section>', page, re.S).group(0)
    assert [t for t in re.findall(r"<h2>(?:<a [^>]*>)?([^<]+)", charts)] == [
        "Users over time", "Pull durations", "Push throughput",
    ]
    users, durations, throughput = _svgs(charts)
    # One line per pool with pulls, named in the legend.
    legend = [t.text for t in users.iter(f"{SVG}text")]
    assert "eshop-fcj" in legend and "staff-portal" in legend and "fresh-pool" not in legend
    # One bar per finished pull (4 + 2), the failed one in red.
    bars = list(durations.iter(f"{SVG}rect"))
    assert len(bars) == 6 and sum(b.get("fill") == "#D55E00" for b in bars) == 1
    # 24 hourly bars; the two changes applied in the last hour fall in the same or adjacent bars.
    hours = list(throughput.iter(f"{SVG}rect"))
    assert len(hours) == 24
    titles = [b.find(f"{SVG}title").text for b in hours]
    assert sum(int(t.split(": ")[1].split()[0]) for t in titles) == 3


def test_latest_audit_events_are_listed(admin_client, mirror):
    page = admin_client.get(reverse("admin:index")).content.decode()
    events = re.search(r'<section class="module home-events".*?</section>', page, re.S).group(0)
    rows = re.findall(r'<tr class="event">(.*?)</tr>', events, re.S)
    assert len(rows) == 5
    assert "ana@example.com" in rows[0] and "ops" in rows[0]
    assert reverse("admin:directory_auditevent_changelist") in events


def test_email_count_warns_near_and_over_the_daily_limit(admin_client):
    pool = UserPoolFactory(name="busy")
    for _ in range(41):
        _email_sent(pool)
    assert "email-near\">41 / 50<" in admin_client.get(reverse("admin:index")).content.decode()
    for _ in range(9):
        _email_sent(pool)
    assert "email-over\">50 / 50<" in admin_client.get(reverse("admin:index")).content.decode()


def test_stale_and_running_pools(admin_client, settings):
    settings.COGNITO_SYNC_INTERVAL_MINUTES = 15
    stale = UserPoolFactory(name="stale")
    _run(stale, days_ago=0.1, seen=5)  # 2.4 hours: over three 15-minute intervals
    manual = UserPoolFactory(name="manual", sync_interval_minutes=0)
    _run(manual, days_ago=5, seen=5)  # never on a schedule: an old pull is not stale
    running = UserPoolFactory(name="running")
    _run(running, days_ago=0, seen=0, status=SyncRun.Status.RUNNING)
    page = admin_client.get(reverse("admin:index")).content.decode()
    assert "health-stale" in _row(page, stale)
    assert "health-ok" in _row(page, manual)
    assert "health-running" in _row(page, running)


def _staff(django_user_model, *codenames: str):
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def test_administration_section_only_with_permission(client, admin_client, django_user_model, mirror):
    page = admin_client.get(reverse("admin:index")).content.decode()
    admin_section = re.search(r'<div id="administration".*?</div>\s*</div>', page, re.S)
    assert admin_section, "a superuser sees the Administration section"
    section = admin_section.group(0)
    for name in ("Admin users (logins)", "Admin groups (permissions)", "Periodic tasks", "Access attempts"):
        assert name in section
    directory = re.search(r'<div id="directory".*?</div>\s*</div>', page, re.S).group(0)
    assert "Cognito users" in directory and "Cognito groups" in directory
    assert "Admin users" not in directory and "Periodic tasks" not in directory
    # Each name appears once in the app list: no "Users" twice.
    assert len(re.findall(r">Cognito users<", page)) == 1

    client.force_login(_staff(django_user_model, "view_userpool", "view_cognitouser"))
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="administration"' not in page and "Periodic tasks" not in page
    assert 'id="home-pools"' in page
    # Without the outbox's and the audit log's view permissions, their panels are left out.
    assert 'id="home-events"' not in page and "Push throughput" not in page and "change-pending" not in page


def test_staff_without_directory_permissions_sees_no_panels(client, django_user_model, mirror):
    client.force_login(_staff(django_user_model, "view_periodictask"))
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="home-pools"' not in page and 'id="home-charts"' not in page
    assert 'id="administration"' in page and "Periodic tasks" in page


def test_query_count_is_bounded_and_independent_of_users(admin_client, mirror):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert admin_client.get(reverse("admin:index")).status_code == HTTPStatus.OK
        assert not any("directory_cognitouser" in q["sql"] for q in captured.captured_queries)
        return len(captured.captured_queries)

    before = queries()
    CognitoUser.objects.bulk_create(
        CognitoUserFactory.build(pool=mirror["shop"]) for _ in range(500)
    )
    for n in range(20):
        _run(mirror["shop"], days_ago=n / 2, seen=1200 + n)
    assert queries() == before
    assert before <= 20
    # Another pool adds no query either: the figures are grouped by pool.
    UserPoolFactory(name="one-more")
    assert queries() == before
