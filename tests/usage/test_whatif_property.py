"""The what-if replay (SPEC §9.2) against an independent model, over random histories of
usage batches (some late), purchases, adjustments, pooling switches, pool caps set and
lifted mid-month, and auto-recharge rules on the pool and on wallets.

The model replays the records the test finds stored (charge order: id), from the pool
the ledger held when the period began, the purchases and adjustments the ledger shows,
and the caps and the pool's rule *as the test set them* (its own log, not the audit):
caps as they were at each draw, the pool's rule firing just before a draw that would
leave the pool below its threshold, wallet rules asleep. WHATIF_EXAMPLES (default 25)
sets how many histories hypothesis tries."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from collections import Counter, defaultdict
from decimal import Decimal
from unittest import mock

import pytest
from django.db import transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.money import ZERO
from credits.controls import pool_cap_set, recharge_rule_set
from credits.models import Account, AccountKind, EntryType, LedgerEntry
from credits.services import pooling_set
from offices.models import CreditKind
from tests.factories import PlanFactory, company_factory
from tests.usage.test_statement_property import OFFICES, PERIODS, SPAN_HOURS, START, _apply
from tests.usage.test_statement_property import operations as base_operations
from usage.models import UsageRecord
from usage.statements import period_bounds
from usage.whatif import whatif_replay

money = st.decimals(min_value=Decimal("1"), max_value=Decimal("40"), places=2)
small = st.decimals(min_value=Decimal("0"), max_value=Decimal("12"), places=2)
control = st.one_of(
    st.tuples(st.just("cap"), st.sampled_from(OFFICES), st.one_of(st.none(), small)),
    st.tuples(st.just("cap"), st.sampled_from(OFFICES), small),
    st.tuples(st.just("pool_rule"), money, money, st.integers(min_value=1, max_value=3)),
    st.tuples(
        st.just("wallet_rule"),
        st.sampled_from(OFFICES),
        money,
        money,
        st.integers(min_value=1, max_value=3),
    ),
)
histories = st.fixed_dictionaries(
    {
        "included": st.sampled_from([Decimal(0), Decimal("10")]),
        "pooled_from_start": st.booleans(),
        "operations": st.lists(
            st.tuples(
                st.integers(min_value=1, max_value=SPAN_HOURS),
                st.one_of(base_operations, control),
            ),
            min_size=4,
            max_size=24,
            unique_by=lambda t: t[0],
        ),
    }
)
_slugs = itertools.count()
STATS: Counter = Counter()


def teardown_module():
    print("what-if property:", dict(STATS))


def _control(op, *, company, care, log, moment) -> None:
    if op[0] == "cap":
        office = company.offices.get(slug=op[1])
        pool_cap_set(company=company, office=office, cap=op[2], actor=care)
        log["caps"][office.pk].append((moment, op[2]))
        return
    if op[0] == "pool_rule":
        account = Account.objects.get(company=company, kind=AccountKind.POOL)
        terms = op[1:]
    else:
        account = Account.objects.get(company=company, office__slug=op[1])
        terms = op[2:]
    threshold, amount, limit = terms
    recharge_rule_set(
        company=company,
        account=account,
        threshold=threshold,
        amount=amount,
        monthly_limit=limit,
        actor=care,
    )
    if op[0] == "pool_rule":
        log["pool_rule"].append((moment, (threshold, amount, limit)))


def _last(steps, moment, default=None):
    value = default
    for at, step in steps:
        if at <= moment:
            value = step
    return value


def model_replay(company, period, log) -> dict:
    """The independent replay (see the module docstring)."""
    start, end = period_bounds(period, company.tz)
    standard = {"account__kind__in": [AccountKind.POOL, AccountKind.WALLET]}
    pool = (
        LedgerEntry.objects.filter(company=company, created_at__lt=start, **standard).aggregate(
            s=Sum("amount")
        )["s"]
        or ZERO
    )
    inflows = list(
        LedgerEntry.objects.filter(
            company=company,
            created_at__gte=start,
            created_at__lt=end,
            entry_type__in=[EntryType.PURCHASE, EntryType.GRANT, EntryType.ADJUSTMENT],
            **standard,
        )
        .order_by("created_at", "id")
        .values_list("created_at", "amount")
    )
    drawn: dict = {}
    uncovered: dict = defaultdict(lambda: ZERO)
    capped: dict = defaultdict(lambda: ZERO)
    recharged, done = ZERO, 0
    for r in UsageRecord.objects.filter(
        company=company, credit_kind=CreditKind.STANDARD, created_at__gte=start, created_at__lt=end
    ).order_by("id"):
        while inflows and inflows[0][0] <= r.created_at:
            pool = max(pool + inflows.pop(0)[1], ZERO)
        key = (r.office_id, r.period)
        if key not in drawn:  # a late record: its period's actual pool draws before
            drawn[key] = (
                UsageRecord.objects.filter(
                    office_id=r.office_id,
                    period=r.period,
                    credit_kind=CreditKind.STANDARD,
                    created_at__lt=start,
                ).aggregate(s=Sum("pool_part"))["s"]
                or ZERO
            )
        rest = r.cost - r.allowance_part
        cap = _last(log["caps"].get(r.office_id, []), r.created_at)
        room = rest if cap is None else max(cap - drawn[key], ZERO)
        rule = _last(log["pool_rule"], r.created_at)
        fires = rule is not None and rest > 0 and done < rule[2]
        if fires and pool - min(rest, pool, room) < rule[0]:
            pool += rule[1]
            recharged += rule[1]
            done += 1
        paid = min(rest, pool, room)
        pool -= paid
        drawn[key] += paid
        uncovered[r.office_id] += rest - paid
        if cap is not None:
            capped[r.office_id] += (rest - paid) - max(rest - (pool + paid), ZERO)
    return {"uncovered": uncovered, "capped": capped, "recharged": recharged}


@pytest.mark.django_db
@settings(
    max_examples=int(os.environ.get("WHATIF_EXAMPLES", "25")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(history=histories)
def test_the_replay_equals_the_model_with_caps_and_recharges(services, care, history):
    with transaction.atomic():
        plan = PlanFactory(included_standard=history["included"], included_ai_agent=Decimal("4"))
        company = company_factory(slug=f"whatif-{next(_slugs)}", plan=plan, offices=OFFICES[1:])
        log = {"caps": defaultdict(list), "pool_rule": []}
        with mock.patch("django.utils.timezone.now", return_value=START):
            if history["pooled_from_start"]:
                pooling_set(company=company, enabled=True, actor=care, reason="start")
        for hours, op in sorted(history["operations"], key=lambda t: t[0]):
            moment = START + dt.timedelta(hours=hours)
            with mock.patch("django.utils.timezone.now", return_value=moment):
                if op[0] in ("cap", "pool_rule", "wallet_rule"):
                    company.refresh_from_db()
                    _control(op, company=company, care=care, log=log, moment=moment)
                else:
                    _apply(op, company=company, care=care, moment=moment)
        company.refresh_from_db()
        for period in PERIODS:
            whatif = whatif_replay(company, period=period)
            expected = model_replay(company, period, log)
            got = {o.office_id: o for o in whatif.offices}
            for office_id, office in got.items():
                assert office.replayed_uncovered == expected["uncovered"][office_id], period
                assert office.capped == expected["capped"][office_id], period
            assert set(got) >= {k for k, v in expected["uncovered"].items() if v}
            assert whatif.pool_recharges == expected["recharged"], period
            if whatif.pooled_throughout:
                assert whatif.replay_matches_actual
            STATS["periods"] += 1
            STATS["with a cap's part"] += whatif.capped > 0
            STATS["with pool recharges"] += whatif.pool_recharges > 0
            STATS["with late records"] += any(
                r != period
                for r in UsageRecord.objects.filter(
                    company=company, created_at__gte=whatif.starts_at, created_at__lt=whatif.ends_at
                ).values_list("period", flat=True)
            )
        transaction.set_rollback(True)
