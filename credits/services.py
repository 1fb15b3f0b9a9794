"""Every write that changes a balance: accounts, purchases, grants, adjustments, pooling.

A balance changes only together with the ledger entry that explains it, in the same
transaction, under row locks taken in the order company → accounts (pk) → allowances.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone

from core.db import retry_on_conflict
from core.errors import NotFound, PermissionDenied, ValidationFailed
from core.money import ZERO, credits_noun, q
from credits.accounts import accounts_ensure
from credits.alerts import alerts_sync, pool_cap_alerts_resolve, thresholds_refresh
from credits.ledger import Posting, post, post_one
from credits.models import Account, AccountKind, EntryType, LedgerEntry, PoolingChange
from credits.routing import funding_kind, funds_usage
from offices.locks import lock_company
from offices.models import Company, CreditKind, Office

POOLING_PERMISSION = "offices.change_pooling"


def _lock_accounts(company: Company, **filters) -> list[Account]:
    accounts = list(
        Account.objects.select_for_update().filter(company=company, **filters).order_by("pk")
    )
    return accounts


def parse_credits(value, *, field: str = "amount", allow_negative: bool = False) -> Decimal:
    """A positive amount of credits with at most 4 decimal places, within the configured
    maximum; anything else is a ValidationFailed naming the field."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        raise ValidationFailed(
            f"{field}: not a number.", [{"field": field, "message": "Enter a number."}]
        ) from None
    problem = None
    limit = Decimal(settings.CREDITS_PURCHASE_MAX)
    if not amount.is_finite():
        problem = "Enter a finite number."
    elif amount == 0 or (amount < 0 and not allow_negative):
        problem = "Must be greater than zero." if not allow_negative else "Must not be zero."
    elif abs(amount) > limit:
        problem = f"At most {limit:,} {credits_noun(limit)} at a time."
    elif amount != amount.quantize(Decimal("0.0001")):
        problem = "At most 4 decimal places."
    if problem:
        raise ValidationFailed(f"{field}: {problem}", [{"field": field, "message": problem}])
    return q(amount)


IDEMPOTENCY_KEY_MAX = LedgerEntry._meta.get_field("idempotency_key").max_length


def _clean_text(value, *, field: str, max_length: int | None = None) -> str:
    """Free text the database can store: a string, without NUL characters (PostgreSQL
    refuses them), within the column's length; anything else is a ValidationFailed."""
    if value is None:
        return ""
    problem = None
    if not isinstance(value, str):
        problem = "Must be text."
    elif "\x00" in value:
        problem = "Must not contain NUL characters."
    elif max_length is not None and len(value) > max_length:
        problem = f"At most {max_length} characters."
    if problem:
        raise ValidationFailed(f"{field}: {problem}", [{"field": field, "message": problem}])
    return value


def funding_account_for(*, company: Company, kind: str, office: Office | None) -> Account:
    """Which balance receives standard or AI credits right now (SPEC §2): the pool while
    pooling is on, the chosen office's wallet while it is off; AI credits always go to the
    company's AI agent account held by the primary office."""
    if office is not None and office.company_id != company.pk:
        raise NotFound("No such office.")
    account_kind = funding_kind(kind, pooling=company.pooling_enabled)
    if account_kind != AccountKind.WALLET:
        return Account.objects.get(company=company, kind=account_kind)
    if office is None:
        raise ValidationFailed(
            "office: pooling is off, so choose the office whose wallet receives the credits.",
            [{"field": "office", "message": "Choose an office: pooling is off."}],
        )
    return Account.objects.get(company=company, kind=AccountKind.WALLET, office=office)


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def credits_add(
    *,
    company: Company,
    amount,
    actor,
    entry_type: str = EntryType.PURCHASE,
    kind: str = CreditKind.STANDARD,
    office: Office | None = None,
    memo: str = "",
    reference: str = "",
    idempotency_key: str = "",
) -> LedgerEntry:
    """Record a purchase or grant of credits into the balance that receives them now.
    With an idempotency key, a repeated submit returns the first entry and adds nothing."""
    if entry_type not in (EntryType.PURCHASE, EntryType.GRANT):
        # Auto-recharges come only from a rule, inside a charging transaction (§8.1).
        raise ValidationFailed("entry_type: only purchases and grants add credits.")
    if kind not in CreditKind.values:
        raise ValidationFailed(f"kind: unknown credit kind {kind!r}.")
    amount = parse_credits(amount)
    memo = _clean_text(memo, field="memo")
    idempotency_key = _clean_text(
        idempotency_key, field="idempotency_key", max_length=IDEMPOTENCY_KEY_MAX
    )
    company = lock_company(company.pk, exclusive=False)
    if idempotency_key:
        earlier = LedgerEntry.objects.filter(
            company=company, idempotency_key=idempotency_key
        ).first()
        if earlier is not None:
            return earlier
    accounts_ensure(company=company)
    target = funding_account_for(company=company, kind=kind, office=office)
    (account,) = _lock_accounts(company, pk=target.pk)
    return post_one(
        account=account,
        amount=amount,
        entry_type=entry_type,
        actor=actor,
        memo=memo,
        reference=reference,
        idempotency_key=idempotency_key,
    )


def credits_purchase(**kwargs) -> LedgerEntry:
    """A purchase of credits (see credits_add)."""
    return credits_add(entry_type=EntryType.PURCHASE, **kwargs)


def credits_grant(**kwargs) -> LedgerEntry:
    """Free credits granted by customer care (see credits_add)."""
    return credits_add(entry_type=EntryType.GRANT, **kwargs)


@retry_on_conflict()
@transaction.atomic
def credits_adjust(*, account: Account, amount, memo: str, actor) -> LedgerEntry:
    """A signed correction with a required memo. Only the balance that funds usage now
    may be adjusted (the pool while pooling is on, wallets while off, AI credits any time),
    and no balance may go below zero."""
    memo = _clean_text(memo, field="memo")
    if not memo.strip():
        raise ValidationFailed(
            "memo: say why the balance is adjusted.",
            [{"field": "memo", "message": "A memo is required for adjustments."}],
        )
    amount = parse_credits(amount, allow_negative=True)
    company = lock_company(account.company_id, exclusive=False)
    if not funds_usage(account.kind, pooling=company.pooling_enabled):
        if account.kind == AccountKind.WALLET:
            raise ValidationFailed("Pooling is on: office wallets stay empty; adjust the pool.")
        raise ValidationFailed("Pooling is off: adjust an office wallet, not the pool.")
    (locked,) = _lock_accounts(company, pk=account.pk)
    return post_one(
        account=locked,
        amount=amount,
        entry_type=EntryType.ADJUSTMENT,
        actor=actor,
        memo=memo.strip(),
    )


@dataclass(frozen=True)
class Move:
    source: str
    target: str
    amount: Decimal


def pooling_preview(*, company: Company, enabled: bool) -> list[Move]:
    """What turning pooling to `enabled` would move right now (for the confirmation page)."""
    if company.pooling_enabled == enabled:
        return []
    accounts = Account.objects.filter(
        company=company, kind__in=[AccountKind.POOL, AccountKind.WALLET]
    ).select_related("office")
    pool_label = "Company pool"
    if enabled:
        return [
            Move(source=f"{a.office.name} wallet", target=pool_label, amount=a.balance)
            for a in sorted(accounts, key=lambda a: a.office.name if a.office else "")
            if a.kind == AccountKind.WALLET
        ]
    primary = Office.objects.get(company=company, is_primary=True)
    pool = next((a for a in accounts if a.kind == AccountKind.POOL), None)
    return [
        Move(
            source=pool_label,
            target=f"{primary.name} wallet",
            amount=pool.balance if pool else ZERO,
        )
    ]


@retry_on_conflict()
@transaction.atomic
def pooling_set(*, company: Company, enabled: bool, actor, reason: str) -> PoolingChange | None:
    """Turn pooling on (every wallet moves into the pool) or off (the pool moves into the
    primary office's wallet) in one atomic step, with its audit record. Only holders of
    the pooling permission may do it; setting the current state changes nothing."""
    if actor is None or not actor.has_perm(POOLING_PERMISSION):
        raise PermissionDenied("Only Customer Care can turn pooling on or off.")
    if not isinstance(enabled, bool):
        # A string such as "False" or "0" is truthy here but saved as False: it would move
        # the wallets into the pool and leave the flag off, stranding the credits.
        raise ValidationFailed(
            "enabled: must be true or false.",
            [{"field": "enabled", "message": "Must be true or false."}],
        )
    reason = _clean_text(reason, field="reason").strip()
    if not reason:
        raise ValidationFailed(
            "reason: say why pooling is changed.",
            [{"field": "reason", "message": "A reason is required."}],
        )
    company = lock_company(company.pk, exclusive=True)
    if company.pooling_enabled == enabled:
        return None
    accounts_ensure(company=company)
    accounts = _lock_accounts(company, kind__in=[AccountKind.POOL, AccountKind.WALLET])
    pool = next(a for a in accounts if a.kind == AccountKind.POOL)
    offices = {o.pk: o for o in Office.objects.filter(company=company)}
    if enabled:
        pairs = [(a, pool) for a in accounts if a.kind == AccountKind.WALLET and a.balance > 0]
    else:
        primary = next((o for o in offices.values() if o.is_primary), None)
        if primary is None:
            raise ValidationFailed("The company has no primary office to receive the pool.")
        wallet = next(
            a for a in accounts if a.kind == AccountKind.WALLET and a.office_id == primary.pk
        )
        pairs = [(pool, wallet)] if pool.balance > 0 else []

    def label(account: Account) -> str:
        return (
            "Company pool"
            if account.kind == AccountKind.POOL
            else f"{offices[account.office_id].name} wallet"
        )

    moves = [
        {"from": label(src), "to": label(dst), "amount": str(src.balance)} for src, dst in pairs
    ]
    total = sum((src.balance for src, _ in pairs), ZERO)
    change = PoolingChange.objects.create(
        company=company,
        enabled=enabled,
        reason=reason,
        amount_moved=total,
        moves=moves,
        changed_by=actor,
    )
    memo = f"Pooling turned {'on' if enabled else 'off'}: {reason}"
    details = {"memo": memo, "reference": f"pooling-change:{change.pk}", "pooling_change": change}
    postings = []
    for src, dst in pairs:
        amount = src.balance
        postings += [
            Posting(account=src, amount=-amount, entry_type=EntryType.POOLING_TRANSFER, **details),
            Posting(account=dst, amount=amount, entry_type=EntryType.POOLING_TRANSFER, **details),
        ]
    # Wallet thresholds sleep while pooling is on, the pool's while it is off (SPEC §8.2):
    # switched before the transfers, so alerts follow the balances as they end up.
    thresholds_refresh(company=company, accounts=accounts, pooling=enabled, sync=False)
    post(postings, actor=actor)
    alerts_sync(accounts)
    if not enabled:  # no pool draws, so no office is capped out (SPEC §8.3)
        pool_cap_alerts_resolve(company_id=company.pk)
    Company.objects.filter(pk=company.pk).update(
        pooling_enabled=enabled, pooling_changed_at=timezone.now()
    )
    _pooling_log_entry(actor=actor, company=company, change=change)
    return change


def _pooling_log_entry(*, actor, company: Company, change: PoolingChange) -> LogEntry:
    """The admin audit trail's line for one pooling toggle, written with the change."""
    moved = "; ".join(f"{m['from']} → {m['to']}: {m['amount']}" for m in change.moves)
    message = (
        f"Pooling turned {'on' if change.enabled else 'off'}. Reason: {change.reason}"
        f" — moved {change.amount_moved} {credits_noun(change.amount_moved)}"
        + (f" ({moved})." if moved else ".")
    )
    # Built by hand so the entry takes the (possibly simulated) current time: LogEntry's
    # own default captured timezone.now at import.
    return LogEntry.objects.create(
        user_id=actor.pk,
        content_type_id=ContentType.objects.get_for_model(company).pk,
        object_id=str(company.pk),
        object_repr=str(company)[:200],
        action_flag=CHANGE,
        change_message=message,
        action_time=timezone.now(),
    )
