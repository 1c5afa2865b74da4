"""The directory home in Debian's Chromium at 1,280 px: it fits the window (as do the pools and app
clients lists), its charts render, no request 404s (the favicon), and docs/screenshots/home.png is
taken of a mirror with a month of pulls."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from directory.models import AuditEvent, PendingChange, SyncRun
from tests.browser_helpers import SCREENSHOTS, login
from tests.factories import AppClientFactory, AuditEventFactory, UserPoolFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WIDTH = 1280


def _seed() -> None:
    """Four pools shaped like the demo ones, with a month of pulls (one failed), changes and events."""
    now = timezone.now()
    shapes = (
        ("webchat", "us-east-1_WebChat01", 118, 2, "COGNITO_DEFAULT"),
        ("eshop-fcj", "us-east-1_EShopFcj1", 5_200, 40, "COGNITO_DEFAULT"),
        ("notes-app", "eu-west-1_NotesApp1", 1_240_000, 900, "DEVELOPER"),
        ("staff-portal-with-a-rather-long-name", "eu-west-1_StaffPrt1", 64, 0, "COGNITO_DEFAULT"),
    )
    for name, pool_id, users, growth, sender in shapes:
        pool = UserPoolFactory(name=name, pool_id=pool_id, region=pool_id.split("_")[0],
                               estimated_number_of_users=users,
                               email_configuration={"EmailSendingAccount": sender})
        AppClientFactory(pool=pool, name=f"{name}-spa-client-with-a-long-name")
        AppClientFactory(pool=pool, name=f"{name}-server", has_secret=True)
        runs = []
        for day in range(30, -1, -1):
            started = now - timedelta(days=day, minutes=7)
            status = SyncRun.Status.FAILED if (name == "staff-portal-with-a-rather-long-name" and day == 0) \
                else SyncRun.Status.SUCCEEDED
            runs.append((started, status, users - growth * day, 3 + users // 40_000 + day % 4))
        for started, status, seen, seconds in runs:
            run = SyncRun.objects.create(pool=pool, status=status, seen=seen,
                                         error="EndpointConnectionError: could not reach Cognito" if status == "failed"
                                         else "")
            SyncRun.objects.filter(pk=run.pk).update(started_at=started,
                                                     finished_at=started + timedelta(seconds=seconds))
        for hours_ago in range(0, 24, 2):
            for _ in range(hours_ago % 5 + 1):
                change = PendingChange.objects.create(
                    pool=pool, object_type="user", object_key="someone", operation="user.set_enabled",
                    status=PendingChange.Status.APPLIED)
                PendingChange.objects.filter(pk=change.pk).update(applied_at=now - timedelta(hours=hours_ago))
        if name == "eshop-fcj":
            for status in ("pending", "pending", "failed"):
                PendingChange.objects.create(pool=pool, object_type="user", object_key="bob@example.com",
                                             operation="user.update_attributes", status=status)
            for _ in range(43):
                AuditEventFactory(pool_id=pool_id, action=AuditEvent.Action.RESEND_CODE, outcome="ok",
                                  detail={"delivery": {"DeliveryMedium": "EMAIL"}})
        AuditEventFactory(pool_id=pool_id, action="applied", actor="ops", object_repr=f"ana@{name}.example.com")


def _overflow(page) -> tuple[int, int]:
    return page.evaluate("[document.documentElement.scrollWidth, document.documentElement.clientWidth]")


def test_home_fits_at_1280_and_is_screenshotted(browser, live_server, django_user_model):
    _seed()
    page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    login(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/")
    page.wait_for_selector("#home-pools")

    scroll, client = _overflow(page)
    assert scroll <= client, f"the home is {scroll} px wide in a {client} px window"
    assert page.locator("tr.pool-row").count() == 4
    assert page.locator("#home-pools svg.sparkline").count() == 4
    assert page.locator("#home-charts svg.chart").count() == 3
    # Every chart is drawn inside its box, not cut off.
    for box in page.eval_on_selector_all(
        "#home-charts figure", "fs => fs.map(f => [f.scrollWidth, f.clientWidth])"
    ):
        assert box[0] <= box[1]
    assert page.locator(".health-failing").count() == 1
    assert "43 / 50" in page.inner_text("tr.pool-row[data-pool='us-east-1_EShopFcj1'] td.emails")
    assert page.locator("#administration").is_visible()
    assert not missing, missing  # the favicon included

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "home.png"), full_page=True)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCREENSHOTS / "home.png", DOCS_SCREENSHOTS / "home.png")

    for url in ("/admin/directory/userpool/", "/admin/directory/appclient/"):
        page.goto(f"{live_server.url}{url}")
        page.wait_for_selector("#result_list")
        page.screenshot(path=str(SCREENSHOTS / f"list-{url.split('/')[-2]}-{WIDTH}.png"), full_page=True)
        scroll, client = _overflow(page)
        assert scroll <= client, f"{url} is {scroll} px wide in a {client} px window"
        results = page.eval_on_selector("#changelist .results", "e => [e.scrollWidth, e.clientWidth]")
        assert results[0] <= results[1], f"{url}: the list's columns run {results[0] - results[1]} px off its edge"
    assert not missing, missing
