"""The ledger (SPEC §2, invariants 1 and 8): every balance change is posted here.

`post` applies postings to locked accounts and writes their ledger entries, through the
ORM; `post_sql` is the same postings as SQL for the PostgreSQL charging writer, which
runs them in the one statement that closes a usage batch. Both check the same rule
first (`_apply`): no balance goes below zero, no posting is of zero."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.utils import timezone

from core.errors import InsufficientFunds
from credits.alerts import alerts_sync
from credits.models import Account, LedgerEntry, PoolingChange


@dataclass
class Posting:
    """One change of one locked account, and what explains it."""

    account: Account
    amount: Decimal
    entry_type: str
    memo: str = ""
    reference: str = ""
    idempotency_key: str = ""
    pooling_change: PoolingChange | None = None
    usage_batch: uuid.UUID | None = None
    # The account's balance after this posting: set by post / post_sql.
    balance_after: Decimal | None = None


def _apply(postings: Sequence[Posting]) -> None:
    """Move each account's balance by its postings, in order, refusing any that would
    take a balance below zero (the database's CHECK would refuse it too)."""
    for p in postings:
        new_balance = p.account.balance + p.amount
        if new_balance < 0:
            raise InsufficientFunds(
                f"{p.account} holds {p.account.balance:,} credits; "
                f"{-p.amount:,} cannot be taken from it."
            )
        p.account.balance = p.balance_after = new_balance


def post(postings: Sequence[Posting], *, actor, sync_alerts: bool = True) -> list[LedgerEntry]:
    """Apply `postings` to their accounts (locked by the caller, in pk order) and write
    one ledger entry each, in the caller's transaction, opening or resolving the
    accounts' low-balance alerts with them (credits.alerts)."""
    _apply(postings)
    now = timezone.now()
    accounts = {p.account.pk: p.account for p in postings}.values()
    for account in accounts:
        Account.objects.filter(pk=account.pk).update(balance=account.balance, updated_at=now)
        account.updated_at = now
    if sync_alerts:  # else the caller syncs once its further postings are made
        alerts_sync(accounts)
    return LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                account=p.account,
                company_id=p.account.company_id,
                entry_type=p.entry_type,
                amount=p.amount,
                balance_after=p.balance_after,
                reference=p.reference,
                idempotency_key=p.idempotency_key,
                usage_batch=p.usage_batch,
                pooling_change=p.pooling_change,
                created_by=actor,
                memo=p.memo,
            )
            for p in postings
        ]
    )


def post_one(
    *, account: Account, amount: Decimal, entry_type: str, actor, **details
) -> LedgerEntry:
    """`post` of a single change (purchases, grants, adjustments)."""
    (entry,) = post(
        [Posting(account=account, amount=amount, entry_type=entry_type, **details)], actor=actor
    )
    return entry


def post_sql(postings: Sequence[Posting], *, actor, now) -> tuple[list[str], list]:
    """PostgreSQL: `postings` (one per account) as two data-modifying CTEs, `balances`
    and `ledger`, with their parameters, for the charging writer's closing statement.
    Balances are applied (and checked) here, and alerts synced, as `post` does."""
    _apply(postings)
    accounts = [p.account for p in postings]
    alerts_sync(accounts)
    ctes = [
        f"balances AS (UPDATE {Account._meta.db_table} AS b "  # noqa: S608
        "SET balance = w.balance, updated_at = %s "
        "FROM unnest(%s::bigint[], %s::numeric[]) AS w(id, balance) WHERE b.id = w.id)",
        f"ledger AS (INSERT INTO {LedgerEntry._meta.db_table} (account_id, company_id, "  # noqa: S608
        "entry_type, amount, balance_after, reference, idempotency_key, usage_batch, "
        "memo, created_by_id, created_at) "
        "SELECT l.account_id, l.company_id, l.entry_type, l.amount, l.balance_after, "
        "l.reference, '', l.usage_batch, l.memo, %s, %s "
        "FROM unnest(%s::bigint[], %s::bigint[], %s::text[], %s::numeric[], %s::numeric[], "
        "%s::text[], %s::uuid[], %s::text[]) AS l(account_id, company_id, entry_type, "
        "amount, balance_after, reference, usage_batch, memo))",
    ]
    params = [now, [a.id for a in accounts], [a.balance for a in accounts]]
    params += [None if actor is None else actor.pk, now]
    params += [
        [a.id for a in accounts],
        [a.company_id for a in accounts],
        [str(p.entry_type) for p in postings],
        [p.amount for p in postings],
        [p.balance_after for p in postings],
        [p.reference for p in postings],
        [p.usage_batch for p in postings],
        [p.memo for p in postings],
    ]
    return ctes, params
