"""The company balance page: balances, allowances, pool draws, activity, warnings."""

import datetime as dt

from credits.periods import billing_period
from credits.services import credits_purchase, pooling_set
from tests.factories import company_factory, event
from tests.portal.conftest import by_id, cell, login, recent, row_text
from usage.services import usage_ingest


def test_company_admin_reads_allowances_and_wallets_with_pooling_off(
    client, acme_usage, acme_admin
):
    # given: austin used its 100 SMS allowance, then 27.5 from its 50-credit wallet
    login(client, acme_admin)
    # when
    html = client.get("/balance/").content.decode()
    # then
    assert "Each office pays its own overage — contact Customer Care to enable pooling" in by_id(
        html, "pooling-status"
    )
    assert cell(html, 'data-office="austin"', "remaining") == "0.00"
    assert cell(html, 'data-office="berlin"', "remaining") == "60.00"
    assert cell(html, 'data-office="hq"', "remaining") == "100.00"
    assert cell(html, 'data-office="austin"', "wallet") == "22.50"
    assert cell(html, 'data-office="austin"', "wallet-drawn") == "27.50"  # drawn from its wallet
    assert 'class="num money pool-drawn"' not in html  # no pool draws this period
    assert 'id="pool-balance"' not in html


def test_pool_balance_and_each_offices_share_of_pool_draws(client, acme, care, acme_admin):
    # given: pooling on with 1,000 credits in the pool; austin overdraws 30, berlin 10
    pooling_set(company=acme, enabled=True, actor=care, reason="customer asked")
    credits_purchase(company=acme, amount="1000", actor=care)
    usage_ingest(
        company=acme,
        events=[
            event("a", office="austin", quantity="130", occurred_at=recent()),
            event("b", office="berlin", quantity="110", occurred_at=recent()),
        ],
    )
    login(client, acme_admin)
    # when
    html = client.get("/balance/").content.decode()
    # then: 1,000 − 40 drawn; austin drew 75 % of all pool draws
    assert by_id(html, "pool-balance").startswith("Shared pool balance 960.00")
    assert "Shared pool on since" in html
    assert cell(html, 'data-office="austin"', "pool-drawn") == "30.00"
    assert cell(html, 'data-office="berlin"', "pool-drawn") == "10.00"
    assert "75.0 %" in row_text(html, 'data-office="austin"')
    assert "25.0 %" in row_text(html, 'data-office="berlin"')


def test_office_admin_sees_the_pool_and_only_their_office(client, acme, care, austin_admin):
    pooling_set(company=acme, enabled=True, actor=care, reason="customer asked")
    credits_purchase(company=acme, amount="500", actor=care)
    usage_ingest(
        company=acme,
        events=[
            event("a", office="austin", quantity="130", occurred_at=recent()),
            event("b", office="berlin", quantity="110", occurred_at=recent()),
        ],
    )
    login(client, austin_admin)
    html = client.get("/balance/").content.decode()
    assert by_id(html, "pool-balance").startswith("Shared pool balance 460.00")
    assert 'data-office="austin"' in html
    assert 'data-office="berlin"' not in html and 'data-office="hq"' not in html
    # its share is of all the company's pool draws (30 of 40)
    assert "75.0 %" in row_text(html, 'data-office="austin"')
    # AI agent credits are held by hq, which this admin does not administer
    assert 'id="ai-balance"' not in html


def test_ai_agent_credits_shown_apart_and_not_shared(client, acme, care, acme_admin):
    credits_purchase(company=acme, amount="42", kind="ai_agent", actor=care)
    login(client, acme_admin)
    text = by_id(client.get("/balance/").content.decode(), "ai-balance")
    assert "42.00" in text and "not shared" in text and "HQ" in text


def test_offices_without_usage_show_plan_and_addon_credits(client, acme, acme_admin):
    from offices.services import office_addon_set
    from tests.factories import AddOnFactory

    berlin = acme.offices.get(slug="berlin")
    office_addon_set(office=berlin, addon=AddOnFactory(code="extra"), quantity=2)
    login(client, acme_admin)
    html = client.get("/balance/").content.decode()
    assert cell(html, 'data-office="berlin"', "remaining") == "200.00"  # 100 + 2 × 50


def test_balance_activity_lists_purchases_newest_first(client, acme, care, acme_admin):
    austin = acme.offices.get(slug="austin")
    credits_purchase(company=acme, amount="1234.5", office=austin, actor=care, reference="PO-1")
    credits_purchase(company=acme, amount="7", office=austin, actor=care, reference="PO-2")
    login(client, acme_admin)
    text = by_id(client.get("/balance/").content.decode(), "activity-table")
    assert "+1,234.50" in text and "PO-1" in text
    assert text.index("PO-2") < text.index("PO-1")


def test_run_out_warning_at_the_trailing_burn_rate(client, acme, care, acme_admin):
    # given: pooling on, the pool drew 70 in the last week and holds 5 → empty today
    pooling_set(company=acme, enabled=True, actor=care, reason="pool")
    credits_purchase(company=acme, amount="75", actor=care)
    usage_ingest(company=acme, events=[event("x", office="austin", quantity="170")])
    login(client, acme_admin)
    html = client.get("/balance/").content.decode()
    assert "Company pool will run out around" in html
    assert "10.00 credits a day" in html


def test_no_run_out_warning_when_the_pool_lasts(client, acme, care, acme_admin):
    pooling_set(company=acme, enabled=True, actor=care, reason="pool")
    credits_purchase(company=acme, amount="100000", actor=care)
    usage_ingest(company=acme, events=[event("x", office="austin", quantity="170")])
    login(client, acme_admin)
    assert "will run out" not in client.get("/balance/").content.decode()


def test_wallet_run_out_warning_with_pooling_off(client, acme_usage, acme_admin):
    # austin's wallet drew 27.5 this week and holds 22.5: it lasts about 5 days
    login(client, acme_admin)
    html = client.get("/balance/").content.decode()
    period = billing_period(acme_usage)
    runs_out = period.today + dt.timedelta(days=5)
    if runs_out <= period.end:
        assert f"Austin wallet will run out around {runs_out:%-d %b %Y}" in html
    else:
        assert "Austin wallet will run out" not in html


def test_billing_period_uses_the_company_time_zone(db, services):
    company = company_factory(slug="ny", billing_timezone="America/New_York")
    now = dt.datetime(2026, 12, 1, 3, 0, tzinfo=dt.UTC)  # still 30 Nov in New York
    period = billing_period(company, now)
    assert (period.start, period.end, period.days_left) == (
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 30),
        1,
    )


def test_period_and_days_left_are_shown(client, acme, acme_admin):
    login(client, acme_admin)
    period = billing_period(acme)
    text = by_id(client.get("/balance/").content.decode(), "period")
    assert f"{period.days_left} day" in text
    assert period.start.strftime("%B %Y") in text
