"""An operator in Debian's Chromium, in local mode: discovers the emulator's pools with the pools list's
button, opens an app client's page, copies the ids from its integration panel (a screenshot of it goes
to docs/screenshots/integration-panel.png) and then deletes the client in Cognito."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from playwright.sync_api import expect

from directory.models import AppClient, AuditEvent, UserPool
from emulator import seed_demo
from tests.browser_helpers import SCREENSHOTS, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def test_integration_panel_copy_and_delete(browser, emu, live_server, django_user_model, settings):
    settings.COGNITO_LOCAL_MODE = True
    seed_demo(emu, users_per_pool=5)
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    login(page, live_server, django_user_model)

    page.goto(f"{live_server.url}/admin/directory/userpool/")
    page.get_by_role("button", name="Discover pools").click()
    expect(page.locator(".messagelist")).to_contain_text("Discovery: 4 pools found, 4 new, 0 gone.")
    webchat = UserPool.objects.get(name="webchat")
    chatapp = AppClient.objects.get(pool=webchat, name="chatapp")

    page.goto(f"{live_server.url}/admin/directory/appclient/{chatapp.pk}/change/")
    panel = page.locator("#integration-panel")
    expect(panel).to_contain_text("Local mode: these values point at the local emulator")
    endpoint = emu.meta.endpoint_url
    expect(page.locator("#integration-issuer")).to_have_text(f"{endpoint}/{webchat.pool_id}")
    expect(page.locator("#integration-amplify")).to_contain_text(f'userPoolClientId: "{chatapp.client_id}"')
    expect(page.locator("#integration-amplify")).to_contain_text(f'userPoolEndpoint: "{endpoint}"')
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    panel.screenshot(path=str(SCREENSHOTS / "integration-panel.png"))
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(SCREENSHOTS / "integration-panel.png", DOCS_SCREENSHOTS / "integration-panel.png")

    # The copy buttons put the value itself on the clipboard.
    page.locator('button[data-copy="integration-pool-id"]').click()
    expect(page.locator("#integration-panel .copied").first).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == webchat.pool_id
    page.locator('button[data-copy="integration-env"]').click()
    assert f"COGNITO_CLIENT_ID={chatapp.client_id}" in page.evaluate("navigator.clipboard.readText()")

    # Deleting it: the admin's Delete link leads to the Cognito-aware confirmation.
    page.get_by_role("link", name="Delete").click()
    expect(page.locator("#delete-what-goes")).to_contain_text("stop signing in")
    page.get_by_role("button", name="Delete in Cognito").click()
    expect(page.locator(".messagelist")).to_contain_text(f"App client chatapp ({chatapp.client_id}) was deleted")
    with pytest.raises(ClientError):
        emu.describe_user_pool_client(UserPoolId=webchat.pool_id, ClientId=chatapp.client_id)
    assert AuditEvent.objects.filter(action="deleted", object_id=chatapp.client_id, actor="operator").exists()
    context.close()
