"""Period statements (SPEC §9.1): what a billing period did to each balance, and to each
office's allowances, built only from what is stored.

* Balances come from the ledger: the opening balance is the `balance_after` of each
  account's last entry before the period starts, the movements are the period's entries
  summed by type, the closing balance is the `balance_after` of the last entry before the
  period ends. Opening + movements = closing is checked, not assumed.
* Offices come from their allowance rows of the period (the rollups charging keeps), and
  are checked against the day rollups of the usage records (UsageDay) of the same days:
  both are kept in the charging transaction; tests prove both equal sums of the records.

A period is the company's billing month (credits.periods); its moments are the company
time zone's midnights. Usage is in an office's statement by the period it occurred in
(the allowance it used); ledger entries by the moment they were written."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone

from core.errors import DomainError, NotFound
from core.money import ZERO, q
from credits.allowances import KindFigures
from credits.models import Account, AccountKind, EntryType, LedgerEntry
from credits.periods import BillingPeriod, period_end, period_of
from credits.selectors import office_rows
from offices.models import Company, CreditKind
from offices.selectors import PortalScope
from usage.late import LateUsage, late_usage_csv_rows, late_usage_of
from usage.models import UsageDay, UsageRecord

PERIOD_TEXT = re.compile(r"^([0-9]{4})-([0-9]{2})\Z")


class BadPeriod(DomainError):
    """A period that is not a billing month written YYYY-MM."""

    status_code = 400


def period_parse(text, *, company: Company, now: dt.datetime | None = None) -> dt.date:
    """The first day of the billing month `text` (YYYY-MM) of `company`: malformed text
    is a BadPeriod (400); a month before the company existed or after the current one
    is NotFound (404): there is nothing to state for it."""
    match = PERIOD_TEXT.match(text) if isinstance(text, str) else None
    month = int(match.group(2)) if match else 0
    if not match or not 1 <= month <= 12 or int(match.group(1)) < 1:
        raise BadPeriod(f"period: {str(text)[:20]!r} is not a billing month; write YYYY-MM.")
    start = dt.date(int(match.group(1)), month, 1)
    tz = company.tz
    first = company_first_period(company)
    current = period_of(now or timezone.now(), tz)
    if start < first:
        raise NotFound(f"{company.name} has no billing period {text}: it started in {first:%Y-%m}.")
    if start > current:
        raise NotFound(
            f"The billing period {text} has not begun (the current one is {current:%Y-%m})."
        )
    return start


def company_first_period(company: Company) -> dt.date:
    """The company's first billing period: the month it was created, or of its first
    ledger entry or usage record if earlier (data imported or replayed with its times)."""
    tz = company.tz
    first = period_of(company.created_at, tz)
    entry = (
        LedgerEntry.objects.filter(company=company)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    if entry is not None:
        first = min(first, period_of(entry, tz))
    usage = (
        UsageRecord.objects.filter(company=company)
        .order_by("period")
        .values_list("period", flat=True)
        .first()
    )
    if usage is not None:
        first = min(first, usage)
    return first


def period_bounds(start: dt.date, tz) -> tuple[dt.datetime, dt.datetime]:
    """The moments a billing period starts and ends (company time zone midnights)."""
    end = period_end(start)
    return (
        dt.datetime.combine(start, dt.time(), tzinfo=tz),
        dt.datetime.combine(end, dt.time(), tzinfo=tz),
    )


def billing_period_of(start: dt.date, now: dt.datetime, tz) -> BillingPeriod:
    """The BillingPeriod starting on `start` (as the balance selectors take it)."""
    end = period_end(start) - dt.timedelta(days=1)
    today = min(now.astimezone(tz).date(), end)
    return BillingPeriod(start=start, end=end, today=today, days_left=(end - today).days + 1)


# Balances ----------------------------------------------------------------------------

MOVEMENTS = (
    "purchases",
    "grants",
    "auto_recharges",
    "transfers_in",
    "transfers_out",
    "adjustments",
    "usage",
)
MOVEMENT_LABELS = {
    "purchases": "Purchases",
    "grants": "Grants",
    "auto_recharges": "Auto-recharges",
    "transfers_in": "Pooled in",
    "transfers_out": "Pooled out",
    "adjustments": "Adjustments",
    "usage": "Usage draws",
}
BY_TYPE = {
    EntryType.PURCHASE: "purchases",
    EntryType.GRANT: "grants",
    EntryType.AUTO_RECHARGE: "auto_recharges",
    EntryType.ADJUSTMENT: "adjustments",
    EntryType.USAGE: "usage",
}


@dataclass
class BalanceLine:
    """One balance over the period. Movements are signed (transfers out and usage draws
    are negative), so opening + their sum = closing."""

    account_id: int
    kind: str
    office_id: int | None
    label: str
    opening: Decimal = ZERO
    purchases: Decimal = ZERO
    grants: Decimal = ZERO
    auto_recharges: Decimal = ZERO
    transfers_in: Decimal = ZERO
    transfers_out: Decimal = ZERO
    adjustments: Decimal = ZERO
    usage: Decimal = ZERO
    closing: Decimal = ZERO
    entries: int = 0

    @property
    def movements(self) -> Decimal:
        return sum((getattr(self, m) for m in MOVEMENTS), ZERO)

    @property
    def ties_out(self) -> bool:
        return self.opening + self.movements == self.closing

    @property
    def difference(self) -> Decimal:
        return self.closing - self.opening - self.movements


def _last_balances(accounts: list[Account], before: dt.datetime) -> dict[int, Decimal]:
    """Each account's balance at `before`: the balance_after of its last ledger entry
    written earlier (accounts without one held 0). One query."""
    if not accounts:
        return {}
    last = LedgerEntry.objects.filter(
        company_id=accounts[0].company_id, account_id=OuterRef("pk"), created_at__lt=before
    ).order_by("-created_at", "-id")
    rows = (
        Account.objects.filter(pk__in=[a.pk for a in accounts])
        .order_by()
        .annotate(last=Subquery(last.values("balance_after")[:1]))
        .values_list("pk", "last")
    )
    return {pk: ZERO if value is None else q(value) for pk, value in rows}


def balance_lines(
    accounts: list[Account], start: dt.datetime, end: dt.datetime, labels: dict[int, str]
) -> list[BalanceLine]:
    """The statement line of each of `accounts` for the moments [start, end)."""
    opening = _last_balances(accounts, start)
    closing = _last_balances(accounts, end)
    lines = {
        a.pk: BalanceLine(
            account_id=a.pk,
            kind=a.kind,
            office_id=a.office_id,
            label=labels[a.pk],
            opening=opening[a.pk],
            closing=closing[a.pk],
        )
        for a in accounts
    }
    sums = (
        LedgerEntry.objects.filter(
            account_id__in=list(lines), created_at__gte=start, created_at__lt=end
        )
        .order_by()
        .values("account_id", "entry_type")
        .annotate(
            total=Sum("amount"),
            incoming=Sum("amount", filter=Q(amount__gt=0)),
            outgoing=Sum("amount", filter=Q(amount__lt=0)),
            n=Count("id"),
        )
    )
    for row in sums:
        line = lines[row["account_id"]]
        line.entries += row["n"]
        if row["entry_type"] == EntryType.POOLING_TRANSFER:
            line.transfers_in += q(row["incoming"] or ZERO)
            line.transfers_out += q(row["outgoing"] or ZERO)
        else:
            name = BY_TYPE[row["entry_type"]]
            setattr(line, name, getattr(line, name) + q(row["total"]))
    return list(lines.values())


# Offices -----------------------------------------------------------------------------

KIND_FIGURES = (
    "included",
    "used",
    "pool_drawn",
    "wallet_drawn",
    "ai_drawn",
    "uncovered",
    "events",
    "cost_total",
)


@dataclass
class OfficeKindLine:
    """One office's usage of one credit kind in the period: its allowance row's rollups,
    and the same figures summed from the day rollups of its usage records."""

    office_id: int
    office: str
    figures: KindFigures
    from_days: dict = field(default_factory=dict)  # events, cost and the parts, from UsageDay

    @property
    def kind(self) -> str:
        return self.figures.kind

    @property
    def label(self) -> str:
        return self.figures.label

    @property
    def parts_total(self) -> Decimal:
        f = self.figures
        return f.used + f.pool_drawn + f.wallet_drawn + f.ai_drawn + f.uncovered

    @property
    def parts_tie(self) -> bool:
        """The cost equals the sum of its parts (allowance, pool, wallet, AI, uncovered)."""
        return self.parts_total == self.figures.cost_total

    @property
    def records_tie(self) -> bool:
        """The allowance row's rollups equal the sums of the usage records' day rollups."""
        f, d = self.figures, self.from_days
        return (
            f.events == d.get("events", 0)
            and f.cost_total == d.get("cost", ZERO)
            and f.used == d.get("allowance_part", ZERO)
            and f.pool_drawn == d.get("pool_part", ZERO)
            and f.wallet_drawn == d.get("wallet_part", ZERO)
            and f.ai_drawn == d.get("ai_part", ZERO)
            and f.uncovered == d.get("uncovered", ZERO)
        )


DAY_SUMS = ("cost", "allowance_part", "pool_part", "wallet_part", "ai_part", "uncovered")


def day_sums(company: Company, office_ids, start: dt.date) -> dict[tuple[int, str], dict]:
    """(office pk, credit kind) → events, cost and parts of the usage records that occurred
    in the period starting `start`, summed from their day rollups (a record's local day
    and its period are taken in the same time zone when it is charged)."""
    rows = (
        UsageDay.objects.filter(
            company=company,
            office_id__in=list(office_ids),
            day__gte=start,
            day__lt=period_end(start),
        )
        .order_by()
        .values("office_id", "credit_kind")
        .annotate(events_sum=Sum("events"), **{f"{c}_sum": Sum(c) for c in DAY_SUMS})
    )
    return {
        (r["office_id"], r["credit_kind"]): {
            "events": r["events_sum"],
            **{c: q(r[f"{c}_sum"]) for c in DAY_SUMS},
        }
        for r in rows
    }


# The statement -----------------------------------------------------------------------


@dataclass
class Statement:
    company: Company
    period: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    complete: bool  # False for the current period (figures to date)
    office_scope: list[str]  # office names, for an office admin's statement
    balances: list[BalanceLine]
    offices: list[OfficeKindLine]
    late: LateUsage = field(default_factory=LateUsage)  # charged after the period ended

    @property
    def period_text(self) -> str:
        return f"{self.period:%Y-%m}"

    @property
    def balances_tie(self) -> bool:
        return all(line.ties_out for line in self.balances)

    @property
    def balance_totals(self) -> BalanceLine:
        total = BalanceLine(account_id=0, kind="", office_id=None, label="Total")
        for line in self.balances:
            for name in ("opening", *MOVEMENTS, "closing"):
                setattr(total, name, getattr(total, name) + getattr(line, name))
            total.entries += line.entries
        return total

    def office_totals(self, kind: str) -> KindFigures:
        total = KindFigures(kind)
        for line in self.offices:
            if line.kind == kind:
                for name in KIND_FIGURES:
                    setattr(total, name, getattr(total, name) + getattr(line.figures, name))
        return total

    @property
    def kind_totals(self) -> list[KindFigures]:
        return [self.office_totals(kind) for kind in CreditKind.values]

    @property
    def usage_cost(self) -> Decimal:
        return sum((line.figures.cost_total for line in self.offices), ZERO)

    @property
    def usage_parts(self) -> Decimal:
        return sum((line.parts_total for line in self.offices), ZERO)

    @property
    def usage_ties(self) -> bool:
        return all(line.parts_tie for line in self.offices)

    @property
    def records_tie(self) -> bool:
        return all(line.records_tie for line in self.offices)

    @property
    def ties_out(self) -> bool:
        return self.balances_tie and self.usage_ties and self.records_tie


def _account_label(account: Account, office_names: dict[int, str]) -> str:
    if account.kind == AccountKind.WALLET:
        return f"{office_names.get(account.office_id, 'Office')} wallet"
    return AccountKind(account.kind).label


def statement_build(
    scope: PortalScope, *, period: dt.date, now: dt.datetime | None = None
) -> Statement:
    """The statement of `period` (a validated first day of a month, see period_parse) as
    `scope` may see it: a company admin's covers the company (pool, wallets, AI credits,
    every office); an office admin's covers their offices' wallets and usage (and the AI
    agent credits when they administer the primary office)."""
    company = scope.company
    now = now or timezone.now()
    tz = company.tz
    starts_at, ends_at = period_bounds(period, tz)
    offices = list(scope.offices().values_list("pk", "name"))
    office_names = dict(offices)
    if scope.is_company_admin:
        accounts = Account.objects.filter(company=company)
    else:
        kinds = [AccountKind.AI_AGENT] if scope.sees_ai_credits else []
        accounts = Account.objects.filter(company=company).filter(
            Q(kind=AccountKind.WALLET, office_id__in=list(scope.office_ids)) | Q(kind__in=kinds)
        )
    order = {AccountKind.POOL: 0, AccountKind.WALLET: 1, AccountKind.AI_AGENT: 2}
    accounts = sorted(
        accounts,
        key=lambda a: (order[a.kind], office_names.get(a.office_id, ""), a.pk),
    )
    labels = {a.pk: _account_label(a, office_names) for a in accounts}
    balances = balance_lines(accounts, starts_at, ends_at, labels)
    rows = office_rows(scope, billing_period_of(period, now, tz))
    sums = day_sums(company, office_names, period)
    lines = [
        OfficeKindLine(
            office_id=row.office_id,
            office=row.name,
            figures=figures,
            from_days=sums.get((row.office_id, figures.kind), {}),
        )
        for row in rows
        for figures in row.kinds
    ]
    return Statement(
        company=company,
        period=period,
        starts_at=starts_at,
        ends_at=ends_at,
        complete=ends_at <= now,
        office_scope=[] if scope.is_company_admin else [name for _, name in offices],
        balances=balances,
        offices=lines,
        late=late_usage_of(
            company,
            period=period,
            starts_at=starts_at,
            ends_at=ends_at,
            office_ids=None if scope.is_company_admin else list(office_names),
        ),
    )


# CSV ---------------------------------------------------------------------------------


def statement_csv_rows(statement: Statement):
    """The statement as CSV rows: a balances block, an offices block, the check lines."""
    yield ["Statement", statement.company.name, statement.period_text]
    yield ["Period", statement.starts_at.isoformat(), statement.ends_at.isoformat()]
    if statement.office_scope:
        yield ["Offices", "; ".join(statement.office_scope)]
    yield from late_usage_csv_rows(statement.late, header=True)
    yield []
    yield ["Balance", "Opening", *[MOVEMENT_LABELS[m] for m in MOVEMENTS], "Closing", "Ties out"]
    for line in [*statement.balances, statement.balance_totals]:
        yield [
            line.label,
            line.opening,
            *[getattr(line, m) for m in MOVEMENTS],
            line.closing,
            "yes" if line.ties_out else f"no ({line.difference})",
        ]
    yield []
    yield [
        "Office",
        "Credit kind",
        "Included",
        "Allowance used",
        "Pool drawn",
        "Wallet drawn",
        "AI credits drawn",
        "Uncovered",
        "Events",
        "Cost",
        "Cost = parts",
        "Equals usage records",
    ]
    for line in statement.offices:
        f = line.figures
        yield [
            line.office,
            line.label,
            f.included,
            f.used,
            f.pool_drawn,
            f.wallet_drawn,
            f.ai_drawn,
            f.uncovered,
            f.events,
            f.cost_total,
            "yes" if line.parts_tie else "no",
            "yes" if line.records_tie else "no",
        ]
    for f in statement.kind_totals:
        yield [
            "Total",
            f.label,
            f.included,
            f.used,
            f.pool_drawn,
            f.wallet_drawn,
            f.ai_drawn,
            f.uncovered,
            f.events,
            f.cost_total,
        ]
    yield from late_usage_csv_rows(statement.late)
    yield []
    yield [
        "Check",
        "Usage cost",
        statement.usage_cost,
        "Sum of parts",
        statement.usage_parts,
        "Ties out" if statement.ties_out else "DOES NOT TIE OUT",
    ]


def statement_scope(scope: PortalScope, office_slug: str | None) -> PortalScope:
    """`scope`, or only the office `office_slug` of it (a visible office of the company,
    else NotFound: another company's office or an office an office admin does not run)."""
    if not office_slug:
        return scope
    slug = str(office_slug)[:60]
    office = None if "\x00" in slug else scope.offices().filter(slug=slug).first()
    if office is None:
        raise NotFound(f"No office {str(office_slug)[:60]!r} in your statement.")
    return PortalScope(
        user=scope.user,
        company=scope.company,
        is_company_admin=False,
        office_ids=frozenset({office.pk}),
        primary_office_id=scope.primary_office_id,
    )
