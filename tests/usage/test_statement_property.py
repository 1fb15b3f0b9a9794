"""Properties of statements and the what-if replay (SPEC §9) over random histories of
usage batches (some of them late: events of the previous month), purchases, adjustments
and pooling toggles, each written at its own simulated moment over three months:

* every period's statement ties out (balances, cost = parts, rollups = records);
* a period pooled throughout replays to exactly its actual figures;
* with no caps, the replay never leaves more uncovered than actually was.

STATEMENT_EXAMPLES (default 40) sets how many histories hypothesis tries."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
from collections import Counter
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DomainError
from credits.models import Account, AccountKind
from credits.services import credits_adjust, credits_purchase, pooling_set
from offices.models import CreditKind
from offices.selectors import company_scope
from tests.factories import PlanFactory, company_factory
from usage.events import UsageEvent
from usage.models import UsageRecord
from usage.services import usage_ingest
from usage.statements import statement_build
from usage.whatif import whatif_replay

OFFICES = ("hq", "austin", "berlin")
SERVICES = ("sms", "call_international", "ai_agent")
PERIODS = (dt.date(2025, 10, 1), dt.date(2025, 11, 1), dt.date(2025, 12, 1))
START = dt.datetime(2025, 10, 1, 12, tzinfo=dt.UTC)
SPAN_HOURS = 24 * 88  # into the end of December
STATS: Counter = Counter()

quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("40"), places=4)
amounts = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("60"), places=4)
signed = st.decimals(min_value=Decimal("-30"), max_value=Decimal("30"), places=4).filter(bool)
usage_event = st.tuples(
    st.sampled_from(OFFICES),
    st.sampled_from(SERVICES),
    quantities,
    st.sampled_from([0, 0, 0, 1, 5, 40 * 24]),  # hours late; the last: a month late
)
operations = st.one_of(
    st.tuples(st.just("usage"), st.lists(usage_event, min_size=1, max_size=5)),
    st.tuples(st.just("usage"), st.lists(usage_event, min_size=1, max_size=5)),
    st.tuples(st.just("purchase"), st.sampled_from(OFFICES), amounts),
    st.tuples(st.just("purchase_ai"), amounts),
    st.tuples(st.just("adjust"), st.sampled_from(OFFICES), signed),
    st.tuples(st.just("toggle"), st.booleans()),
)
histories = st.fixed_dictionaries(
    {
        "timezone": st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]),
        "included": st.sampled_from([Decimal(0), Decimal("10"), Decimal("40")]),
        "pooled_from_start": st.booleans(),
        # (hours after the start, operation), sorted: each is written at its own moment
        "operations": st.lists(
            st.tuples(st.integers(min_value=1, max_value=SPAN_HOURS), operations),
            min_size=1,
            max_size=16,
            unique_by=lambda t: t[0],
        ),
    }
)
_slugs = itertools.count()
_ids = itertools.count()


def _apply(op, *, company, care, moment) -> None:
    company.refresh_from_db()
    kind = op[0]
    if kind == "usage":
        events = [
            UsageEvent(
                external_id=f"ev-{next(_ids)}",
                office=office,
                service=service,
                quantity=quantity,
                occurred_at=moment - dt.timedelta(hours=late),
            )
            for office, service, quantity, late in op[1]
        ]
        usage_ingest(company=company, events=events)
    elif kind == "purchase":
        office = company.offices.get(slug=op[1])
        credits_purchase(company=company, amount=op[2], office=office, actor=care)
    elif kind == "purchase_ai":
        credits_purchase(company=company, amount=op[1], kind=CreditKind.AI_AGENT, actor=care)
    elif kind == "adjust":
        # The balance that funds standard usage now: the pool, or the office's wallet.
        if company.pooling_enabled:
            account = Account.objects.get(company=company, kind=AccountKind.POOL)
        else:
            account = Account.objects.get(company=company, office__slug=op[1])
        # refused when it would go below zero: nothing is written then
        with contextlib.suppress(DomainError):
            credits_adjust(account=account, amount=op[2], memo="property", actor=care)
    else:
        pooling_set(company=company, enabled=op[1], actor=care, reason="property")


@pytest.mark.django_db
@settings(
    max_examples=int(os.environ.get("STATEMENT_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_statements_tie_out_and_replays_hold(services, care, history):
    STATS["examples"] += 1
    with transaction.atomic():
        plan = PlanFactory(included_standard=history["included"], included_ai_agent=Decimal("4"))
        company = company_factory(
            slug=f"stmt-{next(_slugs)}",
            plan=plan,
            billing_timezone=history["timezone"],
            offices=OFFICES[1:],
        )
        with mock.patch("django.utils.timezone.now", return_value=START):
            if history["pooled_from_start"]:
                pooling_set(company=company, enabled=True, actor=care, reason="start")
        for hours, op in sorted(history["operations"], key=lambda t: t[0]):
            moment = START + dt.timedelta(hours=hours)
            with mock.patch("django.utils.timezone.now", return_value=moment):
                _apply(op, company=company, care=care, moment=moment)
        company.refresh_from_db()
        now = START + dt.timedelta(days=120)
        scope = company_scope(company)
        for period in PERIODS:
            statement = statement_build(scope, period=period, now=now)
            # every statement ties out, and its office figures are those of the records
            assert statement.balances_tie, [
                (line.label, line.difference) for line in statement.balances
            ]
            assert statement.usage_ties and statement.records_tie
            for line in statement.offices:
                sums = UsageRecord.objects.filter(
                    office_id=line.office_id, credit_kind=line.kind, period=period
                ).aggregate(cost=Sum("cost"), uncovered=Sum("uncovered"))
                assert line.figures.cost_total == (sums["cost"] or 0)
                assert line.figures.uncovered == (sums["uncovered"] or 0)

            whatif = whatif_replay(company, period=period)
            # with no caps, pooling can only fund more in total
            assert whatif.replayed_uncovered <= whatif.actual_uncovered
            assert whatif.replayed_funded >= whatif.actual_funded
            if whatif.pooled_throughout:
                STATS["pooled periods"] += 1
                assert whatif.replay_matches_actual, [
                    (o.name, o.actual_uncovered, o.replayed_uncovered) for o in whatif.offices
                ]
            if whatif.covered_by_pooling > 0:
                STATS["periods where pooling would have covered overage"] += 1
            if whatif.actual_uncovered > 0:
                STATS["periods with actual overage"] += 1
        # the last statement closes on today's balances
        closing = {line.account_id: line.closing for line in statement.balances}
        for account in Account.objects.filter(company=company):
            assert closing[account.pk] == account.balance
        transaction.set_rollback(True)


def teardown_module(module):
    if STATS:
        print(f"\nstatement property: {dict(STATS)}")


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
