"""Issue 23 in a real browser: acme-admin invites a new office admin for Berlin; the
invite mail (test outbox, sent by the task queue's worker) holds the link; the new person
sets a password, is signed in and sees only Berlin; they request 100 credits; acme-admin
approves; Berlin's wallet shows the purchase once. And password reset end to end. The
team and request pages fit a 390 px phone."""

import re

import pytest
from django.core import mail

from credits.models import Account, AccountKind, EntryType, LedgerEntry
from tests.browser.conftest import login
from tests.factories import company_admin, company_factory
from tests.offices.team_helpers import LINK, run_worker

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Copper-Meadow-8812"


@pytest.fixture
def acme(services):
    company = company_factory(slug="acme", name="Acme Corp", offices=("austin", "berlin"))
    company_admin(company, username="acme-admin")
    return company


def link_in_mail_to(address: str, live_server) -> str:
    (message,) = [m for m in mail.outbox if address in m.to]
    url = LINK.findall(message.body)[0]
    assert url.startswith(live_server.url), url
    return url


def fits(page, width: int) -> None:
    scroll = page.evaluate("document.documentElement.scrollWidth")
    assert scroll <= width, f"page is {scroll} px wide at {width}"


def logout(page) -> None:
    page.get_by_role("button", name="Log out").click()


def test_invite_set_password_request_and_approve(live_server, page, screenshot, acme):
    # acme-admin invites a new office admin for Berlin
    login(page, live_server, "acme-admin")
    page.get_by_role("link", name="Team").click()
    page.get_by_role("link", name="Invite someone").click()
    page.get_by_label("E-mail address").fill("bernd@example.com")
    page.get_by_label("Office admin").check()
    page.get_by_label("Berlin").check()
    screenshot("invite-form")
    page.get_by_role("button", name="Send invite").click()
    assert "An invite was e-mailed to bernd@example.com" in page.content()
    assert page.locator("#invite-table").get_by_text("bernd@example.com").count() == 1
    logout(page)

    # the worker sends the mail; it holds the link
    assert mail.outbox == []
    run_worker()
    link = link_in_mail_to("bernd@example.com", live_server)

    # the new person sets a password and is signed in, seeing only Berlin
    page.goto(link)
    page.get_by_label("Username").fill("bernd")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    screenshot("accept")
    page.get_by_role("button", name="Set password and sign in").click()
    page.wait_for_url(re.compile(r"/offices/berlin/$"))
    nav = page.locator("nav.mainnav").inner_text()
    assert "Berlin" in nav and "Austin" not in nav and "Team" not in nav
    assert page.goto(f"{live_server.url}/offices/austin/").status == 404
    # and later signs in again with that password
    page.goto(f"{live_server.url}/")
    logout(page)
    login(page, live_server, "bernd", PASSWORD)
    page.wait_for_url(re.compile(r"/offices/berlin/$"))

    # they request 100 credits
    page.get_by_role("link", name="Credit requests").click()
    page.get_by_role("link", name="Request credits").click()
    page.get_by_label("Credits").fill("100")
    page.get_by_label("Note (optional)").fill("Launch week")
    page.get_by_role("button", name="Send request").click()
    assert "pending" in page.locator("#request-status").inner_text().lower()
    logout(page)

    # acme-admin sees it on the balance page and approves
    login(page, live_server, "acme-admin")
    page.goto(f"{live_server.url}/balance/")
    pending = page.locator("#pending-requests")
    assert "Berlin: 100.00 credits" in pending.inner_text()
    screenshot("balance-pending")
    pending.get_by_role("link", name=re.compile("Berlin")).click()
    page.get_by_role("button", name=re.compile("Approve")).click()
    assert "approved" in page.locator("#request-status").inner_text().lower()
    # a second click of an old page (double submit) changes nothing
    page.go_back()
    page.reload()
    assert page.locator("#approve").count() == 0

    # Berlin's wallet shows the purchase once
    wallet = Account.objects.get(company=acme, kind=AccountKind.WALLET, office__slug="berlin")
    assert wallet.balance == 100
    entries = LedgerEntry.objects.filter(account=wallet, entry_type=EntryType.PURCHASE)
    assert entries.count() == 1
    page.goto(f"{live_server.url}/balance/")
    row = page.locator('#offices-table tr[data-office="berlin"]')
    assert row.locator("td.wallet").inner_text().strip() == "100.00"
    assert page.locator("#pending-requests").count() == 0
    page.goto(f"{live_server.url}/balance/activity/")
    purchases = page.locator("#activity-table tbody tr").filter(has_text="Berlin wallet")
    assert purchases.count() == 1 and "+100.00" in purchases.inner_text()


def test_password_reset_end_to_end(live_server, page, screenshot, acme):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill("acme-admin@example.com")
    page.get_by_role("button", name="Send reset link").click()
    assert page.locator("#reset-sent").count() == 1
    run_worker()
    link = link_in_mail_to("acme-admin@example.com", live_server)
    page.goto(link)
    page.get_by_label("New password", exact=True).fill(PASSWORD)
    page.get_by_label("New password confirmation").fill(PASSWORD)
    screenshot("reset-confirm")
    page.get_by_role("button", name="Set new password").click()
    assert "Password changed" in page.content()
    login(page, live_server, "acme-admin", PASSWORD)
    page.wait_for_url(re.compile(r"/balance/$"))
    # the link was for one use
    page.goto(link)
    assert "cannot be used" in page.content()


@pytest.mark.parametrize("width", (390,))
def test_team_and_request_pages_fit_a_phone(live_server, browser, acme, width):
    from credits.requests.services import credit_request_create
    from offices.team.services import invite_create
    from tests.factories import office_admin

    berlin = acme.offices.get(slug="berlin")
    bea = office_admin(berlin, username="berlin-admin-with-a-long-name")
    boss = acme.memberships.get(role="company_admin").user
    invite_create(
        company=acme,
        email="someone.with.a.rather.long.address@example-company.com",
        role="office_admin",
        offices=[berlin],
        actor=boss,
        link_base=live_server.url,
    )
    request = credit_request_create(
        company=acme, office=berlin, amount="1234.5", note="For the launch", actor=bea
    )
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        login(page, live_server, "acme-admin")
        for path in (
            "/team/",
            "/team/invite/",
            f"/team/people/{bea.pk}/",
            "/credits/requests/",
            f"/credits/requests/{request.pk}/",
            "/balance/",
        ):
            page.goto(f"{live_server.url}{path}")
            fits(page, width)
        page.goto(f"{live_server.url}/credits/requests/")
        amount = page.locator("#credit-requests td.money").first
        box = amount.bounding_box()
        assert box and box["x"] + box["width"] <= width
    finally:
        context.close()
