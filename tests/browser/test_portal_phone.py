"""Issue 12 in a real browser (points 1, 2 and 7): after a mid-period pooling switch the
office and balance pages name what actually paid; every portal page, per role, at 1366
and 390 px keeps its money cells on screen. Screenshots of every page go to
test-output/screenshots/."""

import re
from decimal import Decimal

import pytest
from django.db.models import Sum

from credits.services import credits_purchase, pooling_set
from offices.templatetags.portal_format import credits
from tests.browser.conftest import OUTPUT, login
from tests.factories import company_admin, company_factory, customer_care_user, event, office_admin
from usage.api_auth import api_key_create
from usage.models import UsageRecord
from usage.services import usage_ingest

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]

WIDTHS = (1366, 390)


@pytest.fixture
def switched(services):
    """Acme: pooling on, berlin draws 50 from the pool; care turns pooling off; berlin's
    wallet gets 100 and pays it all, then 30 go uncovered. Austin and hq use a little;
    a few purchases and a usage-heavy activity list."""
    care = customer_care_user("care")
    company = company_factory(slug="acme", name="Acme Corp", offices=("austin", "berlin"))
    berlin = company.offices.get(slug="berlin")
    pooling_set(company=company, enabled=True, actor=care, reason="Quarter-end consolidation")
    credits_purchase(company=company, amount="500", actor=care, reference="PO-500")

    def charge(external_id, office, quantity, service="sms", **extra):
        usage_ingest(
            company=company,
            events=[event(external_id, office=office, service=service, quantity=quantity, **extra)],
        )

    charge("b1", "berlin", "150", user_label="Bea Berg", phone_number="+49 30 5555 0171")
    charge("a1", "austin", "40", user_label="Ann Avery", phone_number="+1 512 555 0101")
    charge("h1", "hq", "3", service="ai_agent")
    pooling_set(company=company, enabled=False, actor=care, reason="Back to wallets")
    credits_purchase(company=company, amount="100", office=berlin, actor=care, reference="PO-B")
    charge("b2", "berlin", "30", user_label="Bea Berg", phone_number="+49 30 5555 0171")
    charge("b3", "berlin", "100", service="sms", user_label="Bo Brandt")
    company_admin(company, username="boss")
    office_admin(berlin, username="berlin-boss")
    api_key_create(company=company, name="billing sync")
    return company


def parts_of(office_slug: str) -> dict[str, Decimal]:
    fields = ("allowance_part", "pool_part", "wallet_part", "ai_part", "uncovered")
    sums = UsageRecord.objects.filter(office__slug=office_slug).aggregate(
        **{f: Sum(f) for f in fields}
    )
    return {f: v or Decimal(0) for f, v in sums.items()}


def shoot(page, name: str) -> None:
    folder = OUTPUT / "screenshots" / "round2"
    folder.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(folder / f"{name}.png"), full_page=True)


def money_cells_on_screen(page, width: int) -> int:
    """Every visible money cell lies inside the viewport and the page does not scroll
    sideways; returns how many cells were checked."""
    boxes = page.eval_on_selector_all(
        "td.money, .money",
        """els => els.filter(e => e.offsetParent !== null).map(e => {
            const r = e.getBoundingClientRect();
            return [r.left, r.right, e.textContent.trim()];
        })""",
    )
    for left, right, text in boxes:
        assert left >= -0.5 and right <= width + 0.5, f"{text!r} at {left}–{right} of {width}"
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"page is {scroll} px wide at {width}"
    return len(boxes)


@pytest.mark.parametrize("width", WIDTHS)
def test_company_admin_pages_after_a_switch(live_server, browser, switched, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    login(page, live_server, "boss")
    page.wait_for_url(re.compile(r"/balance/$"))
    shoot(page, f"company-admin-balance-{width}")
    berlin = parts_of("berlin")

    # Point 2: both modes' draws this period, from what paid; combined balance
    row = page.locator('tr[data-office="berlin"]')
    assert row.locator("td.pool-drawn").inner_text().strip() == credits(berlin["pool_part"])
    assert row.locator("td.wallet-drawn").inner_text().strip() == credits(berlin["wallet_part"])
    assert row.locator("td.uncovered").inner_text().strip() == credits(berlin["uncovered"])
    assert page.locator("#combined-balance").is_visible()
    assert money_cells_on_screen(page, width) >= 10
    if width == 1366:
        # pooling off: the table is not clipped, nothing scrolls inside it
        clipped = page.eval_on_selector(
            "#offices-table", "t => t.parentElement.scrollWidth > t.parentElement.clientWidth"
        )
        assert not clipped

    # Point 1: the office page names each source
    page.goto(f"{live_server.url}/offices/berlin/")
    shoot(page, f"company-admin-office-berlin-{width}")
    sms = page.locator("#by-service tbody tr").filter(has_text="SMS")
    assert sms.locator("td.part-pool_part").inner_text().strip() == credits(berlin["pool_part"])
    assert sms.locator("td.part-wallet_part").inner_text().strip() == credits(berlin["wallet_part"])
    colours = {
        css: page.eval_on_selector(f".key-{css}", "e => getComputedStyle(e).backgroundColor")
        for css in ("allowance", "pool", "wallet", "ai", "uncovered")
    }
    assert len(set(colours.values())) == 5, colours
    chart = page.locator("figure.chart-wide" if width > 640 else "figure.chart-phone")
    assert chart.is_visible()
    assert chart.locator("svg rect.seg-pool").count() >= 1
    assert chart.locator("svg rect.seg-wallet").count() >= 1
    assert chart.locator("svg text.ytick").count() == 5
    assert chart.locator("svg text.xtick").count() >= 4
    money_cells_on_screen(page, width)

    for path, name in (
        ("/balance/activity/", "activity"),
        ("/usage/", "usage"),
        ("/usage/?sort=quantity", "usage-sorted-quantity"),
        ("/credits/add/", "add-credits"),
    ):
        page.goto(f"{live_server.url}{path}")
        shoot(page, f"company-admin-{name}-{width}")
        money_cells_on_screen(page, width)
    # sortable headers look like links
    page.goto(f"{live_server.url}/usage/")
    decoration = page.eval_on_selector(
        "th.orderable a", "a => getComputedStyle(a).textDecorationLine"
    )
    assert "underline" in decoration
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_office_admin_pages(live_server, browser, switched, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    login(page, live_server, "berlin-boss")
    page.wait_for_url(re.compile(r"/offices/berlin/$"))
    shoot(page, f"office-admin-office-{width}")
    money_cells_on_screen(page, width)
    for path, name in (
        ("/balance/", "balance"),
        ("/balance/activity/", "activity"),
        ("/usage/", "usage"),
        ("/usage/?q=%2B493055550171", "usage-phone-search"),
        ("/credits/add/", "add-credits"),
    ):
        page.goto(f"{live_server.url}{path}")
        shoot(page, f"office-admin-{name}-{width}")
        money_cells_on_screen(page, width)
    assert "Bea Berg" in page.goto(f"{live_server.url}/usage/?q=%2B493055550171").text()
    page.goto(f"{live_server.url}/offices/austin/")
    shoot(page, f"office-admin-404-{width}")
    context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_customer_care_in_the_admin(live_server, browser, switched, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15000)
    login(page, live_server, "care")
    # staff signing in to the portal are sent to the admin
    page.wait_for_url(re.compile(r"/admin/$"))
    shoot(page, f"care-admin-index-{width}")
    page.goto(f"{live_server.url}/balance/")
    shoot(page, f"care-portal-403-{width}")
    for path, name in (
        (f"/admin/offices/company/{switched.pk}/change/", "company"),
        ("/admin/credits/ledgerentry/", "ledger"),
        ("/admin/credits/account/", "accounts"),
        ("/admin/credits/allowance/", "allowances"),
        ("/admin/usage/usagerecord/", "usage-records"),
        ("/admin/usage/apikey/", "api-keys"),
        ("/admin/credits/poolingchange/", "pooling-changes"),
    ):
        page.goto(f"{live_server.url}{path}")
        shoot(page, f"care-{name}-{width}")
    context.close()
