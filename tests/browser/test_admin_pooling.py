"""Customer care turns pooling on in the Django admin, in a real browser."""

import re
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from credits.models import Account, AccountKind, PoolingChange
from credits.services import credits_purchase
from tests.browser.conftest import login
from tests.factories import company_admin, company_factory, customer_care_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
]


PASSWORD = "pw-Secret-123"  # the factories' default


def admin_login(page, live_server, username: str, password: str = PASSWORD) -> None:
    page.goto(f"{live_server.url}/admin/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(
        page.get_by_role("link", name="Log out").or_(page.get_by_text("Log out"))
    ).to_be_visible()


def test_customer_care_turns_pooling_on_through_the_admin(page, live_server, screenshot, services):
    # given: Acme with pooling off; Austin holds 30 credits, Berlin 20
    care = customer_care_user()
    company = company_factory(slug="acme", name="Acme", offices=("austin", "berlin"))
    for slug, amount in (("austin", "30"), ("berlin", "20")):
        credits_purchase(
            company=company, amount=amount, office=company.offices.get(slug=slug), actor=care
        )

    # when: customer care logs in and opens the company
    admin_login(page, live_server, "care")
    page.get_by_role("link", name="Companies").first.click()
    page.get_by_role("link", name="Acme", exact=True).click()
    expect(page.get_by_text("Off — each office pays its overage")).to_be_visible()
    screenshot("company-before")

    # and asks to change pooling, giving a reason
    page.get_by_role("link", name="Change pooling").click()
    expect(page).to_have_url(re.compile(rf"/admin/offices/company/{company.pk}/pooling/$"))
    page.get_by_label("Reason").fill("Customer asked to share credits (ticket 42)")
    page.get_by_role("button", name="Continue").click()

    # then: the confirmation says exactly what moves
    moves = page.locator("#pooling-moves")
    expect(
        moves.get_by_role("row", name=re.compile(r"Austin wallet.*Company pool.*30\.0000"))
    ).to_be_visible()
    expect(
        moves.get_by_role("row", name=re.compile(r"Berlin wallet.*Company pool.*20\.0000"))
    ).to_be_visible()
    expect(moves).to_contain_text("50.0000")
    screenshot("confirmation")
    assert not type(company).objects.get(pk=company.pk).pooling_enabled

    # when: confirmed
    page.get_by_role("button", name="Confirm").click()

    # then: back on the company page with the success message, and the pool holds it all
    expect(page.get_by_text("Pooling turned on for Acme.")).to_be_visible()
    expect(
        page.get_by_text("On — overage of every office is drawn from the company pool")
    ).to_be_visible()
    screenshot("company-after")
    company.refresh_from_db()
    assert company.pooling_enabled
    pool = Account.objects.get(company=company, kind=AccountKind.POOL)
    assert pool.balance == Decimal("50")
    assert not Account.objects.filter(company=company, kind=AccountKind.WALLET, balance__gt=0)
    change = PoolingChange.objects.get(company=company)
    assert (change.reason, change.changed_by) == (
        "Customer asked to share credits (ticket 42)",
        care,
    )

    # when: the company admin opens the balance page in a fresh session
    acme_admin = company_admin(company, username="acme-boss")
    page.context.clear_cookies()
    login(page, live_server, acme_admin.username)
    page.goto(f"{live_server.url}/balance/")

    # then: it shows the shared pool and its balance
    expect(page.locator("#pooling-status")).to_contain_text("Shared pool on since")
    expect(page.locator("#pool-balance")).to_contain_text("50")
    screenshot("company-admin-balance-after")
