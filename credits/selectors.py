"""Reads for the balance pages: balances, this period's allowances and draws, recent
activity and run-out warnings. Every function takes a PortalScope, so what it returns
is already limited to what the user may see; query counts do not grow with offices."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import NamedTuple

from django.db.models import Sum
from django.utils import timezone

from core.money import ZERO, q
from credits.allowances import KindFigures, included_credits, included_from, period_figures
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry
from credits.periods import BillingPeriod, billing_period
from credits.routing import funds_usage
from offices.models import CreditKind, OfficeAddOn
from offices.selectors import PortalScope

BURN_WINDOW_DAYS = 7
ACTIVITY_LIMIT = 15
ACTIVITY_TYPES = [
    EntryType.PURCHASE,
    EntryType.GRANT,
    EntryType.POOLING_TRANSFER,
    EntryType.ADJUSTMENT,
    EntryType.AUTO_RECHARGE,
]


@dataclass(slots=True)
class OfficeRow:
    """One office's line on the balance pages: plain values, not model instances (the
    company page shows one for each of many offices)."""

    office_id: int
    slug: str
    name: str
    is_primary: bool
    plan: str  # the plan's name
    standard: KindFigures
    ai_agent: KindFigures
    wallet_balance: Decimal | None = None  # None: no wallet the user may see
    pool_share: Decimal | None = None  # percent of all pool draws this period
    uncovered_last: Decimal = ZERO  # uncovered overage of the previous period

    @property
    def kinds(self) -> list[KindFigures]:
        return [self.standard, self.ai_agent]

    @property
    def pool_drawn(self) -> Decimal:
        return self.standard.pool_drawn

    @property
    def share_class(self) -> str:
        share = int(self.pool_share or 0)
        return f"w{share - share % 5}"

    @property
    def uncovered(self) -> Decimal:
        return self.standard.uncovered + self.ai_agent.uncovered


class AccountBalance(NamedTuple):
    """An account as the balance page needs it (a tuple: cheaper than a model instance)."""

    pk: int
    kind: str
    office_id: int | None
    balance: Decimal


@dataclass
class RunOutWarning:
    """A funding balance that is empty or will be before the period ends. `uncovered`:
    this period's usage that went unpaid by what this balance funds (empty + uncovered is
    the most urgent case)."""

    account_label: str
    balance: Decimal
    per_day: Decimal
    runs_out_on: dt.date
    empty: bool
    uncovered: Decimal = ZERO

    @property
    def urgent(self) -> bool:
        return self.empty and self.uncovered > 0


@dataclass
class BalanceOverview:
    company: object
    period: BillingPeriod
    pooling_on: bool
    pooling_since: dt.datetime | None
    pool: AccountBalance | None
    ai_account: AccountBalance | None
    primary_office: OfficeRow | None
    rows: list[OfficeRow]
    pool_drawn_total: Decimal
    activity: list[LedgerEntry]
    warnings: list[RunOutWarning] = field(default_factory=list)
    last_period: BillingPeriod | None = None
    activity_more: bool = False  # more activity than the short list shows

    @property
    def totals(self) -> dict[str, Decimal]:
        return {
            "used": sum((r.standard.used for r in self.rows), ZERO),
            "pool_drawn": sum((r.pool_drawn for r in self.rows), ZERO),
            "wallet_drawn": sum((r.standard.wallet_drawn for r in self.rows), ZERO),
            "uncovered": sum((r.uncovered for r in self.rows), ZERO),
            "uncovered_last": sum((r.uncovered_last for r in self.rows), ZERO),
        }

    @property
    def shows_pool_drawn(self) -> bool:
        """A "from pool" column while pooling is on, or when this period has pool draws
        (pooling was turned off mid-period)."""
        return self.pooling_on or any(r.standard.pool_drawn for r in self.rows)

    @property
    def shows_wallet_drawn(self) -> bool:
        """Likewise for wallet draws (pooling was turned on mid-period)."""
        return not self.pooling_on or any(r.standard.wallet_drawn for r in self.rows)

    @property
    def combined_of(self) -> int:
        """How many balances `combined_balance` adds up (one alone needs no total)."""
        wallets = sum(1 for r in self.rows if r.wallet_balance is not None)
        return wallets + (1 if self.ai_account else 0)

    @property
    def combined_balance(self) -> Decimal:
        """What the user's visible balances hold in all while pooling is off: the wallets
        plus the AI agent credits."""
        wallets = sum((r.wallet_balance or ZERO for r in self.rows), ZERO)
        return wallets + (self.ai_account.balance if self.ai_account else ZERO)


PLAN_KINDS = (CreditKind.STANDARD, CreditKind.AI_AGENT)  # plan__included_standard, _ai_agent


def _addons_of(office_pks):
    """(office pk, add-on, quantity) of the given offices."""
    rows = OfficeAddOn.objects.filter(office_id__in=office_pks).select_related("addon")
    return [(row.office_id, row.addon, row.quantity) for row in rows]


def office_rows(scope: PortalScope, period: BillingPeriod, offices=None) -> list[OfficeRow]:
    """Allowance figures of the visible offices (or the given ones, with their plans and
    add-ons loaded) for `period`: two queries whatever the number of offices, three while
    some office has no allowance row yet this period (its add-ons are read to show what
    it includes)."""
    allowances = scope.restrict(Allowance.objects.all()).filter(period=period.start)
    kinds = CreditKind.values
    if offices is None:
        rows = list(
            scope.offices().values_list(
                "pk",
                "slug",
                "name",
                "is_primary",
                "plan__name",
                "plan__included_standard",
                "plan__included_ai_agent",
            )
        )
        office_values = [row[:5] for row in rows]
        plans = {row[0]: dict(zip(PLAN_KINDS, row[5:], strict=True)) for row in rows}

        def included_for(pks):
            # Add-ons matter only for offices without a row yet: read them only then.
            addons = defaultdict(list)
            for office_id, addon, quantity in _addons_of(pks):
                addons[office_id].append((addon, quantity))
            return {
                (pk, kind): included_from(plans[pk][kind], addons[pk], kind)
                for pk in pks
                for kind in kinds
            }

    else:
        by_pk = {o.pk: o for o in offices}
        office_values = [(o.pk, o.slug, o.name, o.is_primary, o.plan.name) for o in offices]
        allowances = allowances.filter(office_id__in=list(by_pk))

        def included_for(pks):
            return {(pk, k): included_credits(by_pk[pk], k) for pk in pks for k in kinds}

    # Plain values, not model instances: this page shows 2 rows for each of many offices.
    figures = period_figures(allowances, [pk for pk, *_ in office_values], included_for)
    return [
        OfficeRow(
            pk,
            slug,
            name,
            is_primary,
            plan,
            standard=figures[pk, CreditKind.STANDARD],
            ai_agent=figures[pk, CreditKind.AI_AGENT],
        )
        for pk, slug, name, is_primary, plan in office_values
    ]


def _visible_accounts(scope: PortalScope, office_ids=None):
    kinds = [AccountKind.POOL]
    if scope.sees_ai_credits:
        kinds.append(AccountKind.AI_AGENT)
    if office_ids is None:
        wallets = scope.restrict(Account.objects.filter(kind=AccountKind.WALLET))
    else:
        wallets = Account.objects.filter(
            company=scope.company, kind=AccountKind.WALLET, office_id__in=list(office_ids)
        )
    return Account.objects.filter(company=scope.company, kind__in=kinds) | wallets


def visible_accounts(scope: PortalScope, office_ids=None) -> list[Account]:
    """The pool, the AI agent account (if the user may see it) and the wallets of
    `office_ids` (which must already be visible offices), or of every visible office."""
    return list(_visible_accounts(scope, office_ids))


def visible_balances(scope: PortalScope) -> list[AccountBalance]:
    """What `visible_accounts(scope)` returns, as plain tuples."""
    return [
        AccountBalance(*values)
        for values in _visible_accounts(scope).values_list("pk", "kind", "office_id", "balance")
    ]


def previous_period(period: BillingPeriod) -> BillingPeriod:
    """The billing period before `period` (its `today` is its last day)."""
    end = period.start - dt.timedelta(days=1)
    return BillingPeriod(start=end.replace(day=1), end=end, today=end, days_left=0)


def uncovered_by_office(scope: PortalScope, period: BillingPeriod) -> dict[int, Decimal]:
    """Uncovered overage of each visible office in `period`, from the allowance rollups
    (one grouped query)."""
    return {
        office_id: total
        for office_id, total in scope.restrict(Allowance.objects.all())
        .filter(period=period.start)
        .values("office_id")
        .annotate(total=Sum("uncovered"))
        .values_list("office_id", "total")
        .order_by()
        if total
    }


def _account_label(account: AccountBalance, office_names: dict[int, str]) -> str:
    if account.kind == AccountKind.WALLET:
        name = office_names.get(account.office_id)
        return f"{name} wallet" if name is not None else "Office wallet"
    return AccountKind(account.kind).label


def run_out_warnings(
    accounts: list[AccountBalance],
    period: BillingPeriod,
    office_names: dict[int, str],
    now: dt.datetime | None = None,
    exposure: dict[int, Exposure] | None = None,
) -> list[RunOutWarning]:
    """Every funding balance that will be empty before the period ends at the trailing
    7-day rate at which usage drew on it (one query for all accounts), and every empty
    one that usage needs: with unpaid usage this period (the most urgent case, first) or
    with an office whose allowance is nearly used."""
    if not accounts:
        return []
    now = now or timezone.now()
    exposure = exposure or {}
    drawn = {
        row["account_id"]: -row["total"]
        for row in LedgerEntry.objects.filter(
            account_id__in=[a.pk for a in accounts],
            entry_type=EntryType.USAGE,
            created_at__gte=now - dt.timedelta(days=BURN_WINDOW_DAYS),
        )
        .values("account_id")
        .annotate(total=Sum("amount"))
        .order_by()
    }
    warnings = []
    for account in accounts:
        burned = drawn.get(account.pk, ZERO)
        per_day = q(burned / BURN_WINDOW_DAYS) if burned > 0 else ZERO
        exposed = exposure.get(account.pk)
        uncovered = exposed.uncovered if exposed else ZERO
        empty = account.balance <= 0
        if empty:
            needed = per_day > 0 or uncovered > 0 or (exposed and exposed.allowance_nearly_used)
            if not needed:
                continue
            runs_out_on = period.today
        elif per_day > 0:
            runs_out_on = period.today + dt.timedelta(days=int(account.balance / per_day))
            if runs_out_on > period.end:
                continue
        else:
            continue
        warnings.append(
            RunOutWarning(
                account_label=_account_label(account, office_names),
                balance=account.balance,
                per_day=per_day,
                runs_out_on=runs_out_on,
                empty=empty,
                uncovered=uncovered,
            )
        )
    # The most urgent first: empty with unpaid usage, then empty, then the soonest.
    warnings.sort(key=lambda w: (not w.urgent, not w.empty, w.runs_out_on))
    return warnings


# An empty balance warns once an office it pays for has used this share of its allowance:
# its next overage will go unpaid.
ALLOWANCE_NEARLY_USED = 80


@dataclass(frozen=True)
class Exposure:
    """What the offices a funding balance pays for did this period."""

    uncovered: Decimal  # usage that went unpaid
    allowance_nearly_used: bool  # the next overage will need this balance


def funding_exposure(accounts: list[AccountBalance], rows: list[OfficeRow]) -> dict[int, Exposure]:
    """Per funding balance: a wallet pays its office's standard usage, the pool every
    visible office's, the AI agent account every visible office's AI agent usage."""
    result = {}
    for account in accounts:
        if account.kind == AccountKind.WALLET:
            figures = [r.standard for r in rows if r.office_id == account.office_id]
        elif account.kind == AccountKind.POOL:
            figures = [r.standard for r in rows]
        else:
            figures = [r.ai_agent for r in rows]
        result[account.pk] = Exposure(
            uncovered=sum((f.uncovered for f in figures), ZERO),
            allowance_nearly_used=any(
                f.used > 0 and f.percent_used >= ALLOWANCE_NEARLY_USED for f in figures
            ),
        )
    return result


def activity_accounts(scope: PortalScope, accounts: list | None = None) -> list | None:
    """The balances whose ledger the user may read: None for a company admin (every
    balance of the company); for an office admin their wallets, the AI agent credits if
    they administer the primary office, and the shared pool only while it is shared.
    `accounts`: the user's visible accounts, when the caller has them already."""
    if scope.is_company_admin:
        return None
    if accounts is None:
        accounts = visible_balances(scope)
    pooling = scope.company.pooling_enabled
    return [a for a in accounts if a.kind != AccountKind.POOL or pooling]


def ledger_for(scope: PortalScope, accounts: list | None = None):
    """Every ledger entry the user may read (the activity page and its CSV), newest first,
    with what a row shows loaded. Scoped here and nowhere else."""
    entries = LedgerEntry.objects.filter(company=scope.company)
    shown = activity_accounts(scope, accounts)
    if shown is not None:
        entries = entries.filter(account_id__in=[a.pk for a in shown])
    return entries.select_related("account__office", "created_by").order_by("-created_at", "-id")


def balance_activity(
    scope: PortalScope,
    accounts: list[Account] | list[AccountBalance] | None,
    limit: int = ACTIVITY_LIMIT,
):
    """Purchases, grants, pooling transfers and adjustments of the visible balances
    (`accounts`; None: every balance of the company, which only company admins see),
    newest first."""
    entries = LedgerEntry.objects.filter(company=scope.company, entry_type__in=ACTIVITY_TYPES)
    if accounts is not None:
        entries = entries.filter(account_id__in=[a.pk for a in accounts])
    elif not scope.is_company_admin:
        raise ValueError("Only company admins see the activity of every balance.")
    return list(
        entries.select_related("account__office", "created_by").order_by("-created_at", "-id")[
            :limit
        ]
    )


def balance_overview(
    scope: PortalScope, now: dt.datetime | None = None, *, figures_only: bool = False
) -> BalanceOverview:
    """Everything the company balance page shows, limited to the user's scope;
    `figures_only` leaves out the recent activity and the run-out warnings (the API)."""
    company = scope.company
    period = billing_period(company, now)
    rows = office_rows(scope, period)
    office_names = {r.office_id: r.name for r in rows}
    accounts = visible_balances(scope)
    pool = next((a for a in accounts if a.kind == AccountKind.POOL), None)
    ai_account = next((a for a in accounts if a.kind == AccountKind.AI_AGENT), None)
    wallets = {a.office_id: a.balance for a in accounts if a.kind == AccountKind.WALLET}
    for row in rows:
        row.wallet_balance = wallets.get(row.office_id)

    if scope.is_company_admin:
        pool_drawn_total = sum((r.pool_drawn for r in rows), ZERO)
    else:
        # An office's share is of the whole company's pool draws, not of what this user sees.
        pool_drawn_total = (
            Allowance.objects.filter(
                company=company, period=period.start, kind=CreditKind.STANDARD
            ).aggregate(total=Sum("pool_drawn"))["total"]
            or ZERO
        )
    for row in rows:
        if pool_drawn_total > 0:
            row.pool_share = q(row.pool_drawn * 100 / pool_drawn_total)

    last_period = previous_period(period)
    last_uncovered = uncovered_by_office(scope, last_period)
    for row in rows:
        row.uncovered_last = last_uncovered.get(row.office_id, ZERO)

    # Only the balances that fund usage now can run out.
    funding = [a for a in accounts if funds_usage(a.kind, pooling=company.pooling_enabled)]
    exposure = funding_exposure(funding, rows)
    shown = activity_accounts(scope, accounts)

    primary = next((r for r in rows if r.is_primary), None)
    activity = [] if figures_only else balance_activity(scope, shown, limit=ACTIVITY_LIMIT + 1)
    warnings = (
        [] if figures_only else run_out_warnings(funding, period, office_names, now, exposure)
    )
    return BalanceOverview(
        company=company,
        period=period,
        pooling_on=company.pooling_enabled,
        pooling_since=company.pooling_changed_at if company.pooling_enabled else None,
        pool=pool,
        ai_account=ai_account,
        primary_office=primary,
        rows=rows,
        pool_drawn_total=pool_drawn_total,
        activity=activity[:ACTIVITY_LIMIT],
        activity_more=len(activity) > ACTIVITY_LIMIT,
        warnings=warnings,
        last_period=last_period,
    )
