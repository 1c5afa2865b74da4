"""The admin in a real browser: Debian's Chromium driven by Playwright against the live server."""

from __future__ import annotations

import pytest

from directory.models import CognitoUser, UserPool
from emulator import seed_demo
from tests.browser_helpers import SCREENSHOTS, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def demo(cognito):
    from django.core.management import call_command

    seed_demo(cognito, users_per_pool=40)
    call_command("cognito_discover", verbosity=0)
    return {p.name: p for p in UserPool.objects.all()}


def test_operator_browses_the_mirror_and_starts_a_sync(browser, demo, live_server, django_user_model):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    login(page, live_server, django_user_model)

    page.goto(f"{live_server.url}/admin/directory/userpool/")
    for name in ("eshop-fcj", "webchat", "notes-app", "staff-portal"):
        assert page.get_by_role("link", name=name).count() >= 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "pools.png"))

    eshop = demo["eshop-fcj"]
    page.goto(f"{live_server.url}/admin/directory/userpool/{eshop.pk}/change/")
    body = page.inner_text("body")
    assert eshop.pool_id in body and "eshop-client-no-secret" in body
    assert "ALLOW_USER_PASSWORD_AUTH" in body
    page.screenshot(path=str(SCREENSHOTS / "pool.png"), full_page=False)

    page.get_by_role("button", name="Sync now").click()
    page.wait_for_selector(".messagelist")
    assert "started" in page.inner_text(".messagelist").lower()

    # Users: search by e-mail prefix and filter by status.
    page.goto(f"{live_server.url}/admin/directory/cognitouser/?pool__id__exact={eshop.pk}")
    unconfirmed = CognitoUser.objects.filter(pool=eshop, status="UNCONFIRMED").first()
    page.fill("#searchbar", unconfirmed.email.split("@")[0])
    page.press("#searchbar", "Enter")
    page.wait_for_load_state()
    assert unconfirmed.email in page.inner_text("#result_list")
    page.goto(f"{live_server.url}/admin/directory/cognitouser/?status__exact=UNCONFIRMED")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == CognitoUser.objects.filter(status="UNCONFIRMED").count()
    page.screenshot(path=str(SCREENSHOTS / "users.png"))
