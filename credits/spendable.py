"""What an office can spend right now before its usage goes uncovered (SPEC §12): the
allowance it has left this period, plus what its funding balance would pay under the
allocation rule of §3 (the pool up to the office's cap room while pooling is on, its own
wallet while it is off, the primary office's AI agent credits for AI usage).

A telephony switch reads it before placing a call, so it is read from the primary
database (`DEFAULT_DB_ALIAS`), never from a replica that may lag behind the charges, in
three small queries: the office, this period's allowance row, the funding account."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS

from core.errors import NotFound
from core.money import ZERO
from credits.allocation import cap_room
from credits.allowances import included_from
from credits.models import Account, AccountKind, Allowance, PoolCap
from credits.periods import billing_period
from offices.models import Company, CreditKind, Office, OfficeAddOn


@dataclass(frozen=True)
class Spendable:
    office: str
    credit_kind: str
    period: str  # YYYY-MM, the company's billing month in progress
    allowance_remaining: Decimal
    funded_by: str  # pool, wallet or ai_agent
    balance: Decimal  # of that funding account
    pool_cap_room: Decimal | None  # pooled standard credits under a cap; else None
    spendable: Decimal


def office_spendable(*, company: Company, office_slug: str, credit_kind: str) -> Spendable:
    """The credits `office_slug` of `company` can spend of `credit_kind` before usage goes
    uncovered; NotFound when the company has no such office."""
    db = DEFAULT_DB_ALIAS
    office = (
        Office.objects.using(db)
        .filter(company=company, slug=office_slug)
        .select_related("plan")
        .only("pk", "slug", "plan__included_standard", "plan__included_ai_agent")
        .first()
    )
    if office is None:
        raise NotFound("No such office.")
    period = billing_period(company).start
    row = (
        Allowance.objects.using(db)
        .filter(office=office, kind=credit_kind, period=period)
        .values_list("included", "used", "pool_cap", "pool_drawn")
        .first()
    )
    if row is None:  # nothing charged this period yet: what charging will create
        addons = (
            (oa.addon, oa.quantity)
            for oa in OfficeAddOn.objects.using(db).filter(office=office).select_related("addon")
        )
        included = included_from(office.plan.included(credit_kind), addons, credit_kind)
        cap = PoolCap.objects.using(db).filter(office=office).values_list("cap", flat=True).first()
        row = (included, ZERO, cap, ZERO)
    included, used, cap, pool_drawn = row
    allowance_left = max(included - used, ZERO)
    if credit_kind == CreditKind.AI_AGENT:
        account_filter = {"kind": AccountKind.AI_AGENT}
    elif company.pooling_enabled:
        account_filter = {"kind": AccountKind.POOL}
    else:
        account_filter = {"kind": AccountKind.WALLET, "office": office}
    balance = (
        Account.objects.using(db)
        .filter(company=company, **account_filter)
        .values_list("balance", flat=True)
        .first()
    )
    balance = max(balance or ZERO, ZERO)
    room = None
    funded = balance
    if account_filter["kind"] == AccountKind.POOL:
        room = cap_room(cap, pool_drawn)
        if room is not None:
            funded = min(balance, room)
    return Spendable(
        office=office.slug,
        credit_kind=credit_kind,
        period=f"{period:%Y-%m}",
        allowance_remaining=allowance_left,
        funded_by=account_filter["kind"],
        balance=balance,
        pool_cap_room=room,
        spendable=allowance_left + funded,
    )
