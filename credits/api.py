"""Balance endpoint: pooling state, balances and this period's allowances of a company,
read through the same selector as the portal's balance page."""

from __future__ import annotations

from ninja import Router, Schema
from pydantic import BaseModel, Field

from core.api_schemas import Amount, ErrorOut, Period, money
from core.money import ZERO
from credits.selectors import BalanceOverview, balance_overview
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


class BalanceOut(Schema):
    company: str
    period: Period
    pooling_enabled: bool
    pool_balance: Amount
    ai_agent_office: str = Field(description="The primary office, which holds AI credits.")
    ai_agent_balance: Amount
    offices: list[OfficeBalanceOut]


def balance_out(overview: BalanceOverview) -> dict:
    """The balance page's figures in the shape of BalanceOut."""
    primary = overview.primary_office
    return {
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
        "kind for the current billing period, and the AI agent credits of the primary office."
    ),
)
def balance(request):
    return balance_out(balance_overview(company_scope(request.auth.company)))
