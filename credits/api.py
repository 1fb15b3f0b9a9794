"""Balance endpoint: pooling state, balances and this period's allowances of a company,
read through the same selector as the portal's balance page."""

from __future__ import annotations

from typing import Literal

from ninja import Query, Router, Schema
from pydantic import BaseModel, Field

from core.api_schemas import Amount, ErrorOut, Period, money
from core.money import ZERO
from credits.controls_selectors import MoneyControls, alerts_for, money_controls
from credits.models import Alert
from credits.selectors import BalanceOverview, balance_overview
from credits.spendable import office_spendable
from offices.selectors import company_scope

router = Router(tags=["balance"])


# The balance's nested parts are plain pydantic models: they are built from dicts, and a
# ninja Schema would wrap each of the hundreds of them (2 per office) in a DjangoGetter
# before validating it, most of the endpoint's time.
class AllowanceOut(BaseModel):
    included: Amount
    used: Amount
    remaining: Amount
    uncovered: Amount = Field(description="Overage no balance covered this period.")


class OfficeBalanceOut(BaseModel):
    office: str
    name: str
    is_primary: bool
    wallet_balance: Amount
    allowances: dict[str, AllowanceOut] = Field(description="Per credit kind.")


class BalanceRef(BaseModel):
    kind: str = Field(description="pool, wallet or ai_agent.")
    office: str | None = Field(description="The wallet's office; null for pool and AI credits.")


class RechargeRuleOut(BaseModel):
    balance: BalanceRef
    active: bool = Field(description="False while the balance funds nothing (pooling state).")
    threshold: Amount
    amount: Amount
    monthly_limit: int
    recharges_this_period: int


class PoolCapOut(BaseModel):
    office: str
    cap: Amount | None = Field(description="Null: no cap.")
    pool_drawn: Amount = Field(description="Drawn from the pool this period.")
    room: Amount | None = Field(description="What the office may still draw; null: no cap.")


class AlertOut(BaseModel):
    id: int
    kind: str = Field(
        description=(
            "low_balance, uncovered, or pool_cap (an office's pool cap left its usage "
            "uncovered while the pool held credits)."
        )
    )
    balance: BalanceRef = Field(description="The balance concerned; the pool for pool_cap.")
    office: str | None = Field(description="pool_cap: the capped office; null otherwise.")
    period: Period | None = Field(description="pool_cap: the billing period; null otherwise.")
    threshold: Amount | None = Field(
        description="low_balance: the warning threshold; pool_cap: the office's cap."
    )
    balance_at_open: Amount
    opened_at: str
    resolved_at: str | None


class RechargeOut(BaseModel):
    balance: BalanceRef
    amount: Amount
    balance_after: Amount
    at: str
    reference: str = Field(description="Names the rule: recharge-rule:<id>:<period>:<n>/<limit>.")


class BalanceOut(Schema):
    company: str
    period: Period
    pooling_enabled: bool
    pool_balance: Amount
    ai_agent_office: str = Field(description="The primary office, which holds AI credits.")
    ai_agent_balance: Amount
    offices: list[OfficeBalanceOut]
    alert_threshold: Amount | None = Field(description="The company's default warning level.")
    recharge_rules: list[RechargeRuleOut]
    pool_caps: list[PoolCapOut]
    open_alerts: list[AlertOut]
    recharges_this_period: list[RechargeOut]


def _ref(account) -> dict:
    return {"kind": account.kind, "office": account.office.slug if account.office_id else None}


def alert_out(alert: Alert) -> dict:
    return {
        "id": alert.pk,
        "kind": alert.kind,
        "balance": _ref(alert.account),
        "office": alert.office.slug if alert.office_id else None,
        "period": f"{alert.period:%Y-%m}" if alert.period else None,
        "threshold": money(alert.threshold),
        "balance_at_open": money(alert.balance),
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": alert.resolved_at.isoformat() if alert.resolved_at else None,
    }


def controls_out(controls: MoneyControls) -> dict:
    """The money controls (SPEC §8) in the shape of BalanceOut's last fields."""
    return {
        "alert_threshold": money(controls.default_threshold),
        "recharge_rules": [
            {
                "balance": _ref(b.account),
                "active": b.active,
                "threshold": money(b.rule.threshold),
                "amount": money(b.rule.amount),
                "monthly_limit": b.rule.monthly_limit,
                "recharges_this_period": b.recharges_this_period,
            }
            for b in controls.balances
            if b.rule is not None
        ],
        "pool_caps": [
            {
                "office": row.slug,
                "cap": money(row.cap),
                "pool_drawn": money(row.pool_drawn),
                "room": money(row.room),
            }
            for row in controls.caps
        ],
        "open_alerts": [alert_out(a) for a in controls.alerts],
        "recharges_this_period": [
            {
                "balance": _ref(e.account),
                "amount": money(e.amount),
                "balance_after": money(e.balance_after),
                "at": e.created_at.isoformat(),
                "reference": e.reference,
            }
            for e in controls.recharges
        ],
    }


def balance_out(overview: BalanceOverview, controls: MoneyControls | None = None) -> dict:
    """The balance page's figures in the shape of BalanceOut."""
    primary = overview.primary_office
    controls_part = controls_out(controls) if controls is not None else {}
    return controls_part | {
        "company": overview.company.slug,
        "period": f"{overview.period.start:%Y-%m}",
        "pooling_enabled": overview.pooling_on,
        "pool_balance": money(overview.pool.balance if overview.pool else ZERO),
        "ai_agent_office": primary.slug if primary else "",
        "ai_agent_balance": money(overview.ai_account.balance if overview.ai_account else ZERO),
        "offices": [
            {
                "office": row.slug,
                "name": row.name,
                "is_primary": row.is_primary,
                "wallet_balance": money(row.wallet_balance or ZERO),
                "allowances": {
                    figures.kind: {
                        "included": money(figures.included),
                        "used": money(figures.used),
                        "remaining": money(figures.remaining),
                        "uncovered": money(figures.uncovered),
                    }
                    for figures in row.kinds
                },
            }
            for row in overview.rows
        ],
    }


@router.get(
    "/balance",
    response={200: BalanceOut, 401: ErrorOut},
    summary="Balances and allowances",
    description=(
        "Pooling state, the company pool, each office's wallet and its allowance per credit "
        "kind for the current billing period, the AI agent credits of the primary office, "
        "and the money controls: auto-recharge rules, pool caps with the room left, open "
        "alerts and this period's auto-recharges."
    ),
)
def balance(request):
    scope = company_scope(request.auth.company)
    overview = balance_overview(scope, figures_only=True)
    offices = [(r.office_id, r.slug, r.name) for r in overview.rows]
    return balance_out(overview, money_controls(scope, offices=offices))


class AlertListOut(Schema):
    alerts: list[AlertOut]


@router.get(
    "/alerts",
    response={200: AlertListOut, 401: ErrorOut, 422: ErrorOut},
    summary="Balance alerts",
    description=(
        "The company's alerts, newest first: low balances (below the warning threshold), "
        "empty balances that left usage uncovered, and offices whose pool cap left usage "
        "uncovered (pool_cap, with office and period). `state=open` lists only open ones."
    ),
)
def alerts(request, state: Literal["open", "all"] = "all", limit: int = Query(50, ge=1, le=200)):
    found = alerts_for(company_scope(request.auth.company))
    if state == "open":
        found = found.filter(resolved_at__isnull=True)
    return {"alerts": [alert_out(a) for a in found[:limit]]}


class SpendableOut(Schema):
    office: str
    credit_kind: Literal["standard", "ai_agent"]
    period: Period
    allowance_remaining: Amount = Field(description="Included credits left this period.")
    funded_by: Literal["pool", "wallet", "ai_agent"] = Field(
        description="The balance that pays beyond the allowance (SPEC §3)."
    )
    balance: Amount = Field(description="That balance now (never below 0).")
    pool_cap_room: Amount | None = Field(
        description="Pooled standard credits: what the office's pool cap still allows; "
        "null when it has no cap, or the pool does not pay."
    )
    spendable: Amount = Field(
        description="What the office can spend now before usage goes uncovered: the "
        "allowance left plus the balance (up to the cap room)."
    )


@router.get(
    "/offices/{slug}/spendable",
    response={200: SpendableOut, 401: ErrorOut, 404: ErrorOut, 422: ErrorOut},
    summary="What an office can spend now",
    description=(
        "Credits of `credit_kind` the office can spend right now before usage goes "
        "uncovered: the allowance left this period, plus the company pool under the "
        "office's cap while pooling is on, its wallet while it is off, or the primary "
        "office's AI agent credits. Read from the primary database, never a replica."
    ),
)
def spendable(request, slug: str, credit_kind: Literal["standard", "ai_agent"]):
    found = office_spendable(
        company=request.auth.company, office_slug=slug, credit_kind=credit_kind
    )
    return {
        "office": found.office,
        "credit_kind": found.credit_kind,
        "period": found.period,
        "allowance_remaining": money(found.allowance_remaining),
        "funded_by": found.funded_by,
        "balance": money(found.balance),
        "pool_cap_room": money(found.pool_cap_room),
        "spendable": money(found.spendable),
    }
