"""A pool's Settings page in Debian's Chromium: a refused prerequisite, then a save that reaches the emulator."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from directory.models import PendingChange, UserPool
from directory.sync.pull import pull_pool
from tests.browser_helpers import SCREENSHOTS, login
from tests.cognito_helpers import ESHOP_LAMBDA, create_pool

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=False)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS_SCREENSHOTS / name)


def test_settings_page_refuses_then_saves(browser, emu, live_server, django_user_model):
    pool_id = create_pool(emu, name="shop", email_username=True, LambdaConfig=ESHOP_LAMBDA)
    pool = UserPool.objects.create(pool_id=pool_id, region="us-east-1")
    assert pull_pool(pool=pool).status == "succeeded"
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    login(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/directory/userpool/{pool.pk}/settings/")
    page.wait_for_selector("#userpool-settings-form")
    _screenshot(page, "pool-settings.png")
    assert "Cognito fixes UsernameAttributes" in page.inner_text("#locked-settings")

    # MFA required without a method: refused on the form, nothing queued.
    page.select_option("#id_mfa_configuration", "ON")
    page.click("input[name=_save]")
    page.wait_for_selector(".errorlist")
    assert "needs at least one MFA method" in page.inner_text(".field-mfa_configuration")
    assert not PendingChange.objects.exists()

    page.check("input[name=mfa_methods][value=SOFTWARE_TOKEN]")
    page.select_option("#id_remember_devices", "user_opt_in")
    page.click("input[name=_save]")
    page.wait_for_selector("#content-main .field-settings_overview")
    change = PendingChange.objects.get(pool=pool)
    assert change.status == "applied", change.last_error
    remote = emu.describe_user_pool(UserPoolId=pool_id)["UserPool"]
    assert remote["MfaConfiguration"] == "ON" and remote["DeviceConfiguration"]["DeviceOnlyRememberedOnUserPrompt"]
    assert remote["UsernameAttributes"] == ["email"]
    assert "User opt-in" in page.inner_text(".field-settings_overview")
