"""The message editor in Debian's Chromium: live preview, field errors, diff-and-save, and a hostile
template that must neither run script nor load anything remote inside the preview."""

from __future__ import annotations

import http.server
import shutil
import threading
from pathlib import Path

import pytest
from playwright.sync_api import expect

from directory import gateway
from directory.models import AuditEvent, TemplateVersion
from emulator import ESHOP_VERIFICATION_HTML
from tests.browser_helpers import SCREENSHOTS, login
from tests.cognito_helpers import described

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DOCS_SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
TEMPLATE_KEYS = {
    "VerificationMessageTemplate",
    "EmailVerificationMessage",
    "EmailVerificationSubject",
    "SmsVerificationMessage",
}


def _screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path), full_page=False)
    DOCS_SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, DOCS_SCREENSHOTS / name)


def _fill_and_wait(page, selector: str, value: str) -> None:
    """Type into a field and wait for the preview the editor's script fetches for it."""
    with page.expect_response(lambda r: "/messages/preview/" in r.url and r.status == 200):
        page.fill(selector, value)
    # A locator assertion, not wait_for_function: the page's CSP (no 'unsafe-eval') refuses the latter's eval.
    expect(page.locator("#messages-preview-status")).to_have_text("")


def _open_editor(page, live_server, django_user_model, pool):
    console: list[str] = []
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}"))
    login(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/directory/userpool/{pool.pk}/change/")
    page.click("#pool-messages-link")
    page.wait_for_selector("#messages-form")
    return console


def test_edit_preview_validate_and_save(browser, emu, eshop, cognito, sent_requests, live_server, django_user_model):
    # Through the emulator: moto alone drops the e-mail sign-in on UpdateUserPool (the push fails the change).
    before = described(cognito, eshop)
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    console = _open_editor(page, live_server, django_user_model, eshop)

    # Paste the walkthrough's HTML: the preview renders it with the sample code for {####}.
    _fill_and_wait(page, "#id_email_message", "")
    _fill_and_wait(page, "#id_email_message", ESHOP_VERIFICATION_HTML)
    frame = page.frame_locator("#preview-verification-desktop")
    assert "Welcome to eSHOP-FCJ" in frame.locator("body").inner_text()
    assert "{123456}" in frame.locator("body").inner_text()  # the seed writes {{####}}
    assert "123456" in page.frame_locator("#preview-verification-phone").locator("body").inner_text()
    assert page.inner_text("#errors-email_message") == ""

    # Remove the placeholder: the field error names the field and the rule.
    _fill_and_wait(page, "#id_email_message", ESHOP_VERIFICATION_HTML.replace("{{####}}", "{{code}}"))
    error = page.inner_text("#errors-email_message")
    assert "email_message: must contain the code placeholder {####}" in error
    assert "123456" not in page.frame_locator("#preview-verification-desktop").locator("body").inner_text()

    # Restore it, and change the subject too.
    _fill_and_wait(page, "#id_email_message", ESHOP_VERIFICATION_HTML)
    assert page.inner_text("#errors-email_message") == ""
    _fill_and_wait(page, "#id_email_subject", "Your eSHOP-FCJ verification code")
    assert page.inner_text("#preview-verification-subject") == "Your eSHOP-FCJ verification code"
    _fill_and_wait(page, "#id_sms_message", "Your eSHOP-FCJ code: {####}")
    assert page.inner_text("#preview-sms_message-text") == "Your eSHOP-FCJ code: 123456"
    assert "1 segment (GSM-7" in page.inner_text("#preview-sms_message-info")
    page.click("#toggle-nav-sidebar")
    page.evaluate("window.scrollTo(0, 0)")
    _screenshot(page, "message-editor.png")

    # Review: the diff against what Cognito holds now, then save.
    page.click("#messages-review")
    page.wait_for_selector("#messages-diff")
    assert "Compared with Cognito, read just now" in page.inner_text("#messages-compared-with")
    assert "Your eSHOP-FCJ verification code" in page.inner_text("#messages-diff")
    _screenshot(page, "message-editor-diff.png")
    page.click("#messages-confirm")
    page.wait_for_selector("#messages-history")
    assert "Saved as version 2" in page.inner_text(".messagelist")
    assert "applied" in page.inner_text("#version-2")
    _screenshot(page, "message-editor-history.png")

    # Cognito (moto) holds the new template ...
    after = described(cognito, eshop)
    assert after["VerificationMessageTemplate"]["EmailMessage"] == ESHOP_VERIFICATION_HTML
    assert after["VerificationMessageTemplate"]["EmailSubject"] == "Your eSHOP-FCJ verification code"
    # ... and the one UpdateUserPool request carried every other setting as DescribeUserPool had it.
    (request,) = sent_requests
    accepted = gateway.get_client("us-east-1").meta.service_model.operation_model("UpdateUserPool").input_shape.members
    expected = gateway.full_update_request("UpdateUserPool", before, list(accepted))
    for key in set(expected) | set(request):
        if key in TEMPLATE_KEYS:
            continue
        if key == "AdminCreateUserConfig":
            strip = lambda c: {k: v for k, v in c.items() if k != "InviteMessageTemplate"}  # noqa: E731
            assert strip(request[key]) == strip(expected[key])
            continue
        assert request.get(key) == expected.get(key), key
    assert request["EmailVerificationSubject"] == "Your eSHOP-FCJ verification code"
    assert request["SmsVerificationMessage"] == after["VerificationMessageTemplate"]["SmsMessage"]

    version = TemplateVersion.objects.get(pool=eshop, number=2)
    assert (version.actor, version.source, version.outcome) == ("operator", "operator", "applied")
    actions = set(AuditEvent.objects.filter(pool_id=eshop.pool_id, actor="operator").values_list("action", flat=True))
    assert {"requested", "template_version", "applied"} <= actions
    # The admin's own scripts run under the editor's policy: nothing was blocked.
    assert not [line for line in console if "Content Security Policy" in line], console


class _Recorder(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self):  # noqa: N802
        type(self).seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/gif")
        self.end_headers()
        self.wfile.write(
            b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00,"
            b"\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
        )

    def log_message(self, *args):
        pass


@pytest.fixture
def tracker():
    """A 'remote' server on another origin that records every request it gets."""
    _Recorder.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    import urllib.request

    urllib.request.urlopen(f"{base}/self-check", timeout=5).read()  # noqa: S310 - loopback
    assert _Recorder.seen == ["/self-check"]  # the recorder works
    _Recorder.seen = []
    yield base, _Recorder.seen
    server.shutdown()


def test_hostile_template_neither_runs_nor_loads(browser, eshop, tracker, live_server, django_user_model):
    base, seen = tracker
    hostile = (
        "<p id='code'>Code {####}</p>"
        "<script>parent.pwned = 'script'; window.top.document.title = 'pwned'; console.log('PWNED script')</script>"
        f"<img id='pixel' src='{base}/pixel.gif' onerror=\"parent.pwned='onerror'; console.log('PWNED onerror')\">"
        "<img src='x' onerror=\"window.top.document.title='pwned'; console.log('PWNED onerror2')\">"
        "<a id='jslink' href=\"javascript:parent.pwned='link';console.log('PWNED link')\">Verify</a>"
        f"<link rel='stylesheet' href='{base}/style.css'>"
        f"<style>@import url('{base}/import.css'); body {{ background: url('{base}/bg.png') }}</style>"
        f"<iframe src='{base}/frame.html'></iframe>"
    )
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    responses: list[str] = []
    failures: list[tuple[str, str]] = []
    page.on("response", lambda response: responses.append(response.url))
    page.on("requestfailed", lambda request: failures.append((request.url, request.failure or "")))
    console = _open_editor(page, live_server, django_user_model, eshop)
    title = page.title()
    _fill_and_wait(page, "#id_email_message", hostile)
    frame = page.frame_locator("#preview-verification-desktop")
    assert frame.locator("#code").inner_text() == "Code 123456"  # the template did render
    assert frame.locator("#pixel").count() == 1
    frame.locator("#jslink").click()
    page.wait_for_timeout(1500)

    assert page.evaluate("window.pwned") is None
    assert page.title() == title
    assert not [line for line in console if "PWNED" in line], console
    assert seen == []  # the tracking server saw nothing
    assert not [url for url in responses if url.startswith(base)], responses
    # Whatever remote request Chromium reports as failed was refused by the Content-Security-Policy (whether
    # it reports them at all varies between runs; the console's CSP violations below always come).
    remote = [(url, failure) for url, failure in failures if url.startswith(base)]
    assert all(failure in {"csp", "net::ERR_BLOCKED_BY_CSP"} for _, failure in remote), remote
    blocked = [line for line in console if "Content Security Policy" in line]
    assert any("pixel.gif" in line and "img-src" in line for line in blocked), blocked
    assert any("style.css" in line for line in blocked), blocked
    # Control: the same HTML outside the editor's policy does reach the tracker, so `seen == []` above means
    # the policy stopped the loads, not that the test could not see them.
    control = browser.new_page()
    control.set_content(hostile)
    control.wait_for_timeout(1000)
    assert "/pixel.gif" in seen, seen
    control.close()
    # Warnings tell the operator what e-mail clients will strip.
    warnings = page.inner_text("#messages-warnings")
    assert "<script> is removed" in warnings and "external CSS" in warnings
