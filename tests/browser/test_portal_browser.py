"""The portal in a real browser: log in, read the balance, filter usage, download the
CSV, and an office admin kept out of another office. Screenshots go to test-output/."""

import csv
import datetime as dt
import io
import re
from pathlib import Path

import pytest

from credits.services import credits_purchase, pooling_set
from offices.templatetags.portal_format import credits
from tests.browser.conftest import login
from tests.factories import UserFactory, company_admin, company_factory, event, office_admin
from usage.models import UsageRecord
from usage.services import usage_ingest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


@pytest.fixture
def acme(services, care):
    """Acme, pooling on with 500 credits; austin and berlin used SMS today and 3 days ago."""
    company = company_factory(slug="acme", offices=("austin", "berlin"))
    pooling_set(company=company, enabled=True, actor=care, reason="one pool for all offices")
    credits_purchase(company=company, amount="500", actor=care, reference="PO-77")
    now = dt.datetime.now(dt.UTC)
    earlier = now - dt.timedelta(days=3)
    if earlier.month != now.month:  # keep both events in this billing period
        earlier = now - dt.timedelta(minutes=10)
    usage_ingest(
        company=company,
        events=[
            event(
                "a-old",
                office="austin",
                quantity="90",
                occurred_at=earlier,
                user_label="Ann",
                phone_number="+15550001",
            ),
            event(
                "a-new",
                office="austin",
                quantity="40",
                occurred_at=now - dt.timedelta(minutes=5),
                user_label="Ann",
                phone_number="+15550001",
            ),
            event(
                "b-new",
                office="berlin",
                quantity="25",
                occurred_at=now - dt.timedelta(minutes=4),
                user_label="Bea",
                phone_number="+4930111",
            ),
            event(
                "h-ai",
                office="hq",
                service="ai_agent",
                quantity="2",
                occurred_at=now - dt.timedelta(minutes=3),
            ),
        ],
    )
    return company


def test_company_admin_reads_balance_filters_usage_and_downloads_csv(
    live_server, page, screenshot, acme
):
    company_admin(acme, username="boss")
    # given: the company admin logs in and lands on the company balance
    login(page, live_server, "boss")
    page.wait_for_url(re.compile(r"/balance/$"))
    screenshot("balance")
    # then: pool balance 500 − 30 drawn by austin (90 + 40 − 100 allowance)
    assert "470.00" in page.locator("#pool-balance").inner_text()
    assert "Shared pool on since" in page.locator("#pooling-status").inner_text()
    austin_row = page.locator('tr[data-office="austin"]')
    assert "30.00" in austin_row.locator("td.pool-drawn").inner_text()
    assert "100.0 %" in austin_row.inner_text()

    # when: they open austin's office page
    austin_row.get_by_role("link", name="Austin").click()
    page.wait_for_url(re.compile(r"/offices/austin/$"))
    assert "Draws from the shared pool" in page.locator("#funding").inner_text()
    assert page.locator("svg rect.seg-pool").count() >= 1
    screenshot("office")

    # when: they filter usage by office and by the day of austin's latest event
    day = UsageRecord.objects.get(external_id="a-new").occurred_at.date()
    expected = list(
        UsageRecord.objects.filter(office__slug="austin", occurred_at__date=day).order_by(
            "-occurred_at"
        )
    )
    page.get_by_role("link", name="Usage", exact=True).click()
    page.get_by_label("Office", exact=True).select_option(label="Austin")
    page.get_by_label("From", exact=True).fill(day.isoformat())
    page.get_by_label("To", exact=True).fill(day.isoformat())
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"office="))
    screenshot("usage-filtered")
    # then: only austin's events of that day, with their total
    rows = page.locator("table.usage-table tbody tr")
    assert rows.count() == len(expected) >= 1
    assert all("Austin" in text for text in rows.all_inner_texts())
    assert page.locator("#total-cost").inner_text() == credits(sum(r.cost for r in expected))

    # when: they download the CSV of that filter
    with page.expect_download() as download_info:
        page.locator("#export-link").click()
    content = Path(download_info.value.path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(content)))
    # then: the file holds exactly the filtered rows, with their split
    assert [r["event_id"] for r in exported] == [r.external_id for r in expected]
    latest = exported[0]
    assert latest["event_id"] == "a-new"
    # 90 of austin's 100 allowance went earlier, so 10 from the allowance, 30 from the pool
    assert latest["allowance"] == "10.0000" and latest["pool"] == "30.0000"

    # and the add-credits page renders with its summary step
    page.get_by_role("link", name="Add credits").first.click()
    screenshot("add-credits")
    page.get_by_label("Credits to add").fill("250")
    page.get_by_role("button", name="Review purchase").click()
    assert "250.00" in page.locator("#purchase-summary").inner_text()
    screenshot("add-credits-confirm")
    page.get_by_role("button", name="Record purchase").click()
    page.wait_for_url(re.compile(r"/balance/$"))
    assert "720.00" in page.locator("#pool-balance").inner_text()
    assert "+250.00" in page.locator("#activity-table").inner_text()
    screenshot("balance-after-purchase")
    # and the balance stays readable on a tablet
    page.set_viewport_size({"width": 820, "height": 1180})
    screenshot("balance-tablet")


def test_office_admin_cannot_reach_another_office(live_server, page, screenshot, acme):
    office_admin(acme.offices.get(slug="austin"), username="austin-boss")
    login(page, live_server, "austin-boss")
    page.wait_for_url(re.compile(r"/offices/austin/$"))
    screenshot("office-admin-home")
    response = page.goto(f"{live_server.url}/offices/berlin/")
    assert response.status == 404
    assert "Not found" in page.locator("h1").inner_text()
    screenshot("other-office-404")
    page.goto(f"{live_server.url}/usage/")
    assert "Bea" not in page.content()
    screenshot("office-admin-usage")


def test_other_tenant_and_no_role_pages(live_server, page, screenshot, services):
    other = company_factory(slug="globex", name="Globex")
    company_admin(other, username="globex-boss")
    login(page, live_server, "globex-boss")
    page.wait_for_url(re.compile(r"/balance/$"))
    assert page.goto(f"{live_server.url}/offices/austin/").status == 404
    page.goto(f"{live_server.url}/usage/?date_from=notadate&min_cost=abc")
    assert "Some filters are not valid" in page.content()
    screenshot("usage-bad-filters")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    # a user without a role is refused
    UserFactory(username="nobody")
    login(page, live_server, "nobody")
    assert "No access" in page.locator("h1").inner_text()
    screenshot("no-role-403")
    page.get_by_role("button", name="Log out").click()
    page.wait_for_url(re.compile(r"/accounts/login/"))
    screenshot("login")
