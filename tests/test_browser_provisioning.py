"""Creating a user pool in Debian's Chromium: from the pools list's Add button through the create page
to the new pool's page, against the emulator; then a web app's client with its secret shown once."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core import serializers
from playwright.sync_api import expect

from directory.models import AppClient, AuditEvent, UserPool
from tests.browser_helpers import SCREENSHOTS, login

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"


def _screenshot(page, name: str, *, full_page: bool = False) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=full_page)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS_SCREENSHOTS / name)


def test_create_a_pool_in_the_browser(browser, emu, live_server, django_user_model):
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    console: list[str] = []
    failed: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    login(page, live_server, django_user_model)

    page.goto(f"{live_server.url}/admin/directory/userpool/")
    page.click(".object-tools a.addlink")
    page.wait_for_selector("#userpool-create-form")
    assert "Cannot be changed after the pool is created." in page.inner_text("#userpool-create-form")
    page.check("input[name=application_type][value=spa]")
    page.fill("#id_app_client_name", "notes-spa")
    page.fill("#id_return_url", "http://localhost:5173/")
    page.fill("#id_pool_name", "notes-staging")
    page.check("input[name=required_attributes][value=name]")
    page.click("#toggle-nav-sidebar")
    page.evaluate("window.scrollTo(0, 0)")
    _screenshot(page, "provision-create.png")

    # A refusal first: a return URL Cognito would refuse, named on its field; nothing created.
    page.fill("#id_return_url", "http://notes.example.com/")
    page.click("input[name=_create]")
    page.wait_for_selector(".errornote")
    assert "https except for http://localhost" in page.inner_text(".field-return_url")
    assert emu.list_user_pools(MaxResults=10)["UserPools"] == []

    page.fill("#id_return_url", "http://localhost:5173/")
    page.click("input[name=_create]")
    page.wait_for_selector(".messagelist")
    pool = UserPool.objects.get(name="notes-staging")
    assert page.url.endswith(f"/admin/directory/userpool/{pool.pk}/change/")
    body = page.inner_text("body")
    assert pool.pool_id in body and "notes-spa" in body and "created in Cognito" in body
    remote = emu.describe_user_pool(UserPoolId=pool.pool_id)["UserPool"]
    assert remote["UsernameAttributes"] == ["email"]
    assert {a["Name"] for a in remote["SchemaAttributes"] if a.get("Required")} == {"email", "name"}
    client = AppClient.objects.get(pool=pool)
    described = emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=client.client_id)["UserPoolClient"]
    assert described["CallbackURLs"] == ["http://localhost:5173/"] and "ClientSecret" not in described

    # A server-side client for it, from the pool page's App clients section: the secret, once, with a copy button.
    page.click("#add-app-client-link")
    page.wait_for_selector("#appclient-create-form")
    page.fill("#id_client_name", "notes-backend")
    page.check("input[name=application_type][value=web]")
    page.fill("#id_callback_urls", "https://notes.example.com/auth/callback")
    page.click("input[name=_create]")
    page.wait_for_selector("#client-secret")
    backend = AppClient.objects.get(name="notes-backend")
    secret = emu.describe_user_pool_client(UserPoolId=pool.pool_id, ClientId=backend.client_id)["UserPoolClient"][
        "ClientSecret"
    ]
    assert page.inner_text("#client-secret") == secret
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.click("#copy-secret")
    expect(page.locator("#copy-secret + .copied")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    # Reloading the pool page never shows it again.
    page.goto(f"{live_server.url}/admin/directory/userpool/{pool.pk}/change/")
    assert secret not in page.content()
    assert secret not in serializers.serialize("json", AuditEvent.objects.all())
    assert secret not in serializers.serialize("json", AppClient.objects.all())
    # No script error, and nothing missing but the browser's own favicon request.
    assert not [line for line in console if line.startswith("error") and "Failed to load resource" not in line]
    assert [line for line in failed if not line.endswith("/favicon.ico")] == []
