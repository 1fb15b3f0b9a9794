"""What an office can spend right now before its usage goes uncovered (SPEC §12): the
allowance it has left this period, plus what its funding balance would pay under the
allocation rule of §3 (the pool up to the office's cap room while pooling is on, its own
wallet while it is off, the primary office's AI agent credits for AI usage).

A telephony switch reads it before placing a call, so it is read from the primary
database (`DEFAULT_DB_ALIAS`), never from a replica that may lag behind the charges, in
one statement: the office, this period's allowance row and the funding account."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, connections

from core.errors import NotFound
from core.money import ZERO, q
from credits.allocation import cap_room
from credits.allowances import included_from
from credits.models import Account, AccountKind, Allowance, PoolCap
from credits.periods import billing_period
from offices.models import Company, CreditKind, Office, OfficeAddOn, Plan


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


# One statement: the office (with its plan's allowance), this period's allowance row and
# the funding balance. The wallet is the office's own; the pool and the AI account are
# the company's one account of that kind.
_SQL = """
SELECT o.id, o.slug, p.included_standard, p.included_ai_agent,
       a.included, a.used, a.pool_cap, a.pool_drawn, f.balance
FROM {office} o
JOIN {plan} p ON p.id = o.plan_id
LEFT JOIN {allowance} a ON a.office_id = o.id AND a.kind = %s AND a.period = %s
LEFT JOIN {account} f ON f.company_id = o.company_id AND f.kind = %s
     AND (%s OR f.office_id = o.id)
WHERE o.company_id = %s AND o.slug = %s
"""


def office_spendable(*, company: Company, office_slug: str, credit_kind: str) -> Spendable:
    """The credits `office_slug` of `company` can spend of `credit_kind` before usage goes
    uncovered; NotFound when the company has no such office."""
    connection = connections[DEFAULT_DB_ALIAS]
    period = billing_period(company).start
    if credit_kind == CreditKind.AI_AGENT:
        funded_by = AccountKind.AI_AGENT
    elif company.pooling_enabled:
        funded_by = AccountKind.POOL
    else:
        funded_by = AccountKind.WALLET
    sql = _SQL.format(
        office=Office._meta.db_table,
        plan=Plan._meta.db_table,
        allowance=Allowance._meta.db_table,
        account=Account._meta.db_table,
    )
    params = [
        credit_kind,
        connection.ops.adapt_datefield_value(period),
        funded_by,
        funded_by != AccountKind.WALLET,
        company.pk,
        office_slug,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        found = cursor.fetchone()
    if found is None:
        raise NotFound("No such office.")
    office_id, slug, plan_standard, plan_ai, included, used, cap, pool_drawn, balance = found
    if included is None:  # nothing charged this period yet: what charging will create
        plan_included = plan_ai if credit_kind == CreditKind.AI_AGENT else plan_standard
        addons = (
            (oa.addon, oa.quantity)
            for oa in OfficeAddOn.objects.using(DEFAULT_DB_ALIAS)
            .filter(office_id=office_id)
            .select_related("addon")
        )
        included = included_from(_decimal(plan_included), addons, credit_kind)
        used, pool_drawn = ZERO, ZERO
        cap = (
            PoolCap.objects.using(DEFAULT_DB_ALIAS)
            .filter(office_id=office_id)
            .values_list("cap", flat=True)
            .first()
        )
    allowance_left = max(_decimal(included) - _decimal(used), ZERO)
    balance = max(_decimal(balance), ZERO)
    room = None
    funded = balance
    if funded_by == AccountKind.POOL:
        room = cap_room(None if cap is None else _decimal(cap), _decimal(pool_drawn))
        if room is not None:
            funded = min(balance, room)
    return Spendable(
        office=slug,
        credit_kind=credit_kind,
        period=f"{period:%Y-%m}",
        allowance_remaining=allowance_left,
        funded_by=funded_by,
        balance=balance,
        pool_cap_room=room,
        spendable=allowance_left + funded,
    )


def _decimal(value) -> Decimal:
    """A credits amount as read by a raw cursor (SQLite gives floats or text)."""
    if value is None:
        return ZERO
    return value if type(value) is Decimal else q(Decimal(str(value)))
