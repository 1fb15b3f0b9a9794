"""Allowances (SPEC §2): what an office's plan and add-ons include per credit kind and
period, and the rollups kept on each office's allowance row.

A period's allowance row is created by the first event charged in it, so until then an
office's figures are its plan's credits with none used: `kind_figures` is the one place
that falls back to them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import prefetch_related_objects

from core.money import ZERO, q
from credits.models import Allowance, PoolCap
from offices.models import CreditKind, Office

# The allowance row's figures, in the order KindFigures takes them.
ALLOWANCE_FIGURES = (
    "included",
    "used",
    "cost_total",
    "pool_drawn",
    "wallet_drawn",
    "ai_drawn",
    "uncovered",
    "events",
)
# What charging adds to an allowance row (besides `events`).
ALLOWANCE_ROLLUPS = ("used", "cost_total", "pool_drawn", "wallet_drawn", "ai_drawn", "uncovered")


def included_credits(office: Office, kind: str) -> Decimal:
    """Plan allowance plus add-ons (× quantity) of one office for one credit kind."""
    addons = ((oa.addon, oa.quantity) for oa in office.office_addons.all())
    return included_from(office.plan.included(kind), addons, kind)


def included_from(plan_included: Decimal, addons, kind: str) -> Decimal:
    """What a plan including `plan_included` credits of `kind`, with `addons` ((add-on,
    quantity) pairs), includes per period: the one rule."""
    total = plan_included
    for addon, quantity in addons:
        total += addon.included(kind) * quantity
    return q(total)


@dataclass(slots=True)  # slots: the balance page makes 2 for each of many offices
class KindFigures:
    """One office's allowance of one credit kind in one period, with its rollups."""

    kind: str
    included: Decimal = ZERO
    used: Decimal = ZERO
    cost_total: Decimal = ZERO
    pool_drawn: Decimal = ZERO
    wallet_drawn: Decimal = ZERO
    ai_drawn: Decimal = ZERO
    uncovered: Decimal = ZERO
    events: int = 0

    @property
    def label(self) -> str:
        return CreditKind(self.kind).label

    @property
    def remaining(self) -> Decimal:
        return self.included - self.used

    @property
    def funded(self) -> Decimal:
        """Drawn from a balance, whichever paid (pool, wallet or AI credits)."""
        return self.pool_drawn + self.wallet_drawn + self.ai_drawn

    @property
    def percent_used(self) -> int:
        if self.included <= 0:
            return 100 if self.used > 0 else 0
        return min(100, int(self.used * 100 / self.included))

    @property
    def meter_class(self) -> str:
        """A 0–100 step of 5 for the meter's CSS width class (no inline styles under CSP)."""
        return f"w{self.percent_used - self.percent_used % 5}"


def period_figures(allowances, office_ids, included_for) -> dict[tuple[int, str], KindFigures]:
    """(office pk, kind) → one period's figures for every office of `office_ids` and
    every kind: from `allowances` (that period's rows) where a row exists, else the plan's
    credits with none used. `included_for(pks)` returns {(pk, kind): included credits};
    it is called only for offices without rows."""
    figures = {
        (office_id, kind): KindFigures(kind, *values)
        for office_id, kind, *values in allowances.order_by().values_list(
            "office_id", "kind", *ALLOWANCE_FIGURES
        )
    }
    kinds = CreditKind.values
    missing = [(pk, kind) for pk in office_ids for kind in kinds if (pk, kind) not in figures]
    if missing:
        included = included_for({pk for pk, _ in missing})
        for pk, kind in missing:
            figures[pk, kind] = KindFigures(kind, included=included[pk, kind])
    return figures


def allowances_create(*, company, keys, offices_by_pk: dict[int, Office]) -> None:
    """Create the allowance rows of `keys` (office pk, kind, period) unless they exist,
    including what each office's plan and add-ons grant (read only now: a new month)."""
    prefetch_related_objects(
        [offices_by_pk[o] for o in {o for o, _, _ in keys}], "plan", "office_addons__addon"
    )
    # The pool cap in force applies to a new period's standard rows (SPEC §8.3).
    caps = dict(
        PoolCap.objects.filter(
            office_id__in={o for o, k, _ in keys if k == CreditKind.STANDARD}
        ).values_list("office_id", "cap")
    )
    # Sorted, so two batches creating the same new rows insert them in the same order.
    Allowance.objects.bulk_create(
        [
            Allowance(
                office_id=o,
                company=company,
                kind=k,
                period=p,
                included=included_credits(offices_by_pk[o], k),
                pool_cap=caps.get(o) if k == CreditKind.STANDARD else None,
            )
            for o, k, p in sorted(keys)
        ],
        ignore_conflicts=True,
    )
