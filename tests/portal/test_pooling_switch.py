"""The office and balance pages across a mid-period pooling switch, in both directions:
every figure is the sum of the records' own parts (what actually paid), never relabelled
by today's pooling state (issue 12, points 1 and 2)."""

import re
from decimal import Decimal

import pytest
from django.db.models import Sum

from credits.models import Allowance
from credits.services import credits_purchase, pooling_set
from offices.models import CreditKind
from offices.templatetags.portal_format import credits
from tests.factories import event
from tests.portal.conftest import by_id, cell, login, recent
from usage.models import UsageDay, UsageRecord
from usage.selectors import PARTS
from usage.services import usage_ingest

LABELS = {
    "allowance_part": "Allowance",
    "pool_part": "Shared pool",
    "wallet_part": "Office wallet",
    "ai_part": "AI agent credits",
    "uncovered": "Uncovered overage",
}


def sms(acme, external_id: str, quantity: str, minutes: int, office: str = "berlin"):
    usage_ingest(
        company=acme,
        events=[event(external_id, office=office, quantity=quantity, occurred_at=recent(minutes))],
    )


def on_then_off(acme, care, offices):
    """Pooling on: berlin draws 50 from the pool. Care turns it off; berlin's wallet gets
    100 and pays 100, then 30 go uncovered."""
    pooling_set(company=acme, enabled=True, actor=care, reason="one pool")
    credits_purchase(company=acme, amount="500", actor=care)
    sms(acme, "b1", "150", 50)  # 100 allowance + 50 pool
    sms(acme, "a1", "20", 49, office="austin")
    pooling_set(company=acme, enabled=False, actor=care, reason="back to wallets")
    credits_purchase(company=acme, amount="100", office=offices["berlin"], actor=care)
    sms(acme, "b2", "30", 40)  # wallet
    sms(acme, "b3", "100", 30)  # 70 wallet + 30 uncovered
    return {"allowance_part": 100, "pool_part": 50, "wallet_part": 100, "uncovered": 30}


def off_then_on(acme, care, offices):
    """Pooling off: berlin's wallet pays 50. Care turns pooling on; the pool pays 30,
    then 20 go uncovered."""
    credits_purchase(company=acme, amount="60", office=offices["berlin"], actor=care)
    sms(acme, "b1", "150", 50)  # 100 allowance + 50 wallet
    pooling_set(company=acme, enabled=True, actor=care, reason="one pool")  # 10 → pool
    credits_purchase(company=acme, amount="20", actor=care)
    sms(acme, "b2", "50", 40)  # 30 pool + 20 uncovered
    return {"allowance_part": 100, "pool_part": 30, "wallet_part": 50, "uncovered": 20}


SCENARIOS = {"on-then-off": on_then_off, "off-then-on": off_then_on}


def record_parts(office) -> dict[str, Decimal]:
    sums = UsageRecord.objects.filter(office=office).aggregate(**{p: Sum(p) for p in PARTS})
    return {p: v or Decimal(0) for p, v in sums.items()}


def bar_sums(html: str) -> dict[str, Decimal]:
    """The chart's per-bar <title> figures, summed by funding source."""
    svg = html[html.index("<svg") : html.index("</svg>")]
    totals = dict.fromkeys(LABELS.values(), Decimal(0))
    for title in re.findall(r'<g class="bar">\s*<title>([^<]*)</title>', svg):
        for label in LABELS.values():
            match = re.search(rf"{label} ([\d,.]+)", title)
            if match:
                totals[label] += Decimal(match.group(1).replace(",", ""))
    return totals


def service_cells(html: str, service: str) -> dict[str, str]:
    table = html[html.index('id="by-service"') :]
    row = table[table.index(f">{service}</th>") : table.index("</tr>", table.index(f">{service}<"))]
    return dict(re.findall(r'class="num money part-(\w+)[^"]*"[^>]*>([^<]*)<', row))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_office_page_names_what_paid_across_the_switch(
    client, acme, care, offices, acme_admin, scenario
):
    # given: a mid-period switch, in either direction
    expected = SCENARIOS[scenario](acme, care, offices)
    parts = record_parts(offices["berlin"])
    assert {k: int(v) for k, v in parts.items() if v} == expected  # the scenario holds
    login(client, acme_admin)

    # when
    html = client.get("/offices/berlin/").content.decode()

    # then: each source in its own column, equal to the sum of the records' parts
    cells = service_cells(html, "SMS")
    for part in ("allowance_part", "pool_part", "wallet_part", "uncovered"):
        assert cells[part] == credits(parts[part]), part
    assert "Wallet / AI credits" not in html and "Pool / AI credits" not in html
    # the funding card names both balances that paid this period
    assert by_id(html, "funding-pool-drawn") == credits(parts["pool_part"])
    assert by_id(html, "funding-wallet-drawn") == credits(parts["wallet_part"])
    # the chart's bars add up to the same parts, each source under its own name
    bars = bar_sums(html)
    for part, label in LABELS.items():
        assert bars[label] == parts[part], label
    # and the day rollups agree with the records
    days = UsageDay.objects.filter(office=offices["berlin"]).aggregate(**{p: Sum(p) for p in PARTS})
    assert {p: v or 0 for p, v in days.items()} == parts


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_balance_page_shows_both_modes_draws_this_period(
    client, acme, care, offices, acme_admin, scenario
):
    # given
    SCENARIOS[scenario](acme, care, offices)
    parts = record_parts(offices["berlin"])
    rollup = Allowance.objects.get(office=offices["berlin"], kind=CreditKind.STANDARD)
    assert (rollup.pool_drawn, rollup.wallet_drawn, rollup.uncovered) == (
        parts["pool_part"],
        parts["wallet_part"],
        parts["uncovered"],
    )
    login(client, acme_admin)

    # when
    html = client.get("/balance/").content.decode()

    # then: the pool and the wallet columns both, from what paid
    row = 'data-office="berlin"'
    assert cell(html, row, "pool-drawn") == credits(parts["pool_part"])
    assert cell(html, row, "wallet-drawn") == credits(parts["wallet_part"])
    assert cell(html, row, "uncovered") == credits(parts["uncovered"])
    austin = record_parts(offices["austin"])
    assert cell(html, 'data-office="austin"', "pool-drawn") == credits(austin["pool_part"])
    assert cell(html, 'data-office="austin"', "wallet-drawn") == credits(austin["wallet_part"])


def test_pooling_off_shows_the_combined_balance(client, acme, care, offices, acme_admin):
    # given: wallets of 100 (berlin) and 40 (austin), 25 AI credits
    credits_purchase(company=acme, amount="100", office=offices["berlin"], actor=care)
    credits_purchase(company=acme, amount="40", office=offices["austin"], actor=care)
    credits_purchase(company=acme, amount="25", office=offices["hq"], actor=care, kind="ai_agent")
    login(client, acme_admin)
    html = client.get("/balance/").content.decode()
    assert by_id(html, "combined-balance").startswith("Combined balance 165.00")
    assert cell(html, 'data-office="berlin"', "wallet") == "100.00"


def test_one_wallet_alone_needs_no_combined_balance(client, acme, offices):
    from tests.factories import office_admin

    login(client, office_admin(offices["berlin"], username="berlin-admin"))
    html = client.get("/balance/").content.decode()
    assert 'id="combined-balance"' not in html
    assert cell(html, 'data-office="berlin"', "wallet") == "0.00"
