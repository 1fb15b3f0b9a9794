"""Property: any sequence of usage batches, purchases, adjustments, pooling toggles and rate
changes gives the same balances, ledgers, allowance usage and per-record splits in the
services (on PostgreSQL) as in the independent model of tests/model.py."""

from __future__ import annotations

import datetime as dt
import itertools
import os
from decimal import Decimal

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.errors import DomainError, InsufficientFunds, ValidationFailed
from credits.models import Account, AccountKind
from credits.services import credits_adjust, credits_purchase, pooling_set
from offices.models import CreditKind
from offices.services import office_addon_set
from tests.credits.checks import assert_invariants, assert_matches_model, model_for
from tests.factories import AddOnFactory, PlanFactory, ServiceFactory, company_factory
from tests.model import AI, POOL, Event, Refused, wallet
from usage.events import UsageEvent
from usage.models import Service
from usage.services import usage_ingest

OFFICES = ("hq", "austin", "berlin")
SERVICES = ("sms", "call_international", "ai_agent", "fax")
MOMENTS = (
    # around the October/November and November/December boundaries of UTC, New York, Tokyo
    dt.datetime(2025, 10, 31, 14, 30, tzinfo=dt.UTC),
    dt.datetime(2025, 10, 31, 23, 30, tzinfo=dt.UTC),
    dt.datetime(2025, 11, 1, 3, 30, tzinfo=dt.UTC),
    dt.datetime(2025, 11, 15, 12, 0, tzinfo=dt.UTC),
    dt.datetime(2025, 12, 1, 4, 30, tzinfo=dt.UTC),
    dt.datetime(2025, 12, 1, 6, 0, tzinfo=dt.UTC),
)
ACCOUNTS = (POOL, AI) + tuple(wallet(o) for o in OFFICES)

quantities = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("90"), places=4)
amounts = st.decimals(min_value=Decimal("0.0001"), max_value=Decimal("60"), places=4)
signed = st.decimals(min_value=Decimal("-60"), max_value=Decimal("60"), places=4).filter(bool)

events = st.tuples(
    st.sampled_from([f"e{i}" for i in range(12)]),  # a small id space: many repeats
    st.sampled_from(OFFICES),
    st.sampled_from(SERVICES),
    quantities,
    st.sampled_from(MOMENTS),
)
operations = st.one_of(
    st.tuples(st.just("usage"), st.lists(events, min_size=1, max_size=6, unique_by=lambda e: e[0])),
    st.tuples(
        st.just("purchase"),
        st.sampled_from([CreditKind.STANDARD.value, CreditKind.AI_AGENT.value]),
        st.sampled_from((None,) + OFFICES),
        amounts,
        st.sampled_from(["", "", "k1", "k2"]),
    ),
    st.tuples(st.just("adjust"), st.sampled_from(ACCOUNTS), signed),
    st.tuples(st.just("toggle"), st.booleans()),
    st.tuples(
        st.just("rate"),
        st.sampled_from(SERVICES),
        st.sampled_from([Decimal("0.5"), Decimal("1.25"), Decimal("0.0707"), Decimal("3")]),
    ),
)
scenarios = st.fixed_dictionaries(
    {
        "timezone": st.sampled_from(["UTC", "America/New_York", "Asia/Tokyo"]),
        "included_standard": st.sampled_from([Decimal(0), Decimal("25"), Decimal("100")]),
        "included_ai": st.sampled_from([Decimal(0), Decimal("6")]),
        "addon_quantity": st.integers(min_value=0, max_value=2),
        "operations": st.lists(operations, min_size=1, max_size=12),
    }
)
_slugs = itertools.count()


def _account(company, name) -> Account:
    if name == POOL:
        return Account.objects.get(company=company, kind=AccountKind.POOL)
    if name == AI:
        return Account.objects.get(company=company, kind=AccountKind.AI_AGENT)
    return Account.objects.get(company=company, kind=AccountKind.WALLET, office__slug=name[1])


def apply(op, *, company, model, care) -> None:
    """Run one operation on the services and on the model; both must agree on the outcome."""
    company.refresh_from_db()
    if op[0] == "usage":
        batch = [Event(ext, office, svc, qty, at) for ext, office, svc, qty, at in op[1]]
        sent = [
            UsageEvent(
                external_id=e.external_id,
                office=e.office,
                service=e.service,
                quantity=e.quantity,
                occurred_at=e.occurred_at,
            )
            for e in batch
        ]
        try:
            expected = model.ingest(batch)
        except Refused:
            # an id sent again with other content: the whole batch is refused
            with pytest.raises(ValidationFailed):
                usage_ingest(company=company, events=sent)
            return
        results = usage_ingest(company=company, events=sent)
        got = [
            (
                r.duplicate,
                r.record.office.slug,
                r.record.cost,
                (
                    r.record.allowance_part,
                    r.record.pool_part,
                    r.record.wallet_part,
                    r.record.ai_part,
                    r.record.uncovered,
                ),
            )
            for r in results
        ]
        assert got == [(dup, c.office, c.cost, c.parts()) for c, dup in expected]
    elif op[0] == "purchase":
        _, kind, office, amount, key = op
        try:
            model.add(amount=amount, kind=kind, office=office, key=key)
            refused = None
        except Refused as exc:
            refused = exc.why
        office_obj = company.offices.get(slug=office) if office else None
        if refused:
            with pytest.raises(DomainError):
                credits_purchase(
                    company=company, amount=amount, kind=kind, office=office_obj, actor=care
                )
        else:
            credits_purchase(
                company=company,
                amount=amount,
                kind=kind,
                office=office_obj,
                actor=care,
                idempotency_key=key,
            )
    elif op[0] == "adjust":
        _, name, amount = op
        try:
            model.adjust(name, amount)
            refused = None
        except Refused as exc:
            refused = exc.why
        call = lambda: credits_adjust(  # noqa: E731
            account=_account(company, name), amount=amount, memo="property", actor=care
        )
        if refused is None:
            call()
        else:
            error = InsufficientFunds if refused == "insufficient funds" else DomainError
            with pytest.raises(error):
                call()
    elif op[0] == "rate":
        # An admin edits a rate: later events use it, charged records keep theirs.
        _, code, rate = op
        model.rates[code] = (rate, model.rates[code][1])
        service = Service.objects.get(code=code)
        service.rate = rate
        service.save()
    else:
        moved = model.set_pooling(op[1])
        change = pooling_set(company=company, enabled=op[1], actor=care, reason="property")
        assert (change is None) == (moved is None)
        if change is not None:
            assert change.amount_moved == moved


@pytest.mark.django_db
@settings(
    # PROPERTY_EXAMPLES=500 for a deeper search; 40 keep the suite quick.
    max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "40")),
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios)
def test_services_and_model_agree(services, care, scenario):
    ServiceFactory(code="fax", rate=Decimal("0.3333"))  # rounds on most quantities
    # Each example runs in a savepoint that is rolled back, on a company of its own.
    with transaction.atomic():
        plan = PlanFactory(
            included_standard=scenario["included_standard"],
            included_ai_agent=scenario["included_ai"],
        )
        company = company_factory(
            slug=f"prop-{next(_slugs)}",
            plan=plan,
            billing_timezone=scenario["timezone"],
            offices=OFFICES[1:],
        )
        if scenario["addon_quantity"]:
            addon = AddOnFactory(included_standard=Decimal("10"), included_ai_agent=Decimal("1"))
            office_addon_set(
                office=company.offices.get(slug="berlin"),
                addon=addon,
                quantity=scenario["addon_quantity"],
            )
        model = model_for(company)
        for op in scenario["operations"]:
            apply(op, company=company, model=model, care=care)
        assert_matches_model(company, model)
        assert_invariants(company)
        transaction.set_rollback(True)


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
