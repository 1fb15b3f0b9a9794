"""SPEC §3 through usage_ingest: which balance pays for each usage event."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from core.errors import ValidationFailed
from credits.allocation import allocate, cap_room, recharge_due
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry
from credits.services import credits_purchase, pooling_set
from offices.models import CreditKind
from offices.services import office_addon_set
from tests.credits.checks import assert_invariants, balances
from tests.factories import AddOnFactory, ServiceFactory, company_factory, event
from usage.models import Service, UsageRecord
from usage.services import usage_ingest

D = Decimal


def fund(company, care, *, wallets=None, pool=None, ai=None, pooling=False):
    """Wallet purchases (pooling off), then pooling on if asked, then pool and AI credits."""
    for slug, amount in (wallets or {}).items():
        office = company.offices.get(slug=slug)
        credits_purchase(company=company, amount=amount, office=office, actor=care)
    if pooling:
        pooling_set(company=company, enabled=True, actor=care, reason="test setup")
    if pool:
        credits_purchase(company=company, amount=pool, actor=care)
    if ai:
        credits_purchase(company=company, amount=ai, kind=CreditKind.AI_AGENT, actor=care)
    company.refresh_from_db()


def nonzero_balances(company) -> dict:
    """Balances by short name ('pool', 'ai' or the office slug), zeros left out."""
    out = {}
    for name, amount in balances(company).items():
        if amount:
            out[name if isinstance(name, str) else name[1]] = amount
    return out


def parts(record) -> tuple:
    return (
        record.allowance_part,
        record.pool_part,
        record.wallet_part,
        record.ai_part,
        record.uncovered,
    )


def month_start(moment: dt.datetime) -> dt.datetime:
    return moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


# id, pooling on?, funding, event (office, service, quantity),
# expected parts (allowance, pool, wallet, ai, uncovered), expected non-zero balances after.
SPLIT_CASES = [
    pytest.param(
        False, {"wallets": {"austin": "30"}}, ("austin", "sms", "40"),
        ("40", "0", "0", "0", "0"), {"austin": "30"},
        id="allowance-covers-all",
    ),
    pytest.param(
        False, {"wallets": {"austin": "30"}}, ("austin", "sms", "120"),
        ("100", "0", "20", "0", "0"), {"austin": "10"},
        id="allowance-part-then-own-wallet",
    ),
    pytest.param(
        False, {"wallets": {"austin": "30", "berlin": "30"}}, ("austin", "sms", "150"),
        ("100", "0", "30", "0", "20"), {"berlin": "30"},
        id="wallet-runs-dry-uncovered-other-wallet-untouched",
    ),
    pytest.param(
        False, {"wallets": {"hq": "50"}}, ("austin", "sms", "130"),
        ("100", "0", "0", "0", "30"), {"hq": "50"},
        id="pooling-off-primary-wallet-does-not-help",
    ),
    pytest.param(
        True, {"pool": "50"}, ("austin", "sms", "120"),
        ("100", "20", "0", "0", "0"), {"pool": "30"},
        id="pool-covers",
    ),
    pytest.param(
        True, {"pool": "50"}, ("berlin", "sms", "180"),
        ("100", "50", "0", "0", "30"), {},
        id="pool-runs-dry-uncovered",
    ),
    pytest.param(
        True, {"wallets": {"austin": "40"}}, ("hq", "sms", "130"),
        ("100", "30", "0", "0", "0"), {"pool": "10"},
        id="pooled-wallet-credit-serves-another-office",
    ),
    pytest.param(
        False, {"ai": "20"}, ("austin", "ai_agent", "3"),
        ("6", "0", "0", "0", "0"), {"ai": "20"},
        id="ai-within-ai-allowance",
    ),
    pytest.param(
        False, {"wallets": {"austin": "30"}, "ai": "20"}, ("austin", "ai_agent", "8"),
        ("10", "0", "0", "6", "0"), {"austin": "30", "ai": "14"},
        id="ai-of-non-primary-office-pooling-off",
    ),
    pytest.param(
        True, {"pool": "50", "ai": "20"}, ("berlin", "ai_agent", "20"),
        ("10", "0", "0", "20", "10"), {"pool": "50"},
        id="ai-pooling-on-pool-untouched-ai-runs-dry",
    ),
    pytest.param(
        False, {"ai": "20"}, ("austin", "sms", "130"),
        ("100", "0", "0", "0", "30"), {"ai": "20"},
        id="standard-never-touches-ai-pooling-off",
    ),
    pytest.param(
        True, {"ai": "20"}, ("hq", "sms", "110"),
        ("100", "0", "0", "0", "10"), {"ai": "20"},
        id="standard-never-touches-ai-pooling-on",
    ),
    pytest.param(
        False, {"wallets": {"austin": "1"}}, ("austin", "call_international", "402"),
        ("100", "0", "0.5", "0", "0"), {"austin": "0.5"},
        id="fractional-cost",
    ),
]  # fmt: skip


@pytest.mark.parametrize("pooling, funding, ev, expected_parts, expected_balances", SPLIT_CASES)
def test_one_event_is_split_by_the_rule(
    company, care, pooling, funding, ev, expected_parts, expected_balances
):
    # given
    fund(company, care, pooling=pooling, **funding)
    office_slug, service, quantity = ev
    # when
    (result,) = usage_ingest(
        company=company,
        events=[event("e1", office=office_slug, service=service, quantity=quantity)],
    )
    # then
    record = UsageRecord.objects.get(pk=result.record.pk)
    assert result.duplicate is False
    assert parts(record) == tuple(D(p) for p in expected_parts)
    assert record.office.slug == office_slug, "the record names the office that used it"
    assert record.pooling_on is pooling
    assert nonzero_balances(company) == {k: D(v) for k, v in expected_balances.items()}
    kind = Service.objects.get(code=service).credit_kind
    if kind == CreditKind.AI_AGENT:
        assert record.funding_account.kind == AccountKind.AI_AGENT
        assert record.funding_account.company == company
    elif pooling:
        assert record.funding_account.kind == AccountKind.POOL
    else:
        assert record.funding_account.kind == AccountKind.WALLET
        assert record.funding_account.office.slug == office_slug
    assert_invariants(company)


def test_pool_and_wallets_stay_as_they_are_for_ai_usage(company, care):
    # given: money everywhere
    fund(company, care, wallets={"hq": "5", "austin": "7", "berlin": "9"}, ai="3")
    before = balances(company)
    # when: berlin's AI usage far beyond its AI allowance and the AI balance
    usage_ingest(
        company=company, events=[event("ai1", office="berlin", service="ai_agent", quantity="50")]
    )
    # then: only the AI account moved
    after = balances(company)
    assert after.pop("ai") == 0
    before.pop("ai")
    assert after == before
    entries = LedgerEntry.objects.filter(company=company, entry_type=EntryType.USAGE)
    assert [(e.account.kind, e.amount) for e in entries] == [(AccountKind.AI_AGENT, D("-3"))]


def test_late_event_is_charged_against_the_allowance_of_its_own_period(company, care):
    # given: this month's allowance of austin is fully used, 20 credits in its wallet
    fund(company, care, wallets={"austin": "20"})
    this_month = month_start(dt.datetime.now(dt.UTC))
    last_month = month_start(this_month - dt.timedelta(days=1))
    usage_ingest(
        company=company,
        events=[event("now", office="austin", quantity="100", occurred_at=this_month)],
    )
    # when: an event of last month arrives late, then another of this month
    (late,) = usage_ingest(
        company=company,
        events=[
            event(
                "late",
                office="austin",
                quantity="30",
                occurred_at=last_month + dt.timedelta(days=3),
            )
        ],
    )
    (current,) = usage_ingest(
        company=company,
        events=[event("cur", office="austin", quantity="5", occurred_at=this_month)],
    )
    # then: the late one used last month's untouched allowance, the current one the wallet
    assert late.record.period == last_month.date()
    assert parts(late.record) == (D("30"), 0, 0, 0, 0)
    assert current.record.period == this_month.date()
    assert parts(current.record) == (0, 0, D("5"), 0, 0)
    austin = company.offices.get(slug="austin")
    used = {
        a.period: a.used for a in Allowance.objects.filter(office=austin, kind=CreditKind.STANDARD)
    }
    assert used == {this_month.date(): D("100"), last_month.date(): D("30")}
    assert nonzero_balances(company) == {"austin": D("15")}
    assert_invariants(company)


@pytest.mark.parametrize(
    "tz, occurred_at, period",
    [
        # New York is UTC-4 (EDT) until 2025-11-02 and UTC-5 after it.
        ("America/New_York", "2025-12-01T03:00:00+00:00", "2025-11-01"),
        ("America/New_York", "2025-12-01T05:00:00+00:00", "2025-12-01"),
        ("America/New_York", "2025-11-01T03:59:59+00:00", "2025-10-01"),
        ("America/New_York", "2025-11-01T04:00:00+00:00", "2025-11-01"),
        ("Asia/Tokyo", "2025-10-31T15:00:00+00:00", "2025-11-01"),
        ("Asia/Tokyo", "2025-10-31T14:59:59+00:00", "2025-10-01"),
        ("UTC", "2025-11-30T23:59:59+00:00", "2025-11-01"),
        # the same instant given with another offset lands in the same period
        ("America/New_York", "2025-11-30T22:00:00-05:00", "2025-11-01"),
    ],
)
def test_period_is_the_month_in_the_billing_timezone(db, services, tz, occurred_at, period):
    # given
    company = company_factory(slug="tzco", billing_timezone=tz)
    moment = dt.datetime.fromisoformat(occurred_at)
    # when
    (result,) = usage_ingest(company=company, events=[event("e", occurred_at=moment)])
    # then
    assert result.record.period == dt.date.fromisoformat(period)
    allowance = Allowance.objects.get(company=company)
    assert allowance.period == dt.date.fromisoformat(period)
    assert allowance.used == D("1")


def test_late_events_near_a_timezone_boundary_use_separate_allowances(db, services):
    # given: New York company, plan includes 100 standard credits
    company = company_factory(slug="nyco", billing_timezone="America/New_York")
    november_night = dt.datetime(2025, 12, 1, 3, 0, tzinfo=dt.UTC)  # 22:00 on 30 Nov in NY
    december_morning = dt.datetime(2025, 12, 1, 6, 0, tzinfo=dt.UTC)  # 01:00 on 1 Dec in NY
    # when: 80 in each, then 30 more at the November night
    usage_ingest(
        company=company,
        events=[
            event("a", quantity="80", occurred_at=november_night),
            event("b", quantity="80", occurred_at=december_morning),
            event("c", quantity="30", occurred_at=november_night),
        ],
    )
    # then
    records = {r.external_id: r for r in UsageRecord.objects.filter(company=company)}
    assert parts(records["c"]) == (D("20"), 0, 0, 0, D("10"))
    assert records["b"].allowance_part == D("80")
    assert_invariants(company)


@pytest.mark.parametrize(
    "rate, quantity, cost",
    [
        ("0.2500", "0.0002", "0.0001"),  # 0.00005 rounds half-up (half-even would give 0)
        ("0.2500", "0.0010", "0.0003"),  # 0.00025 → 0.0003 (half-even would give 0.0002)
        ("0.2500", "0.0006", "0.0002"),  # 0.00015 → 0.0002
        ("0.2500", "0.0001", "0.0000"),  # 0.000025 rounds down
        ("1.3333", "7.5", "9.9998"),  # 9.99975
        ("0.0001", "0.0001", "0.0000"),
        ("2.5000", "1000000", "2500000.0000"),
        ("0.0700", "3.1415", "0.2199"),  # 0.219905
    ],
)
def test_cost_is_quantity_times_rate_rounded_half_up_to_4_places(
    db, services, rate, quantity, cost
):
    # given
    ServiceFactory(code="fax", rate=D(rate))
    company = company_factory(slug="roundco")
    # when
    (result,) = usage_ingest(company=company, events=[event("e", service="fax", quantity=quantity)])
    # then
    record = UsageRecord.objects.get(pk=result.record.pk)
    assert record.cost == D(cost)
    assert record.rate == D(rate)
    assert sum(parts(record)) == record.cost
    assert_invariants(company)


def test_cost_is_rounded_per_event_not_per_batch(db, services):
    # given: 0.0002 × 0.25 = 0.00005 per event
    ServiceFactory(code="fax", rate=D("0.25"))
    company = company_factory(slug="roundco")
    # when
    usage_ingest(
        company=company,
        events=[event(f"e{i}", service="fax", quantity="0.0002") for i in range(3)],
    )
    # then: 3 × 0.0001, not round(0.00015)
    allowance = Allowance.objects.get(company=company)
    assert allowance.cost_total == D("0.0003")
    assert allowance.used == D("0.0003")


def test_record_keeps_its_rate_after_the_service_rate_changes(company, care):
    # given: an SMS charged at 1 credit
    (first,) = usage_ingest(company=company, events=[event("before", quantity="10")])
    # when: the rate is raised, then another SMS arrives
    sms = Service.objects.get(code="sms")
    sms.rate = D("1.5")
    sms.save()
    (second,) = usage_ingest(company=company, events=[event("after", quantity="10")])
    # then
    old = UsageRecord.objects.get(pk=first.record.pk)
    assert (old.rate, old.cost) == (D("1"), D("10"))
    assert (second.record.rate, second.record.cost) == (D("1.5"), D("15"))
    assert Allowance.objects.get(office__slug="hq", company=company).cost_total == D("25")


@pytest.mark.parametrize(
    "addon_quantity, used_quantity, expected_allowance, expected_uncovered",
    [
        (1, "160", "150", "10"),
        (2, "160", "160", "0"),
        (3, "300", "250", "50"),
    ],
)
def test_addons_times_quantity_raise_the_included_allowance(
    company, addon_quantity, used_quantity, expected_allowance, expected_uncovered
):
    # given: plan 100 + add-on of 50 standard, 5 AI credits × quantity
    austin = company.offices.get(slug="austin")
    addon = AddOnFactory(code="boost", included_standard=D("50"), included_ai_agent=D("5"))
    office_addon_set(office=austin, addon=addon, quantity=addon_quantity)
    # when
    usage_ingest(
        company=company,
        events=[
            event("s", office="austin", quantity=used_quantity),
            event("a", office="austin", service="ai_agent", quantity="100"),
        ],
    )
    # then
    standard = Allowance.objects.get(office=austin, kind=CreditKind.STANDARD)
    ai = Allowance.objects.get(office=austin, kind=CreditKind.AI_AGENT)
    assert standard.included == D(100 + 50 * addon_quantity)
    assert ai.included == D(10 + 5 * addon_quantity)
    assert (standard.used, standard.uncovered) == (D(expected_allowance), D(expected_uncovered))
    assert ai.used == ai.included
    # other offices keep the plan's allowance
    usage_ingest(company=company, events=[event("b", office="berlin", quantity="160")])
    assert Allowance.objects.get(office__slug="berlin", company=company).used == D("100")


@pytest.mark.parametrize(
    "order, expected",
    [
        # allowance 100, wallet 30: each event takes what is left when its turn comes
        (("a", "b", "c"), {"a": (60, 0, 0), "b": (40, 20, 0), "c": (0, 10, 50)}),
        (("c", "b", "a"), {"c": (60, 0, 0), "b": (40, 20, 0), "a": (0, 10, 50)}),
        (("b", "a", "c"), {"b": (60, 0, 0), "a": (40, 20, 0), "c": (0, 10, 50)}),
    ],
)
def test_events_of_one_batch_are_allocated_in_order(company, care, order, expected):
    # given
    fund(company, care, wallets={"austin": "30"})
    # when
    results = usage_ingest(
        company=company, events=[event(x, office="austin", quantity="60") for x in order]
    )
    # then
    assert [r.record.external_id for r in results] == list(order)
    got = {
        r.external_id: (r.allowance_part, r.wallet_part, r.uncovered)
        for r in UsageRecord.objects.filter(company=company)
    }
    assert got == {k: tuple(D(x) for x in v) for k, v in expected.items()}
    balance_after = [r.record.funding_balance_after for r in results]
    assert balance_after == [D("30"), D("10"), D("0")]
    assert_invariants(company)


def test_one_usage_ledger_entry_per_account_per_batch(company, care):
    # given: wallets for austin and berlin, AI credits
    fund(company, care, wallets={"austin": "50", "berlin": "50"}, ai="40")
    # when: one batch of many events across offices and kinds, all beyond allowances
    events = [event(f"s{i}", office="austin", quantity="30") for i in range(4)]
    events += [event(f"b{i}", office="berlin", quantity="60") for i in range(2)]
    events += [event(f"a{i}", office=o, service="ai_agent", quantity="5") for i, o in
               enumerate(["hq", "austin", "berlin", "hq"])]  # fmt: skip
    events.append(event("h", office="hq", quantity="5"))  # within hq's allowance
    results = usage_ingest(company=company, events=events)
    batch = results[0].record.batch
    assert {r.record.batch for r in results} == {batch}
    entries = LedgerEntry.objects.filter(usage_batch=batch).select_related("account__office")
    by_account = {
        (e.account.kind, e.account.office.slug if e.account.office else None): e.amount
        for e in entries
    }
    # then: austin and berlin drew 20 each beyond 100 included; AI: each office includes 10,
    # so only hq's second conversation (10) came from the AI account
    assert by_account == {
        (AccountKind.WALLET, "austin"): D("-20"),
        (AccountKind.WALLET, "berlin"): D("-20"),
        (AccountKind.AI_AGENT, None): D("-10"),
    }
    assert all(e.entry_type == EntryType.USAGE for e in entries)
    for e in entries:
        draws = UsageRecord.objects.filter(batch=batch, funding_account=e.account)
        assert -e.amount == sum(r.pool_part + r.wallet_part + r.ai_part for r in draws)
        assert e.balance_after == Account.objects.get(pk=e.account_id).balance
    assert_invariants(company)


def test_batch_drawing_nothing_writes_no_ledger_entry(company):
    # when: usage within the allowance, and usage beyond it with no money anywhere
    usage_ingest(company=company, events=[event("a", quantity="10"), event("b", quantity="200")])
    # then
    assert not LedgerEntry.objects.filter(company=company).exists()
    assert Allowance.objects.get(company=company).uncovered == D("110")


def test_allowance_rollups_match_the_records(company, care):
    # given: a mix over two batches, a pooling toggle in between
    fund(company, care, wallets={"austin": "25"}, ai="7")
    usage_ingest(
        company=company,
        events=[
            event("1", office="austin", quantity="90"),
            event("2", office="austin", service="call_international", quantity="100"),
            event("3", office="austin", service="ai_agent", quantity="4"),
        ],
    )
    pooling_set(company=company, enabled=True, actor=care, reason="merge")
    usage_ingest(
        company=company,
        events=[
            event("4", office="austin", quantity="12"),
            event("5", office="austin", service="ai_agent", quantity="4"),
        ],
    )
    # then
    austin = company.offices.get(slug="austin")
    standard = Allowance.objects.get(office=austin, kind=CreditKind.STANDARD)
    ai = Allowance.objects.get(office=austin, kind=CreditKind.AI_AGENT)
    # standard: 90 + 25 = 115 → 100 allowance, 15 wallet; then 12 from the pool (10 left) → 10 + 2
    assert (
        standard.used,
        standard.cost_total,
        standard.wallet_drawn,
        standard.pool_drawn,
        standard.ai_drawn,
        standard.uncovered,
        standard.events,
    ) == (D("100"), D("127"), D("15"), D("10"), 0, D("2"), 3)
    # AI: 8 + 8 → 10 from the allowance, 6 from the AI account (7 held, 1 left)
    assert (ai.used, ai.cost_total, ai.ai_drawn, ai.uncovered, ai.events) == (
        D("10"),
        D("16"),
        D("6"),
        0,
        2,
    )
    assert nonzero_balances(company) == {"ai": D("1")}
    assert_invariants(company)


@pytest.mark.parametrize(
    "changed",
    [
        {"quantity": "121"},
        {"office": "austin"},
        {"service": "call_international"},
        {"occurred_at": dt.datetime.now(dt.UTC) - dt.timedelta(minutes=30)},
    ],
    ids=["quantity", "office", "service", "occurred_at"],
)
def test_a_repeated_id_with_other_content_is_a_conflict_that_refuses_the_batch(
    company, care, changed
):
    # given: "dup" was charged
    fund(company, care, wallets={"hq": "50"})
    usage_ingest(company=company, events=[event("dup", quantity="120")])
    before = db_state(company)
    # when: a batch sends a new event and "dup" again with other content
    with pytest.raises(ValidationFailed) as caught:
        usage_ingest(
            company=company,
            events=[event("new", quantity="1"), event("dup", **{"quantity": "120", **changed})],
        )
    # then: a conflict on that item, and nothing of the batch is charged
    assert caught.value.status_code == 422
    assert [(e["index"], e["field"]) for e in caught.value.errors] == [(1, "id")]
    assert "Conflict" in caught.value.errors[0]["message"]
    assert next(iter(changed)) in caught.value.errors[0]["message"]
    assert db_state(company) == before


def test_a_repeated_id_is_returned_as_duplicate_and_charged_once(company, care):
    # given
    fund(company, care, wallets={"hq": "50"})
    (first,) = usage_ingest(company=company, events=[event("dup", quantity="120")])
    before = (
        balances(company),
        LedgerEntry.objects.count(),
        list(Allowance.objects.values_list("used", "cost_total", "events")),
    )
    # when: a later batch repeats it, next to a new one
    results = usage_ingest(
        company=company, events=[event("new", quantity="1"), event("dup", quantity="120")]
    )
    # then
    assert [(r.record.external_id, r.duplicate) for r in results] == [
        ("new", False),
        ("dup", True),
    ]
    assert results[1].record.pk == first.record.pk
    assert results[1].record.cost == D("120")
    assert UsageRecord.objects.filter(external_id="dup").count() == 1
    # only "new" was charged: 1 credit from the wallet
    assert balances(company)[("wallet", "hq")] == before[0][("wallet", "hq")] - 1
    assert LedgerEntry.objects.count() == before[1] + 1
    assert list(Allowance.objects.values_list("events", flat=True)) == [2]
    # a batch of only duplicates changes nothing at all
    (again,) = usage_ingest(company=company, events=[event("dup", quantity="120")])
    assert again.duplicate is True
    assert LedgerEntry.objects.count() == before[1] + 1
    assert_invariants(company)


def test_the_same_id_in_another_company_is_charged_there(company):
    other = company_factory(slug="globex")
    usage_ingest(company=company, events=[event("shared", quantity="3")])
    (result,) = usage_ingest(company=other, events=[event("shared", quantity="4")])
    assert result.duplicate is False
    assert result.record.company == other
    assert Allowance.objects.get(company=other).used == D("4")


ONE = D("1")


def now_plus(**delta) -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(**delta)


def raw(external_id="x", office="hq", service="sms", quantity=ONE, occurred_at=None, **extra):
    """An event as a plain mapping: usage_ingest validates it (usage.events)."""
    return dict(
        external_id=external_id,
        office=office,
        service=service,
        quantity=quantity,
        occurred_at=occurred_at or now_plus(minutes=-1),
        **extra,
    )


# id, events (built lazily so "now" is fresh), expected set of (index, field)
BAD_BATCHES = [
    pytest.param(lambda: [raw("ok"), raw("x", office="nowhere")], {(1, "office")},
                 id="unknown-office"),
    pytest.param(lambda: [raw(office="paris")], {(0, "office")}, id="other-companys-office"),
    pytest.param(lambda: [raw(service="telegram")], {(0, "service")}, id="unknown-service"),
    pytest.param(lambda: [raw(service="retired")], {(0, "service")}, id="inactive-service"),
    pytest.param(lambda: [raw(quantity=D("0"))], {(0, "quantity")}, id="quantity-zero"),
    pytest.param(lambda: [raw(quantity=D("-1"))], {(0, "quantity")}, id="quantity-negative"),
    pytest.param(lambda: [raw(quantity=D("NaN"))], {(0, "quantity")}, id="quantity-nan"),
    pytest.param(lambda: [raw(quantity=float("nan"))], {(0, "quantity")},
                 id="quantity-float-nan"),
    pytest.param(lambda: [raw(quantity=D("Infinity"))], {(0, "quantity")}, id="quantity-inf"),
    pytest.param(lambda: [raw(quantity=float("-inf"))], {(0, "quantity")},
                 id="quantity-minus-inf"),
    pytest.param(lambda: [raw(quantity=D("1000000.0001"))], {(0, "quantity")},
                 id="quantity-huge"),
    pytest.param(lambda: [raw(quantity=D("1E+30"))], {(0, "quantity")}, id="quantity-1e30"),
    pytest.param(lambda: [raw(quantity=D("1.00001"))], {(0, "quantity")},
                 id="quantity-5-decimals"),
    pytest.param(lambda: [raw(quantity="ten")], {(0, "quantity")}, id="quantity-not-a-number"),
    pytest.param(lambda: [raw(occurred_at=dt.datetime(2025, 11, 1, 12, 0))],
                 {(0, "occurred_at")}, id="naive-datetime"),
    pytest.param(lambda: [raw(occurred_at=now_plus(minutes=6))], {(0, "occurred_at")},
                 id="future-beyond-5-minutes"),
    pytest.param(lambda: [raw(occurred_at="2025-13-01T12:00:00Z")], {(0, "occurred_at")},
                 id="datetime-string-not-a-date"),
    pytest.param(lambda: [raw(occurred_at="1764150000")], {(0, "occurred_at")},
                 id="datetime-as-unix-time"),
    pytest.param(lambda: [raw(external_id="")], {(0, "id")}, id="empty-id"),
    pytest.param(lambda: [raw("a"), raw("b"), raw("a")], {(2, "id")}, id="duplicate-id-in-batch"),
    # PostgreSQL cannot store NUL characters or NaN in jsonb: refused up front, not a 500
    pytest.param(lambda: [raw("a\x00b")], {(0, "id")}, id="nul-in-id"),
    pytest.param(lambda: [raw(office="h\x00q")], {(0, "office")}, id="nul-in-office"),
    pytest.param(lambda: [raw(service="s\x00ms")], {(0, "service")}, id="nul-in-service"),
    pytest.param(lambda: [raw(user_label="ann\x00")], {(0, "user")}, id="nul-in-user"),
    pytest.param(lambda: [raw(phone_number="+1\x00")], {(0, "number")}, id="nul-in-number"),
    pytest.param(lambda: [raw(user_label=42)], {(0, "user")}, id="user-not-text"),
    pytest.param(lambda: [raw(metadata={"k": "v\x00"})], {(0, "metadata")},
                 id="nul-in-metadata-value"),
    pytest.param(lambda: [raw(metadata={"a": [{"k\x00": 1}]})], {(0, "metadata")},
                 id="nul-in-nested-metadata-key"),
    pytest.param(lambda: [raw(metadata={"k": float("nan")})], {(0, "metadata")},
                 id="nan-in-metadata"),
    pytest.param(lambda: [raw(metadata={"k": D("1.5")})], {(0, "metadata")},
                 id="metadata-not-json"),
    pytest.param(lambda: [raw(metadata=["a"])], {(0, "metadata")}, id="metadata-not-object"),
    pytest.param(lambda: [], {(None, "events")}, id="empty-batch"),
    pytest.param(lambda: [raw(f"e{i}") for i in range(5)], {(None, "events")},
                 id="over-batch-max"),
    pytest.param(
        lambda: [raw("a", office="nowhere"), raw("b"), raw("c", quantity=D("0")),
                 raw("d", service="nope", quantity=D("-2"))],
        {(0, "office"), (2, "quantity"), (3, "service"), (3, "quantity")},
        id="several-errors-reported-per-index",
    ),
]  # fmt: skip


def db_state(company) -> tuple:
    return (
        UsageRecord.objects.count(),
        LedgerEntry.objects.count(),
        list(Allowance.objects.order_by("pk").values_list("pk", "used", "cost_total", "events")),
        balances(company),
    )


@pytest.mark.parametrize("make_events, expected_errors", BAD_BATCHES)
def test_bad_batches_are_refused_whole_with_per_index_errors(
    company, care, settings, make_events, expected_errors
):
    # given: some history, another company with office "paris", a retired service
    settings.USAGE_BATCH_MAX = 4
    fund(company, care, wallets={"hq": "10"})
    usage_ingest(company=company, events=[event("earlier", quantity="105")])
    company_factory(slug="globex", offices=("paris",))
    ServiceFactory(code="retired", active=False)
    before = db_state(company)
    # when
    with pytest.raises(ValidationFailed) as caught:
        usage_ingest(company=company, events=make_events())
    # then
    assert caught.value.status_code == 422
    assert {(e["index"], e["field"]) for e in caught.value.errors} == expected_errors
    assert all(e["message"] for e in caught.value.errors)
    assert db_state(company) == before


def test_labels_numbers_and_metadata_are_kept_on_the_record(company):
    (result,) = usage_ingest(
        company=company,
        events=[
            raw(
                "m",
                user_label="Ann Example",
                phone_number="+1 555 0100",
                metadata={"call": {"to": "+44", "legs": [1, 2]}, "ok": True},
            )
        ],
    )
    record = UsageRecord.objects.get(pk=result.record.pk)
    assert (record.user_label, record.phone_number) == ("Ann Example", "+1 555 0100")
    assert record.metadata == {"call": {"to": "+44", "legs": [1, 2]}, "ok": True}


def test_batch_of_exactly_the_maximum_and_slightly_future_events_is_accepted(company, settings):
    settings.USAGE_BATCH_MAX = 3
    results = usage_ingest(
        company=company,
        events=[raw("a"), raw("b", occurred_at=now_plus(minutes=4)), raw("c")],
    )
    assert [r.duplicate for r in results] == [False, False, False]
    assert Allowance.objects.get(company=company).used == D("3")


# The pure rule with the money controls (SPEC §3 step 2, §8.1, §8.3) ------------------

ALLOCATE_WITH_ROOM = [
    # cost, allowance remaining, balance, cap room → (allowance, funded, uncovered)
    ("10", "0", "100", None, ("0", "10", "0")),  # no cap: no limit
    ("10", "0", "100", "4", ("0", "4", "6")),  # the cap stops the draw; rest uncovered
    ("10", "3", "100", "4", ("3", "4", "3")),  # allowance first, then at most the room
    ("10", "0", "2", "4", ("0", "2", "8")),  # the balance is the tighter limit
    ("10", "0", "100", "0", ("0", "0", "10")),  # cap reached: nothing from the pool
    ("10", "20", "0", "0", ("10", "0", "0")),  # the allowance is never capped
]


@pytest.mark.parametrize("cost, remaining, balance, room, expected", ALLOCATE_WITH_ROOM)
def test_allocate_stops_a_pool_draw_at_the_cap_room(cost, remaining, balance, room, expected):
    split = allocate(
        D(cost),
        allowance_remaining=D(remaining),
        balance=D(balance),
        room=None if room is None else D(room),
    )
    assert (split.allowance, split.funded, split.uncovered) == tuple(D(x) for x in expected)


@pytest.mark.parametrize(
    "cap, drawn, room",
    [(None, "50", None), ("100", "30", "70"), ("100", "100", "0"), ("40", "100", "0")],
)
def test_cap_room_is_never_negative(cap, drawn, room):
    got = cap_room(None if cap is None else D(cap), D(drawn))
    assert got == (None if room is None else D(room))


RECHARGE_DUE = [
    # cost, allowance remaining, balance, room, threshold, done, limit → recharge?
    ("10", "0", "100", None, "50", 0, 3, False),  # 90 left: not below 50
    ("10", "0", "55", None, "50", 0, 3, True),  # would leave 45 < 50
    ("10", "0", "60", None, "50", 0, 3, False),  # would leave exactly 50: not below
    ("10", "0", "55", None, "50", 3, 3, False),  # the monthly limit is reached
    ("10", "10", "5", None, "50", 0, 3, False),  # paid by the allowance: no draw
    ("10", "0", "0", None, "50", 0, 3, True),  # empty: the draw would be uncovered
    ("10", "0", "100", "0", "150", 0, 1, True),  # capped draw, balance already below
    ("10", "0", "100", "0", "50", 0, 1, False),  # capped draw leaves 100 ≥ 50
]


@pytest.mark.parametrize(
    "cost, remaining, balance, room, threshold, done, limit, due", RECHARGE_DUE
)
def test_recharge_is_due_when_the_draw_would_leave_the_balance_below_the_threshold(
    cost, remaining, balance, room, threshold, done, limit, due
):
    assert (
        recharge_due(
            D(cost),
            allowance_remaining=D(remaining),
            balance=D(balance),
            room=None if room is None else D(room),
            threshold=D(threshold),
            recharges=done,
            limit=limit,
        )
        is due
    )


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
