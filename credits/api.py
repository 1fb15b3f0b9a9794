"""Balance endpoint: pooling state, balances and this period's allowances of a company."""

from __future__ import annotations

from django.db.models import prefetch_related_objects
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
        .order_by("-is_primary", "name")
    )
    # Plain values, not model instances: there are a few for each of many offices.
    balances = list(
        Account.objects.filter(company=company).values_list("kind", "office_id", "balance")
    )
    pool = next((b for k, _, b in balances if k == AccountKind.POOL), ZERO)
    ai = next((b for k, _, b in balances if k == AccountKind.AI_AGENT), ZERO)
    wallets = {o: b for k, o, b in balances if k == AccountKind.WALLET}
    rows = {
        (office_id, kind): (included, used, uncovered)
        for office_id, kind, included, used, uncovered in Allowance.objects.filter(
            company=company, period=period
        )
        .order_by()
        .values_list("office_id", "kind", "included", "used", "uncovered")
    }
    kinds = CreditKind.values  # built anew on each access
    # Add-ons matter only for the offices without an allowance row yet this period.
    prefetch_related_objects(
        [o for o in offices if any((o.pk, k) not in rows for k in kinds)],
        "office_addons__addon",
    )
    primary = next((o for o in offices if o.is_primary), None)

    def allowance(office: Office, kind: str) -> dict:
        row = rows.get((office.pk, kind))
        included, used, uncovered = row if row else (included_credits(office, kind), ZERO, ZERO)
        return {
            "included": money(included),
            "used": money(used),
            "remaining": money(included - used),
            "uncovered": money(uncovered),
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
                "allowances": {kind: allowance(office, kind) for kind in kinds},
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
