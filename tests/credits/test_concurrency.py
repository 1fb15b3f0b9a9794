"""Real threads, real transactions on PostgreSQL: batches charged while customer care
flips pooling, the same event sent twice at once, a purchase double-submitted at once.
Afterwards every SPEC §6 invariant holds and no caller saw a lock error."""

from __future__ import annotations

import random
import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count

from core.checks import ledger_violations
from credits.models import Account, AccountKind, LedgerEntry, PoolingChange
from credits.services import credits_purchase, pooling_set
from offices.models import Company
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

INGESTERS = 8
BATCHES_PER_THREAD = 10
EVENTS_PER_BATCH = 20
OFFICES = ("hq", "austin", "berlin")


def run_together(targets: list, timeout: float = 120) -> list[BaseException]:
    """Start every target at the same instant (a barrier), each on its own connection;
    return what any of them raised."""
    barrier = threading.Barrier(len(targets), timeout=30)
    errors: list[BaseException] = []

    def runner(target):
        try:
            barrier.wait()
            target()
        except BaseException as exc:  # noqa: BLE001 — the test reports every failure
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung (deadlock?)"
    return errors


def test_batches_charged_while_pooling_flips_keep_every_invariant(company, care):
    # given: pooling on, 500 credits in the pool, 40 AI credits
    assert care.has_perm("offices.change_pooling")
    pooling_set(company=company, enabled=True, actor=care, reason="start pooled")
    credits_purchase(company=company, amount="500", actor=care)
    credits_purchase(company=company, amount="40", kind="ai_agent", actor=care)
    results: dict[str, list[bool]] = {}
    ingest_done = threading.Event()
    remaining = [INGESTERS]
    lock = threading.Lock()
    toggles: list[bool] = []

    def ingester(n: int):
        rng = random.Random(n)
        try:
            for b in range(BATCHES_PER_THREAD):
                events = [
                    event(
                        f"t{n}-b{b}-e{i}",
                        office=rng.choice(OFFICES),
                        service="ai_agent"
                        if i % 7 == 0
                        else rng.choice(["sms", "call_international"]),
                        quantity=str(rng.randint(1, 12)),
                    )
                    for i in range(EVENTS_PER_BATCH)
                ]
                for r in usage_ingest(company=company, events=events):
                    results.setdefault(r.record.external_id, []).append(r.duplicate)
        finally:
            with lock:
                remaining[0] -= 1
                if remaining[0] == 0:
                    ingest_done.set()

    def toggler():
        enabled = True
        while not ingest_done.is_set() or len(toggles) < 4:
            enabled = not enabled
            change = pooling_set(company=company, enabled=enabled, actor=care, reason="flip")
            assert change is not None and change.enabled == enabled
            toggles.append(enabled)

    def purchaser():
        hq = company.offices.get(slug="hq")
        for i in range(10):
            credits_purchase(company=company, amount="20", office=hq, actor=care, reference=f"p{i}")

    # when
    errors = run_together(
        [lambda n=n: ingester(n) for n in range(INGESTERS)] + [toggler, purchaser]
    )

    # then: no caller saw a deadlock, serialization failure or anything else
    assert errors == []
    total = INGESTERS * BATCHES_PER_THREAD * EVENTS_PER_BATCH
    # every event charged exactly once
    assert len(results) == total and all(flags == [False] for flags in results.values())
    assert UsageRecord.objects.count() == total
    assert UsageRecord.objects.values("external_id").distinct().count() == total
    # pooling really flipped under load, and each batch saw one pooling state only
    assert len(toggles) >= 4
    assert PoolingChange.objects.count() == 1 + len(toggles)
    per_batch = Counter(
        UsageRecord.objects.order_by()
        .values("batch")
        .annotate(states=Count("pooling_on", distinct=True))
        .values_list("states", flat=True)
    )
    assert per_batch == {1: INGESTERS * BATCHES_PER_THREAD}
    states = set(UsageRecord.objects.values_list("pooling_on", flat=True))
    assert states == {True, False}
    final = Company.objects.get(pk=company.pk).pooling_enabled
    assert final == toggles[-1]
    # no balance ever went below zero: no ledger row says so, and the schema forbids it
    assert not LedgerEntry.objects.filter(balance_after__lt=0).exists()
    assert not Account.objects.filter(balance__lt=0).exists()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conname IN "
            "('ledger_balance_after_nonneg', 'account_balance_nonneg') AND contype = 'c'"
        )
        assert sorted(r[0] for r in cursor.fetchall()) == [
            "account_balance_nonneg",
            "ledger_balance_after_nonneg",
        ]
    # the pool ran dry at some point: overage was recorded as uncovered, not overdrawn
    assert UsageRecord.objects.filter(uncovered__gt=0).exists()
    assert ledger_violations() == []


def test_the_same_event_sent_twice_at_once_is_charged_once(company, care):
    hq = company.offices.get(slug="hq")
    credits_purchase(company=company, amount="300", office=hq, actor=care)
    outcomes = []
    for round_ in range(5):
        # given: two clients send the same 2 events at the same moment
        batch = [event(f"same-{round_}-a", quantity="30"), event(f"same-{round_}-b", quantity="9")]
        seen: list[list[bool]] = []

        def send(batch=batch, seen=seen):
            seen.append([r.duplicate for r in usage_ingest(company=company, events=batch)])

        # when
        assert run_together([send, send]) == []
        # then: one charged them, the other was told they are duplicates
        assert sorted(seen) == [[False, False], [True, True]]
        outcomes.append(seen)
    assert UsageRecord.objects.count() == 10
    # 5 × 39 = 195: 100 from the allowance, 95 from hq's wallet — once
    assert Account.objects.get(office=hq, kind=AccountKind.WALLET).balance == Decimal("205")
    assert ledger_violations() == []


def test_a_purchase_double_submitted_at_once_is_recorded_once(company, care):
    # given
    austin = company.offices.get(slug="austin")
    entries: list[int] = []

    def submit():
        entry = credits_purchase(
            company=company, amount="75", office=austin, actor=care, idempotency_key="order-42"
        )
        entries.append(entry.pk)

    # when: four submits of the same order arrive together
    assert run_together([submit] * 4) == []
    # then
    assert len(entries) == 4 and len(set(entries)) == 1
    assert LedgerEntry.objects.filter(idempotency_key="order-42").count() == 1
    assert Account.objects.get(office=austin, kind=AccountKind.WALLET).balance == Decimal("75")
    assert ledger_violations() == []
