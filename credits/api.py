"""Balance endpoint: pooling state, balances and this period's allowances of a company."""

from __future__ import annotations

from django.utils import timezone
from ninja import Router

from core.money import ZERO
from credits.models import Account, AccountKind, Allowance
from offices.models import Company, CreditKind, Office
from usage.api_schemas import BalanceOut, ErrorOut, money
from usage.services import included_credits, period_of

router = Router(tags=["balance"])


def balance_overview(company: Company) -> dict:
    """Balances and current-period allowances of every office, in a fixed number of
    queries: a period without an allowance row yet shows the plan's credits, none used."""
    period = period_of(timezone.now(), company.tz)
    offices = list(
        Office.objects.filter(company=company)
        .select_related("plan")
        .prefetch_related("office_addons__addon")
        .order_by("-is_primary", "name")
    )
    accounts = list(Account.objects.filter(company=company))
    pool = next((a.balance for a in accounts if a.kind == AccountKind.POOL), ZERO)
    ai = next((a.balance for a in accounts if a.kind == AccountKind.AI_AGENT), ZERO)
    wallets = {a.office_id: a.balance for a in accounts if a.kind == AccountKind.WALLET}
    rows = {
        (a.office_id, a.kind): a for a in Allowance.objects.filter(company=company, period=period)
    }
    primary = next((o for o in offices if o.is_primary), None)

    def allowance(office: Office, kind: str) -> dict:
        row = rows.get((office.pk, kind))
        included = row.included if row else included_credits(office, kind)
        used = row.used if row else ZERO
        return {
            "included": money(included),
            "used": money(used),
            "remaining": money(included - used),
            "uncovered": money(row.uncovered if row else ZERO),
        }

    return {
        "company": company.slug,
        "period": f"{period:%Y-%m}",
        "pooling_enabled": company.pooling_enabled,
        "pool_balance": money(pool),
        "ai_agent_office": primary.slug if primary else "",
        "ai_agent_balance": money(ai),
        "offices": [
            {
                "office": office.slug,
                "name": office.name,
                "is_primary": office.is_primary,
                "wallet_balance": money(wallets.get(office.pk, ZERO)),
                "allowances": {kind: allowance(office, kind) for kind in CreditKind.values},
            }
            for office in offices
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
    return balance_overview(request.auth.company)
