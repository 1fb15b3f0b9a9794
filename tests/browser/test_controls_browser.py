"""Money controls in a real browser (SPEC §8): a company admin sets a recharge rule and
a pool cap on a phone-width screen, sees the low-balance banner, and removes the cap
after confirming. Screenshots go to test-output/."""

import pytest

from credits.controls import alert_threshold_set
from credits.models import PoolCap, RechargeRule
from credits.services import pooling_set
from tests.browser.conftest import login
from tests.factories import company_admin, company_factory

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_company_admin_sets_controls_on_a_phone(page, live_server, screenshot, services, care):
    # given: Acme pooled, an empty pool below a warning threshold of 50
    company = company_factory(slug="acme", offices=("austin",))
    pooling_set(company=company, enabled=True, actor=care, reason="pool")
    alert_threshold_set(company=company, value="50", actor=care)
    company_admin(company, username="boss")
    page.set_viewport_size({"width": 390, "height": 844})
    login(page, live_server, "boss")
    # then: the banner shows on the balance page
    page.goto(f"{live_server.url}/balance/")
    assert "Company pool is below 50.00" in page.locator(".alert-banner").inner_text()
    # when: a rule on the pool and a cap on austin
    page.goto(f"{live_server.url}/balance/controls/")
    pool_row = page.locator("#controls-balances tr", has_text="Company pool")
    pool_row.get_by_label("Below").fill("20")
    pool_row.get_by_label("add").fill("100")
    pool_row.get_by_role("button", name="Save rule").click()
    assert "auto-recharge rule was saved" in page.content()
    austin = page.locator('#controls-caps tr[data-office="austin"]')
    austin.locator("input[name=cap]").fill("30")
    austin.get_by_role("button", name="Set cap").click()
    screenshot("controls-390")
    # the page fits a phone: nothing wider than the screen outside the scrolling tables
    widths = page.evaluate(
        "[...document.querySelectorAll('main *')].filter(e => !e.closest('.table-scroll'))"
        ".map(e => [e.tagName + '.' + e.className, Math.round(e.getBoundingClientRect().right)])"
        ".filter(([, right]) => right > 390)"
    )
    assert widths == []
    rule = RechargeRule.objects.get()
    assert (rule.threshold, rule.amount) == (20, 100)
    assert PoolCap.objects.get().cap == 30
    # and removing the cap asks first
    page.locator('#controls-caps tr[data-office="austin"]').get_by_role(
        "button", name="Remove cap"
    ).click()
    assert "Remove this office's pool cap?" in page.content()
    page.get_by_role("button", name="Yes, remove").click()
    assert not PoolCap.objects.exists()
    page.goto(f"{live_server.url}/balance/")
    screenshot("balance-390")
