"""Shared checks of the credit tests: the SPEC §6 invariants on the database, and the
comparison of the database with the pure model of tests/model.py."""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db.models import Sum

from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry
from offices.models import Company, CreditKind
from tests.model import AI, POOL, STANDARD, ZERO, CompanyModel, wallet
from usage.models import Service, UsageRecord


def account_name(account: Account):
    """The model's name of a database account."""
    if account.kind == AccountKind.POOL:
        return POOL
    if account.kind == AccountKind.AI_AGENT:
        return AI
    return wallet(account.office.slug)


def model_for(company: Company) -> CompanyModel:
    """A model of `company` with its catalog: offices, plan + add-on allowances and rates,
    read as plain data (the model's rules are its own)."""
    # In creation order: the order in which a toggle moves the wallets (and so the order of
    # the pool's ledger entries) follows the wallets' creation.
    offices = list(
        company.offices.order_by("pk")
        .select_related("plan")
        .prefetch_related("office_addons__addon")
    )
    included = {}
    for office in offices:
        standard = office.plan.included_standard
        ai = office.plan.included_ai_agent
        for oa in office.office_addons.all():
            standard += oa.addon.included_standard * oa.quantity
            ai += oa.addon.included_ai_agent * oa.quantity
        included[(office.slug, CreditKind.STANDARD.value)] = standard
        included[(office.slug, CreditKind.AI_AGENT.value)] = ai
    return CompanyModel(
        offices=[o.slug for o in offices],
        primary=next(o.slug for o in offices if o.is_primary),
        included=included,
        rates={s.code: (s.rate, s.credit_kind) for s in Service.objects.all()},
        timezone=company.billing_timezone,
        pooling=company.pooling_enabled,
    )


def balances(company: Company) -> dict:
    return {
        account_name(a): a.balance
        for a in Account.objects.filter(company=company).select_related("office")
    }


def assert_matches_model(company: Company, model: CompanyModel) -> None:
    """Balances, pooling flag, per-account ledger, allowance rows with their rollups and
    every usage record's split are exactly what the model says."""
    company.refresh_from_db()
    assert company.pooling_enabled == model.pooling
    assert balances(company) == model.balances

    ledger = defaultdict(list)
    entries = LedgerEntry.objects.filter(company=company).select_related("account__office")
    for e in entries.order_by("id"):
        ledger[account_name(e.account)].append((e.entry_type, e.amount, e.balance_after))
    assert dict(ledger) == {k: v for k, v in model.ledger.items() if v}

    rows = {
        (a.office.slug, a.kind, a.period): (
            a.included,
            a.used,
            a.cost_total,
            a.pool_drawn,
            a.wallet_drawn,
            a.ai_drawn,
            a.uncovered,
            a.events,
        )
        for a in Allowance.objects.filter(company=company).select_related("office")
    }
    expected_rows = {
        key: (
            r.included,
            r.used,
            r.cost_total,
            r.pool_drawn,
            r.wallet_drawn,
            r.ai_drawn,
            r.uncovered,
            r.events,
        )
        for key, r in model.allowances.items()
    }
    assert rows == expected_rows

    records = {
        r.external_id: (
            r.office.slug,
            r.credit_kind,
            r.rate,
            r.cost,
            r.period,
            (r.allowance_part, r.pool_part, r.wallet_part, r.ai_part, r.uncovered),
            r.pooling_on,
        )
        for r in UsageRecord.objects.filter(company=company).select_related("office")
    }
    expected_records = {
        ext: (c.office, c.kind, c.rate, c.cost, c.period, c.parts(), c.pooling_on)
        for ext, c in model.charges.items()
    }
    assert records == expected_records


def assert_invariants(company: Company) -> None:
    """SPEC §6, items 1–4, 6 and 7, checked row by row on the database."""
    company.refresh_from_db()
    accounts = list(Account.objects.filter(company=company))
    for account in accounts:
        entries = LedgerEntry.objects.filter(account=account)
        total = entries.aggregate(s=Sum("amount"))["s"] or ZERO
        assert account.balance == total, f"{account}: balance ≠ sum of its ledger"
        assert account.balance >= 0
        last = entries.order_by("-id").first()
        if last is not None:
            assert last.balance_after == account.balance
        if company.pooling_enabled and account.kind == AccountKind.WALLET:
            assert account.balance == 0, "pooling on: wallets stay empty"

    kind_of = {a.pk: a.kind for a in accounts}
    drawn_by_batch = defaultdict(lambda: ZERO)
    rollups = defaultdict(lambda: [ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, 0])
    for r in UsageRecord.objects.filter(company=company):
        parts = (r.allowance_part, r.pool_part, r.wallet_part, r.ai_part, r.uncovered)
        assert all(p >= 0 for p in parts), r
        assert sum(parts) == r.cost, r
        funded = r.pool_part + r.wallet_part + r.ai_part
        if r.credit_kind == CreditKind.AI_AGENT:
            assert r.pool_part == r.wallet_part == 0, "AI usage touched a standard balance"
        else:
            assert r.ai_part == 0, "standard usage touched the AI account"
            assert r.wallet_part == 0 if r.pooling_on else r.pool_part == 0
        if funded:
            if r.pool_part:
                expected_kind = AccountKind.POOL
            elif r.wallet_part:
                expected_kind = AccountKind.WALLET
            else:
                expected_kind = AccountKind.AI_AGENT
            assert kind_of[r.funding_account_id] == expected_kind
            drawn_by_batch[(r.batch, r.funding_account_id)] += funded
        roll = rollups[(r.office_id, r.credit_kind, r.period)]
        for i, value in enumerate(
            (r.allowance_part, r.cost, r.pool_part, r.wallet_part, r.ai_part, r.uncovered)
        ):
            roll[i] += value
        roll[6] += 1

    usage_entries = {
        (e.usage_batch, e.account_id): e.amount
        for e in LedgerEntry.objects.filter(company=company, entry_type=EntryType.USAGE)
    }
    assert usage_entries == {k: -v for k, v in drawn_by_batch.items()}

    allowances = Allowance.objects.filter(company=company)
    assert {
        (a.office_id, a.kind, a.period): [
            a.used,
            a.cost_total,
            a.pool_drawn,
            a.wallet_drawn,
            a.ai_drawn,
            a.uncovered,
            a.events,
        ]
        for a in allowances
    } == dict(rollups)
    for a in allowances:
        assert Decimal(0) <= a.used <= a.included


def assert_controls_match_model(company: Company, model: CompanyModel) -> None:
    """The money controls (SPEC §8) are what the model says: each allowance row's pool cap
    in force and pool-cap flag, the open alerts of each kind, and how many alerts each
    balance (each office and period, for pool caps) opened."""
    from credits.models import Alert

    rows = {
        (a.office.slug, a.kind, a.period): (a.pool_cap, a.pool_drawn_at_cap, a.pool_cap_alert)
        for a in Allowance.objects.filter(company=company).select_related("office")
    }
    # The pool-cap flag lives on the office's standard row (AI usage never draws the pool).
    expected = {
        key: (
            r.pool_cap,
            r.pool_drawn_at_cap,
            key[1] == STANDARD and (key[0], key[2]) in model.cap_alerted,
        )
        for key, r in model.allowances.items()
    }
    differ = {k: (rows.get(k), expected.get(k)) for k in rows.keys() | expected.keys()
              if rows.get(k) != expected.get(k)}  # fmt: skip
    assert not differ, f"allowance rows (database, model) that differ: {differ}"
    pool = Account.objects.get(company=company, kind=AccountKind.POOL)
    assert pool.latest_period == model.pool_period
    alerts = Alert.objects.filter(company=company).select_related("account__office", "office")
    capped = [a for a in alerts if a.kind == "pool_cap"]
    assert all(a.account_id == pool.pk for a in capped)
    assert {(a.office.slug, a.period) for a in capped if not a.resolved_at} == model.capped_out
    assert pool.pool_cap_alerts == len(model.capped_out)
    cap_opened = defaultdict(int)
    for a in capped:
        cap_opened[a.office.slug, a.period] += 1
    assert dict(cap_opened) == {k: v for k, v in model.cap_opened.items() if v}
    alerts = [a for a in alerts if a.kind != "pool_cap"]
    open_low = {
        account_name(a.account) for a in alerts if not a.resolved_at and a.kind == "low_balance"
    }
    open_empty = {
        account_name(a.account) for a in alerts if not a.resolved_at and a.kind == "uncovered"
    }
    assert open_low == model.low
    assert open_empty == model.empty_alerts
    opened = defaultdict(int)
    for a in alerts:
        opened[account_name(a.account), a.kind] += 1
    assert dict(opened) == {k: v for k, v in model.opened.items() if v}
