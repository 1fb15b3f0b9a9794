"""A write that fails half-way leaves nothing behind (SPEC §7: never a partial write),
and the same request sent again is charged exactly once. Real transactions: each
service commits or rolls back for real, as it does in production."""

from __future__ import annotations

from unittest import mock

import pytest
from django.db import DatabaseError, OperationalError
from django.db.models import QuerySet

from core.checks import ledger_violations
from credits.charging import ChargingSession
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry, PoolingChange
from credits.services import credits_purchase, pooling_set
from offices.models import Company
from tests.factories import event
from usage.models import UsageRecord
from usage.records import SqlWriter
from usage.services import usage_ingest

pytestmark = pytest.mark.django_db(transaction=True)


class DeadlockDetected(Exception):
    sqlstate = "40P01"


def transient_error() -> OperationalError:
    """What Django raises when PostgreSQL picks this transaction as a deadlock victim."""
    error = OperationalError("deadlock detected")
    error.__cause__ = DeadlockDetected()
    return error


def state(company: Company) -> dict:
    """Everything a charge or a toggle may change."""
    return {
        "pooling": Company.objects.get(pk=company.pk).pooling_enabled,
        "balances": list(Account.objects.order_by("pk").values_list("pk", "balance")),
        "allowances": list(Allowance.objects.order_by("pk").values()),
        "records": list(UsageRecord.objects.order_by("pk").values_list("pk", flat=True)),
        "entries": list(LedgerEntry.objects.order_by("pk").values_list("pk", flat=True)),
        "changes": PoolingChange.objects.count(),
    }


def batch():
    """Wallet overage for austin, allowance for hq, AI credits for berlin."""
    return [
        event("b1", office="austin", quantity="130"),
        event("b2", office="hq", quantity="4"),
        event("b3", office="berlin", service="ai_agent", quantity="6"),
        event("b4", office="austin", quantity="5"),
    ]


@pytest.fixture
def funded(company, care):
    austin = company.offices.get(slug="austin")
    credits_purchase(company=company, amount="50", office=austin, actor=care)
    credits_purchase(company=company, amount="20", kind="ai_agent", actor=care)
    usage_ingest(company=company, events=[event("earlier", office="austin", quantity="10")])
    return company


def records_written_then_fail(real):
    def write(self):
        real(self)
        assert UsageRecord.objects.filter(external_id__in=["b1", "b2", "b3", "b4"]).count() == 4
        raise DatabaseError("disk full after inserting the usage records")

    return write


def totals_written_then_fail(real):
    def flush(self):
        real(self)
        assert LedgerEntry.objects.filter(usage_batch=self.batch).count() == 2
        raise DatabaseError("connection lost after the ledger, balances and rollups")

    return flush


# The batch path on PostgreSQL (tests run there): the records with their day rollups,
# then the charging session's one statement for the ledger entries, balances and
# allowance rollups.
FAULTS = {
    "usage records inserted, then the insert fails": lambda: mock.patch.object(
        SqlWriter, "write", records_written_then_fail(SqlWriter.write)
    ),
    "ledger, balances and rollups fail": lambda: mock.patch.object(
        ChargingSession, "flush", side_effect=DatabaseError("statement timeout")
    ),
    "ledger, balances and rollups written, then the connection is lost": lambda: mock.patch.object(
        ChargingSession, "flush", totals_written_then_fail(ChargingSession.flush)
    ),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_batch_failing_half_way_leaves_nothing_and_a_retry_charges_once(funded, fault):
    # given
    before = state(funded)
    # when: the database fails part-way through the batch
    with FAULTS[fault](), pytest.raises(DatabaseError):
        usage_ingest(company=funded, events=batch())
    # then: no records, balances and allowances as they were
    assert state(funded) == before
    # when: the client sends the same batch again
    retried = usage_ingest(company=funded, events=batch())
    again = usage_ingest(company=funded, events=batch())
    # then: every event charged once, and the ledger still adds up
    assert [r.duplicate for r in retried] == [False] * 4
    assert [r.duplicate for r in again] == [True] * 4
    assert UsageRecord.objects.filter(external_id__startswith="b").count() == 4
    wallet = Account.objects.get(office__slug="austin", kind=AccountKind.WALLET)
    assert wallet.balance == 5  # b1: 90 allowance + 40 wallet; b4: 5 wallet
    assert ledger_violations() == []


def test_a_deadlock_victim_is_retried_and_charged_once(funded):
    # given: the first attempt to write the usage entries is picked as a deadlock victim
    real = ChargingSession.flush
    calls = []

    def flush(self):
        calls.append(self.batch)
        if len(calls) == 1:
            raise transient_error()
        return real(self)

    # when
    with mock.patch.object(ChargingSession, "flush", flush):
        results = usage_ingest(company=funded, events=batch())
    # then: the caller never saw the deadlock; the batch was written once
    assert len(calls) == 2
    assert [r.duplicate for r in results] == [False] * 4
    assert UsageRecord.objects.filter(external_id__startswith="b").count() == 4
    # one usage entry per balance drawn: austin's wallet and the AI agent account
    assert LedgerEntry.objects.filter(entry_type=EntryType.USAGE).count() == 2
    assert ledger_violations() == []


def _failing_balance_update(fail_on: int):
    """QuerySet.update that fails on its `fail_on`-th change of a balance."""
    real = QuerySet.update
    calls = []

    def update(self, **kwargs):
        if self.model is Account:
            calls.append(kwargs.get("balance"))
            if len(calls) == fail_on:
                raise DatabaseError("server closed the connection")
        return real(self, **kwargs)

    return update, calls


def test_pooling_on_interrupted_between_wallets_moves_nothing(company, care):
    # given: three funded wallets, pooling off
    for slug, amount in [("hq", "10"), ("austin", "20"), ("berlin", "30")]:
        office = company.offices.get(slug=slug)
        credits_purchase(company=company, amount=amount, office=office, actor=care)
    before = state(company)
    # the first wallet emptied and the pool filled; the second wallet is next
    update, calls = _failing_balance_update(fail_on=3)
    # when
    with (
        mock.patch.object(QuerySet, "update", update),
        pytest.raises(DatabaseError),
    ):
        pooling_set(company=company, enabled=True, actor=care, reason="consolidate")
    # then: nothing moved, the flag is unchanged, no pooling change recorded
    assert len(calls) == 3
    assert state(company) == before
    # when: customer care tries again
    change = pooling_set(company=company, enabled=True, actor=care, reason="consolidate")
    # then
    assert change.amount_moved == 60
    assert Account.objects.get(company=company, kind=AccountKind.POOL).balance == 60
    assert ledger_violations() == []


def test_pooling_off_interrupted_after_debiting_the_pool_moves_nothing(company, care):
    # given: pooling on with 25 credits in the pool
    pooling_set(company=company, enabled=True, actor=care, reason="consolidate")
    credits_purchase(company=company, amount="25", actor=care)
    before = state(company)
    update, calls = _failing_balance_update(fail_on=2)  # the pool debited, the wallet next
    # when
    with (
        mock.patch.object(QuerySet, "update", update),
        pytest.raises(DatabaseError),
    ):
        pooling_set(company=company, enabled=False, actor=care, reason="split again")
    # then
    assert len(calls) == 2
    assert state(company) == before
    assert PoolingChange.objects.count() == 1
    assert ledger_violations() == []


def test_a_purchase_whose_ledger_entry_fails_leaves_the_balance_alone(company, care):
    # given
    hq = company.offices.get(slug="hq")
    before = state(company)
    # when: the balance was saved, then writing its entry fails
    with (
        mock.patch.object(LedgerEntry.objects, "bulk_create", side_effect=DatabaseError("boom")),
        pytest.raises(DatabaseError),
    ):
        credits_purchase(company=company, amount="40", office=hq, actor=care, idempotency_key="k1")
    # then
    assert state(company) == before
    # when: the client resubmits with the same key, twice
    first = credits_purchase(
        company=company, amount="40", office=hq, actor=care, idempotency_key="k1"
    )
    second = credits_purchase(
        company=company, amount="40", office=hq, actor=care, idempotency_key="k1"
    )
    # then: one purchase
    assert first.pk == second.pk
    assert Account.objects.get(office=hq, kind=AccountKind.WALLET).balance == 40
    assert ledger_violations() == []
