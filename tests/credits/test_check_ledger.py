"""`manage.py check_ledger` passes on honest data and names each kind of tampering."""

from __future__ import annotations

from contextlib import contextmanager
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.models import F

from core.checks import ledger_check, ledger_violations
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry
from credits.services import credits_purchase, pooling_set
from offices.models import Company
from tests.factories import company_factory, event
from usage.models import UsageRecord
from usage.services import usage_ingest


@contextmanager
def append_only_lifted(table: str):
    """Let a test tamper with an append-only table, as an attacker with SQL access could."""
    trigger = f"{table}_append_only"
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Rows inserted by this test still have deferred FK checks pending, which
            # ALTER TABLE refuses to run over: fire them now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"ALTER TABLE {table} DISABLE TRIGGER {trigger}")
    try:
        yield
    finally:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ALTER TABLE {table} ENABLE TRIGGER {trigger}")
                cursor.execute("SET CONSTRAINTS ALL DEFERRED")


def sql(statement: str, params=()) -> int:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)
        return cursor.rowcount


def run_check(*args) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("check_ledger", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def failing_check(*args) -> str:
    err = StringIO()
    with pytest.raises(CommandError, match="violation"):
        call_command("check_ledger", *args, stdout=StringIO(), stderr=err)
    return err.getvalue()


@pytest.fixture
def busy(company, care):
    """A month of honest activity: wallet overage, AI usage, pooling on, pool overage, off."""
    austin = company.offices.get(slug="austin")
    credits_purchase(company=company, amount="30", office=austin, actor=care)
    credits_purchase(company=company, amount="5", kind="ai_agent", actor=care)
    usage_ingest(
        company=company,
        events=[
            event("w1", office="austin", quantity="120"),  # 100 allowance + 20 wallet
            event("w2", office="hq", quantity="3"),
            event("ai1", office="berlin", service="ai_agent", quantity="7"),  # 14: 10 + 4 AI
            event("c1", office="berlin", service="call_international", quantity="3.3333"),
        ],
    )
    pooling_set(company=company, enabled=True, actor=care, reason="one pool for all")
    credits_purchase(company=company, amount="50", actor=care)
    usage_ingest(
        company=company,
        events=[
            event("p1", office="hq", quantity="150"),  # 97 allowance + 53 pool, 0 uncovered
            event("p2", office="austin", quantity="2"),  # allowance used up: pool
        ],
    )
    pooling_set(company=company, enabled=False, actor=care, reason="back to wallets")
    return company


def test_clean_data_passes_with_a_summary(busy):
    # when
    out, err = run_check()
    # then
    assert ledger_violations() == []
    assert "All ledger invariants hold." in out
    assert "6 usage records" in out and "3 accounts" not in out
    counts = ledger_check().counts
    assert counts["usage records"] == 6
    assert counts["accounts"] == 5  # pool, AI, three wallets
    assert counts["ledger entries"] == LedgerEntry.objects.count() > 0
    assert err == ""


def test_a_tampered_account_balance_is_caught(busy):
    # given: someone adds 7 credits to the austin wallet without a ledger entry
    wallet = Account.objects.get(office__slug="austin", kind=AccountKind.WALLET)
    assert sql("UPDATE credits_account SET balance = balance + 7 WHERE id = %s", [wallet.pk]) == 1
    # then
    err = failing_check()
    assert f"§6.1 account {wallet.pk} (acme wallet austin)" in err
    assert "≠ sum of its" in err
    assert "last entry's balance_after" in err


def test_a_tampered_usage_split_is_caught(busy):
    # given: one credit of p1 moved from its allowance part to its pool part, sum kept
    record = UsageRecord.objects.get(external_id="p1")
    with append_only_lifted("usage_usagerecord"):
        changed = sql(
            "UPDATE usage_usagerecord SET allowance_part = allowance_part - 1,"
            " pool_part = pool_part + 1 WHERE id = %s",
            [record.pk],
        )
    assert changed == 1
    # then: the allowance no longer matches its records, nor the pool entry its batch
    violations = ledger_violations()
    assert any(
        v.startswith(f"§6.3 allowance of office {record.office_id} standard")
        and "used 100.0000 ≠ sum of its records' allowance parts 99.0000" in v
        and "pool_drawn 53.0000 ≠ sum of its records' pool parts 54.0000" in v
        for v in violations
    ), violations
    assert any(
        v.startswith(f"§6.2 usage batch {record.batch}")
        and "records drew 56.0000 but the usage ledger entries say -55.0000" in v
        for v in violations
    ), violations
    assert "§6.8" not in " ".join(violations)  # the trigger is back on
    failing_check()


@pytest.mark.parametrize(
    "column, says",
    [
        ("wallet_drawn", "wallet_drawn 21.0000 ≠ sum of its records' wallet parts 20.0000"),
        ("cost_total", "cost_total 123.0000 ≠ sum of its records' costs 122.0000"),
        ("events", "events 3 ≠ number of its records 2"),
    ],
)
def test_a_broken_allowance_rollup_is_caught(busy, column, says):
    # given: austin's standard allowance (w1 and p2) gets one more than its records
    allowance = Allowance.objects.get(office__slug="austin", kind="standard")
    Allowance.objects.filter(pk=allowance.pk).update(**{column: F(column) + 1})
    # then
    assert ledger_violations() == [
        f"§6.3 allowance of office {allowance.office_id} standard "
        f"{allowance.period:%Y-%m} (id {allowance.pk}): {says}"
    ]


def test_a_wallet_holding_credits_while_pooling_is_on_is_caught(busy, care):
    # given: pooling on, then 5 credits land in berlin's wallet with a matching entry
    pooling_set(company=busy, enabled=True, actor=care, reason="pool again")
    wallet = Account.objects.get(office__slug="berlin", kind=AccountKind.WALLET)
    LedgerEntry.objects.create(
        account=wallet,
        company=busy,
        entry_type=EntryType.GRANT,
        amount=Decimal("5"),
        balance_after=Decimal("5"),
    )
    sql("UPDATE credits_account SET balance = 5 WHERE id = %s", [wallet.pk])
    # then: balances still match the ledger; only the pooling rule is broken
    assert ledger_violations() == [
        "§6.7 company acme: pooling is on but the berlin wallet holds 5.0000"
    ]
    assert "§6.7" in failing_check()


def test_ai_usage_paid_from_the_pool_is_caught(busy):
    record = UsageRecord.objects.get(external_id="ai1")
    with append_only_lifted("usage_usagerecord"):
        sql(
            "UPDATE usage_usagerecord SET pool_part = ai_part, ai_part = 0 WHERE id = %s",
            [record.pk],
        )
    violations = ledger_violations()
    assert any(
        v.startswith(f"§6.6 usage record {record.pk} (acme 'ai1'): AI agent usage drew the pool")
        for v in violations
    ), violations


def test_a_misrated_cost_is_caught(busy):
    # given: c1 is 3.3333 min × 0.25 = 0.833325 → 0.8333; bump cost and uncovered alike
    record = UsageRecord.objects.get(external_id="c1")
    assert record.cost == Decimal("0.8333")
    with append_only_lifted("usage_usagerecord"):
        sql(
            "UPDATE usage_usagerecord SET cost = cost + 0.0001, uncovered = uncovered + 0.0001"
            " WHERE id = %s",
            [record.pk],
        )
    violations = ledger_violations()
    assert any(
        v == f"§6.2 usage record {record.pk} (acme 'c1'): cost ≠ quantity × rate rounded "
        "half-up to 4 places"
        for v in violations
    ), violations


def test_an_unbalanced_pooling_transfer_is_caught(busy):
    # given: an extra transfer credits the pool for the last pooling change
    change = busy.pooling_changes.first()
    pool = Account.objects.get(company=busy, kind=AccountKind.POOL)
    LedgerEntry.objects.create(
        account=pool,
        company=busy,
        entry_type=EntryType.POOLING_TRANSFER,
        amount=Decimal("3"),
        balance_after=pool.balance + 3,
        pooling_change=change,
    )
    sql("UPDATE credits_account SET balance = balance + 3 WHERE id = %s", [pool.pk])
    # then
    violations = ledger_violations()
    assert any(
        v.startswith(
            f"§6.5 pooling change {change.pk} (acme): its transfer entries sum to 3.0000, not 0; "
            f"it records {change.amount_moved} moved but its entries credit "
        )
        for v in violations
    ), violations
    assert any(v.startswith("§6.5 company acme: its balances total") for v in violations)


def test_a_broken_balance_after_chain_is_caught(busy):
    # given: the pool's usage entry (not the pool's last entry: pooling off came after it)
    entry = LedgerEntry.objects.get(entry_type=EntryType.USAGE, account__kind=AccountKind.POOL)
    with append_only_lifted("credits_ledgerentry"):
        sql(
            "UPDATE credits_ledgerentry SET balance_after = balance_after + 1 WHERE id = %s",
            [entry.pk],
        )
    violations = ledger_violations()
    assert [v for v in violations if v.startswith("§6.1")] == [
        f"§6.1 ledger entry {entry.pk} of account {entry.account_id}: balance_after "
        f"{entry.balance_after + 1} ≠ running sum of the account's entries {entry.balance_after}"
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="triggers exist on PostgreSQL")
def test_a_disabled_append_only_trigger_is_caught(busy):
    sql("SET CONSTRAINTS ALL IMMEDIATE")
    sql("ALTER TABLE credits_poolingchange DISABLE TRIGGER credits_poolingchange_append_only")
    try:
        assert ledger_violations() == [
            "§6.8 table credits_poolingchange: the append-only trigger is disabled"
        ]
    finally:
        sql("ALTER TABLE credits_poolingchange ENABLE TRIGGER credits_poolingchange_append_only")
    assert ledger_violations() == []


def test_company_option_checks_only_that_company(busy, services):
    # given: a second, clean company; acme's pool is tampered with
    company_factory(slug="globex")
    sql(
        "UPDATE credits_account SET balance = balance + 1 WHERE company_id = %s AND kind = 'pool'",
        [busy.pk],
    )
    # then
    out, _ = run_check("--company", "globex")
    assert "Checked 1 companies, 3 accounts" in out and "All ledger invariants hold." in out
    assert "§6.1 account" in failing_check("--company", "acme")
    with pytest.raises(CommandError, match="No company with slug 'nope'"):
        run_check("--company", "nope")


def test_pooling_flag_flipped_behind_the_toggles_back_is_caught(busy):
    # given: the flag set directly, without the pooling toggle (no transfer, no audit record)
    Company.objects.filter(pk=busy.pk).update(pooling_enabled=True)
    # then: hq's wallet still holds what was left in the pool (10 + 50 − 55), and the
    # audit trail disagrees
    violations = ledger_violations()
    assert violations == [
        "§6.7 company acme: pooling is on but the hq wallet holds 5.0000",
        "§4 company acme: pooling is on but its latest pooling change record says otherwise",
    ]
