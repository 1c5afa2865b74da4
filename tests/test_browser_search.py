"""Search by any attribute in a real browser: the criteria form, the result list and the bookmarkable URL."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser_helpers import SCREENSHOTS, login

from .factories import CognitoUserFactory, UserPoolFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

TIERS = ("gold", "silver", "bronze")


@pytest.fixture
def shop():
    pool = UserPoolFactory(name="shop")
    pool.schema = [*pool.schema, {"Name": "custom:tier", "AttributeDataType": "String", "Mutable": True},
                   {"Name": "custom:company", "AttributeDataType": "String", "Mutable": True}]
    pool.save()
    people = [("alice", "Acme Widgets"), ("alina", "Alpine Tools"), ("albert", "Acme Widgets"),
              ("bob", "Bobcorp"), ("carol", "Acme Rockets"), ("alfred", "Umbrella")]
    for n, (name, company) in enumerate(people):
        user = CognitoUserFactory(pool=pool, username=name, email=f"{name}@example.com", name=name.title())
        user.attributes = {**user.attributes, "custom:tier": TIERS[n % 3] if name != "alfred" else "gold",
                           "custom:company": company}
        user.save()
    return pool


def test_operator_finds_users_by_custom_and_standard_attributes(browser, shop, live_server, django_user_model):
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    login(page, live_server, django_user_model)
    page.goto(f"{live_server.url}/admin/directory/cognitouser/?pool__id__exact={shop.pk}")
    # The attribute box suggests the pool's schema, custom attributes included.
    options = page.locator("#attribute-names option").evaluate_all("els => els.map(e => e.value)")
    assert "custom:tier" in options and "email" in options

    rows = page.locator("#attribute-rows .attribute-row")
    rows.nth(0).locator("input[name=an]").fill("custom:tier")
    rows.nth(0).locator("select[name=ao]").select_option("eq")
    rows.nth(0).locator("input[name=av]").fill("gold")
    page.click("#attribute-add-row")
    assert rows.count() == 2
    rows.nth(1).locator("input[name=an]").fill("email")
    rows.nth(1).locator("select[name=ao]").select_option("sw")
    rows.nth(1).locator("input[name=av]").fill("AL")
    page.click("#attribute-search input[type=submit]")
    page.wait_for_load_state()

    query = parse_qs(urlparse(page.url).query)
    assert query["attr"] == ["custom:tier__eq__gold", "email__sw__AL"]
    assert query["pool__id__exact"] == [str(shop.pk)]
    listed = page.locator("#result_list tbody tr th a").all_inner_texts()
    assert sorted(listed) == ["alfred", "alice"]
    assert "2 results" in page.inner_text("#changelist-search") or "2 users" in page.inner_text(".paginator")
    # The form shows the search it ran, with a row to add another.
    assert page.locator("#attribute-rows input[name=av]").evaluate_all("els => els.map(e => e.value)") == [
        "gold", "AL", ""]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    if page.locator("#toggle-nav-sidebar").is_visible():
        page.click("#toggle-nav-sidebar")  # the list gets the page's width
    page.screenshot(path=str(SCREENSHOTS / "search.png"))

    # The URL is the bookmark: opened again, it lists the same users; contains on a custom attribute.
    page.goto(page.url)
    assert sorted(page.locator("#result_list tbody tr th a").all_inner_texts()) == ["alfred", "alice"]
    page.goto(f"{live_server.url}/admin/directory/cognitouser/?attr=custom:company__co__acme")
    assert sorted(page.locator("#result_list tbody tr th a").all_inner_texts()) == ["albert", "alice", "carol"]

    # A bad criterion says why and lists nobody.
    page.goto(f"{live_server.url}/admin/directory/cognitouser/?attr=custom:tier__is__gold")
    assert "unknown operator 'is'" in page.inner_text(".messagelist")
    assert page.locator("#result_list tbody tr").count() == 0
