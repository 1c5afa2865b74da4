"""The pool page shaped like the console (sections in its order, ids to copy at the top, history a
link away) and every admin page fitting 1,280 px without a horizontal scroll bar, in Chromium."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.urls import NoReverseMatch, reverse

from directory.admin.pool_page import SECTIONS
from directory.models import AppClient, AuditEvent, CognitoGroup, CognitoUser, SyncRun, UserPool
from emulator import seed_demo
from tests.browser_helpers import SCREENSHOTS, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WIDTH = 1280


@pytest.fixture
def demo(cognito):
    seed_demo(cognito, users_per_pool=30)
    call_command("cognito_discover", verbosity=0)
    return {p.name: p for p in UserPool.objects.all()}


def overflow(page) -> int:
    """How many CSS pixels the page is wider than the window (0: no horizontal scroll bar)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def test_pool_page_sections_follow_the_console_and_ids_copy(browser, demo, live_server, django_user_model):
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    login(page, live_server, django_user_model)
    eshop = demo["eshop-fcj"]
    client = AppClient.objects.filter(pool=eshop).order_by("name").first()
    page.goto(f"{live_server.url}/admin/directory/userpool/{eshop.pk}/change/")

    # The tab bar names the console's sections in its order, and each links to its section.
    tabs = page.locator("nav.pool-tabs a")
    assert tabs.all_inner_texts() == [title for _, title in SECTIONS]
    tops = [page.locator(f"#{anchor}").bounding_box()["y"] for anchor, _ in SECTIONS]
    assert tops == sorted(tops), "sections are not in the console's order"

    # The ids the walkthroughs copy into code are at the top, with copy buttons that work.
    assert page.locator("#pool-id").inner_text() == eshop.pool_id
    assert page.locator("#app-clients").bounding_box()["y"] < 1200
    page.locator("#overview .copy-button").first.click()
    page.wait_for_selector("#overview .copied:has-text('Copied')")
    assert page.evaluate("navigator.clipboard.readText()") == eshop.pool_id
    clients = page.locator("#app-clients")
    assert client.client_id in clients.inner_text() and client.name in clients.inner_text()
    page.locator("#app-clients .directory-copy", has_text=client.client_id).locator(".copy-button").click()
    page.wait_for_function(f"navigator.clipboard.readText().then(t => t === '{client.client_id}')")
    assert page.evaluate("navigator.clipboard.readText()") == client.client_id

    # The tab jumps to its section.
    page.locator("nav.pool-tabs a", has_text="Groups").click()
    assert page.evaluate("location.hash") == "#groups"
    for group in CognitoGroup.objects.filter(pool=eshop):
        assert group.name in page.locator("#groups").inner_text()
    assert overflow(page) <= 0
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{live_server.url}/admin/directory/userpool/{eshop.pk}/change/")
    page.screenshot(path=str(SCREENSHOTS / "pool-page.png"))
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCREENSHOTS / "pool-page.png", DOCS_SCREENSHOTS / "pool-page.png")

    # History: the latest few inline, all of it a link away, paginated in the audit log.
    inline_events = page.evaluate(
        "document.querySelectorAll('.field-audit_history .readonly > table > tbody > tr').length"
    )
    assert 0 < inline_events <= 10
    page.locator("#pool-history-link").click()
    page.wait_for_selector("#result_list")
    assert f"pool_id={eshop.pool_id}" in page.url
    shown = page.locator("#result_list tbody tr").count()
    assert shown == min(AuditEvent.objects.filter(pool_id=eshop.pool_id).count(), 100)
    # Django's "History" button leads to the same audit log.
    page.goto(f"{live_server.url}/admin/directory/userpool/{eshop.pk}/history/")
    assert f"pool_id={eshop.pool_id}" in page.url
    context.close()


def admin_pages(demo) -> list[str]:
    """Every changelist of the admin, and a change page of each kind of mirrored row and pool view."""
    pool = demo["eshop-fcj"]
    urls = ["admin:index"]
    urls += [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
    ]
    rows = [
        pool,
        AppClient.objects.filter(pool=pool).first(),
        CognitoGroup.objects.filter(pool=pool).first(),
        CognitoUser.objects.filter(pool=pool).exclude(email="").first(),
        AuditEvent.objects.filter(pool_id=pool.pool_id).first(),
        SyncRun.objects.filter(pool=pool).first(),
    ]
    for row in rows:
        urls.append(reverse(f"admin:directory_{row._meta.model_name}_change", args=[row.pk]))
    for view in ("settings", "messages", "schedule", "create_test_user", "delete", "backup", "restore"):
        try:
            urls.append(reverse(f"admin:directory_userpool_{view}", args=[pool.pk]))
        except NoReverseMatch:
            pass
    client = AppClient.objects.filter(pool=pool).first()
    urls += [
        reverse("admin:directory_userpool_add"),
        f"{reverse('admin:directory_userpool_add')}?like={pool.pk}",
        f"{reverse('admin:directory_appclient_add')}?pool={pool.pk}",
        reverse("admin:directory_appclient_delete", args=[client.pk]),
        f"{reverse('admin:directory_cognitouser_changelist')}?pool__id__exact={pool.pk}&attr=email__co__example",
    ]
    return [reverse(u) if u.startswith("admin:") else u for u in urls]


def test_no_admin_page_scrolls_sideways_at_1280(browser, demo, live_server, django_user_model):
    page = browser.new_page(viewport={"width": WIDTH, "height": 900})
    login(page, live_server, django_user_model)
    too_wide = {}
    for url in admin_pages(demo):
        response = page.goto(f"{live_server.url}{url}")
        assert response.status == 200, url
        extra = overflow(page)
        if extra > 0:
            too_wide[url] = extra
    assert too_wide == {}, f"pages wider than {WIDTH} px (by px): {too_wide}"
