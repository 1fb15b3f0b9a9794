"""Statements and what-if in a real browser on the demo data: the period picker on the
balance page, the statement, the what-if, an office admin's statement and care's admin
page, each at desktop (1366 px) and phone (390 px) width. Screenshots go to
test-output/screenshots/."""

import datetime as dt
import io
import re

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from offices.models import Company
from tests.browser.conftest import login
from usage.management.commands.seed_demo import DEFAULT_PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]
WIDTHS = {"desktop": (1366, 900), "phone": (390, 844)}


@pytest.fixture
def demo(db):
    call_command("seed_demo", stdout=io.StringIO())
    return Company.objects.get(slug="acme")


def shots(page, screenshot, name):
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        # the money columns stay reachable: the tables scroll inside their box, not the page
        assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, label
        screenshot(f"{name}-{label}")


def _last_month(company) -> str:
    today = dt.datetime.now(company.tz).date().replace(day=1)
    return f"{(today - dt.timedelta(days=1)):%Y-%m}"


def test_statement_and_what_if_pages(live_server, page, screenshot, demo):
    login(page, live_server, "acme-admin", DEFAULT_PASSWORD)
    page.goto(f"{live_server.url}/balance/")
    # the picker on the balance page leads to the chosen month's statement
    page.locator("#statement-period").fill(_last_month(demo))
    page.get_by_role("button", name="Show statement").click()
    expect(page).to_have_url(re.compile(rf"/statements/{_last_month(demo)}/$"))
    expect(page.locator("#statement-check")).to_contain_text("Ties out")
    shots(page, screenshot, "statement")
    # the what-if of the same month: Berlin and London ran over while HQ held credits
    page.set_viewport_size({"width": 1366, "height": 900})
    page.locator("#statement-whatif").click()
    expect(page.locator("#whatif-table")).to_contain_text("London")
    shots(page, screenshot, "whatif")


def test_what_if_link_while_pooling_is_off(live_server, page, screenshot, demo):
    login(page, live_server, "globex-admin", DEFAULT_PASSWORD)
    page.goto(f"{live_server.url}/balance/")
    expect(page.locator("#statement-links")).to_be_visible()
    shots(page, screenshot, "balance-statement-links")
    page.set_viewport_size({"width": 1366, "height": 900})
    page.locator("#whatif-link").click()
    expect(page.locator("#whatif-check")).to_contain_text("Pooling was off")


def test_office_admin_statement(live_server, page, screenshot, demo):
    login(page, live_server, "berlin-admin", DEFAULT_PASSWORD)
    page.goto(f"{live_server.url}/statements/{_last_month(demo)}/")
    expect(page.locator("#balances-table")).to_contain_text("Berlin wallet")
    expect(page.locator("#balances-table")).not_to_contain_text("London")
    shots(page, screenshot, "statement-office-admin")


def test_care_sees_the_what_if_on_the_company_page(live_server, page, screenshot, demo):
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill("care")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name=re.compile("log in", re.I)).click()
    page.goto(f"{live_server.url}/admin/offices/company/{demo.pk}/change/")
    expect(page.locator("#whatif-admin")).to_be_visible()
    page.locator("#whatif-admin").scroll_into_view_if_needed()
    for label, (width, height) in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": height})
        screenshot(f"admin-whatif-{label}")
