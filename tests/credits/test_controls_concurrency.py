"""Real threads, real transactions on PostgreSQL (SPEC §8): two offices hit their pool
caps while customer care flips pooling and a company admin keeps changing the pool's
recharge rule and the warning threshold. Afterwards no office drew past its cap, no rule
recharged past its limit, every low balance has exactly one open alert (invariants
9–11), and every other invariant holds."""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum

from core.checks import ledger_violations
from credits.controls import alert_threshold_set, pool_cap_set, recharge_rule_set
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry
from credits.services import credits_purchase, pooling_set
from offices.models import CreditKind
from tests.credits.test_concurrency import run_together
from tests.factories import event
from usage.models import UsageRecord
from usage.services import usage_ingest

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="row locks and real concurrency need PostgreSQL"
    ),
]

CAPS = {"austin": Decimal("30"), "berlin": Decimal("45")}
BATCHES = 12
EVENTS = 10  # of 5 credits each: 50 a batch, 600 an office, allowance 100


def test_two_offices_hit_their_caps_while_pooling_flips_and_rules_change(company, care):
    # given: pooling on, 60 in the pool, caps on austin and berlin
    pooling_set(company=company, enabled=True, actor=care, reason="start pooled")
    credits_purchase(company=company, amount="60", actor=care)
    for slug, cap in CAPS.items():
        pool_cap_set(company=company, office=company.offices.get(slug=slug), cap=cap, actor=care)
    pool = Account.objects.get(company=company, kind=AccountKind.POOL)
    done = threading.Event()
    remaining = [len(CAPS)]
    lock = threading.Lock()

    def ingest(slug):
        def run():
            try:
                for b in range(BATCHES):
                    usage_ingest(
                        company=company,
                        events=[
                            event(f"{slug}-{b}-{i}", office=slug, quantity="5")
                            for i in range(EVENTS)
                        ],
                    )
            finally:
                with lock:
                    remaining[0] -= 1
                    if not remaining[0]:
                        done.set()

        return run

    def flip_pooling():
        enabled = False
        while not done.is_set():
            pooling_set(company=company, enabled=enabled, actor=care, reason="flip")
            enabled = not enabled
        pooling_set(company=company, enabled=True, actor=care, reason="end pooled")

    def change_rules():
        n = 0
        while not done.is_set():
            n += 1
            recharge_rule_set(
                company=company,
                account=pool,
                threshold=str(50 + n % 7 * 10),
                amount="25",
                monthly_limit=1 + n % 3,
                actor=care,
            )
            alert_threshold_set(company=company, value=str(20 + n % 5 * 20), actor=care)

    # when
    errors = run_together([ingest("austin"), ingest("berlin"), flip_pooling, change_rules])

    # then: nothing failed, every event was charged once
    assert errors == []
    assert UsageRecord.objects.filter(company=company).count() == len(CAPS) * BATCHES * EVENTS
    # no office drew more than its cap from the pool, and both hit it
    for slug, cap in CAPS.items():
        row = Allowance.objects.get(company=company, office__slug=slug, kind=CreditKind.STANDARD)
        assert row.pool_drawn <= cap, slug
        pooled_uncovered = UsageRecord.objects.filter(
            office=row.office, pooling_on=True, uncovered__gt=0
        ).aggregate(s=Sum("uncovered"))["s"]
        assert pooled_uncovered, f"{slug} never hit its cap while pooled"
    # recharges happened and never beyond the limit in force (checked by check_ledger)
    assert LedgerEntry.objects.filter(company=company, entry_type=EntryType.AUTO_RECHARGE).exists()
    # invariants 1–11
    assert ledger_violations([company.pk]) == []
