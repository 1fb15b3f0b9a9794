"""Reads of usage records for the portal, always through a PortalScope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Max, Min, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.immutable import ImmutableQuerySet
from core.money import ZERO
from credits.models import Allowance
from offices.models import Office
from offices.selectors import PortalScope
from usage.filters import FUNDED_BY_FIELD
from usage.models import FUNDED_BITS, UsageDay, UsageRecord
from usage.search import number_condition, numbers_indexed_for

PARTS = ("allowance_part", "pool_part", "wallet_part", "ai_part", "uncovered")


# A history page this many rows or more from the first is read in two steps (below).
DEFERRED_FROM = 1_000


class HistoryQuerySet(ImmutableQuerySet):
    """The history's records. A page far from the first (a slice starting DEFERRED_FROM
    rows or more in) is read in two steps: the keys of its rows first, in the page's
    order, which the time indexes answer alone (an index-only scan over the rows
    skipped); then those rows, with their office and service. In one query, PostgreSQL
    joined every skipped row to its office and service: page 2,000 of a 2M-record
    company took 73 ms in the 10M bench, its keys about 4 ms."""

    def __getitem__(self, k):
        if not (
            isinstance(k, slice)
            and k.step is None
            and (k.start or 0) >= DEFERRED_FROM
            and self._result_cache is None
        ):
            return super().__getitem__(k)
        keys_only = self.values_list("pk", "occurred_at")
        keys = list(super(HistoryQuerySet, keys_only).__getitem__(k))
        if not keys:
            return []
        moments = [moment for _, moment in keys]
        # The moments let PostgreSQL read only the months (partitions) the page spans.
        rows = self.filter(
            pk__in=[pk for pk, _ in keys],
            occurred_at__gte=min(moments),
            occurred_at__lte=max(moments),
        ).order_by()
        by_pk = {row.pk: row for row in rows}
        return [by_pk[pk] for pk, _ in keys]


def usage_history_for(scope: PortalScope) -> QuerySet[UsageRecord]:
    """Usage records the user may see, newest first, with what a row shows loaded."""
    records = HistoryQuerySet(model=UsageRecord)
    return (
        scope.restrict(records.all())
        .select_related("office", "service")
        .order_by("-occurred_at", "-id")
    )


def usage_totals(queryset: QuerySet[UsageRecord]) -> dict[str, Decimal | int]:
    """Count, cost and its split over a (filtered) set, in one aggregate query."""
    sums = {name: Sum(name) for name in ("cost", *PARTS)}
    totals = queryset.order_by().aggregate(events=Count("id"), **sums)
    return {k: (v if v is not None else ZERO) for k, v in totals.items()}


# Filters that select whole offices and credit kinds only: their totals are the sums of
# the per-period rollups the allocation keeps on Allowance rows.
ROLLUP_FILTERS = {"office", "credit_kind"}
# Filters that select whole (office, service, credit kind, local day, funding split)
# groups: their totals are the sums of the day rollups (UsageDay).
DAY_ROLLUP_FILTERS = {"office", "service", "credit_kind", "funded_by", "date_from", "date_to"}


def _zero_none(totals: dict) -> dict[str, Decimal | int]:
    totals["events"] = totals["events"] or 0
    return {k: (v if v is not None else ZERO) for k, v in totals.items()}


def usage_totals_for(scope: PortalScope, filterset) -> dict[str, Decimal | int]:
    """Totals of a valid filtered history, exact, in one or two queries. With no filter
    but office and credit kind, they are read from the allowance rollups (a few rows per
    office and month); with filters that select whole days, offices, services, kinds and
    funding splits, from the day rollups; otherwise every matching record is summed."""
    cleaned = filterset.form.cleaned_data if filterset.is_bound else {}
    active = {name for name, value in cleaned.items() if value not in (None, "")}
    if active <= ROLLUP_FILTERS:
        return _allowance_totals(scope, cleaned)
    if active <= DAY_ROLLUP_FILTERS:
        totals = _day_totals(scope, cleaned)
        if totals is not None:
            return totals
    if "q" in active:
        totals = _search_totals(filterset, cleaned["q"].strip())
        if totals is not None:
            return totals
    return usage_totals(filterset.qs)


def _search_totals(filterset, text: str) -> dict[str, Decimal | int] | None:
    """Totals of a text search as two disjoint sums in one query: the records of the
    matching labels (an index-only range of `usage_company_label`), plus the records
    whose number matches but whose label does not (the trigram index on numbers). None
    when the labels are too many to list or the number index cannot help."""
    if not numbers_indexed_for(text):
        return None
    others = filterset.queryset_without("q").order_by()
    labels = filterset.search_labels(text, others.db)
    if labels is None:
        return None
    # COUNT(*), not COUNT(id): the covering index holds no id.
    sums = {"events": Count("*"), **{name: Sum(name) for name in ("cost", *PARTS)}}
    by_label = others.filter(user_label__in=labels)
    by_number_only = others.filter(number_condition(text)).exclude(user_label__in=labels)
    # Grouped by company (one group: the scope's), so each part is one row or none.
    rows = (
        by_label.values("company")
        .annotate(**sums)
        .union(by_number_only.values("company").annotate(**sums), all=True)
    )
    totals = {"events": 0, **dict.fromkeys(("cost", *PARTS), ZERO)}
    for row in rows:
        for name in totals:
            totals[name] += row[name] or 0
    return totals


def _allowance_totals(scope: PortalScope, cleaned: dict) -> dict[str, Decimal | int]:
    # Read where the history's rows are read (the replica, when there is one): rollups and
    # records are written in one transaction, so the totals match the rows shown.
    history_db = UsageRecord.objects.all().db
    rows = scope.restrict(Allowance.objects.using(history_db))
    if cleaned.get("office"):
        rows = rows.filter(office=cleaned["office"])
    if cleaned.get("credit_kind"):
        rows = rows.filter(kind=cleaned["credit_kind"])
    return _zero_none(
        rows.aggregate(
            events=Sum("events"),
            cost=Sum("cost_total"),
            allowance_part=Sum("used"),
            pool_part=Sum("pool_drawn"),
            wallet_part=Sum("wallet_drawn"),
            ai_part=Sum("ai_drawn"),
            uncovered=Sum("uncovered"),
        )
    )


def _day_totals(scope: PortalScope, cleaned: dict) -> dict[str, Decimal | int] | None:
    """Totals from the day rollups, or None when they cannot answer exactly: a date
    filter while some rollups count days in a time zone the company no longer has."""
    rows = scope.restrict(UsageDay.objects.all())
    if cleaned.get("office"):
        rows = rows.filter(office=cleaned["office"])
    if cleaned.get("service"):
        rows = rows.filter(service=cleaned["service"])
    if cleaned.get("credit_kind"):
        rows = rows.filter(credit_kind=cleaned["credit_kind"])
    if cleaned.get("funded_by"):
        bit = FUNDED_BITS[FUNDED_BY_FIELD[cleaned["funded_by"]]]
        rows = rows.filter(
            funded__in=[m for m in range(1, 2 * max(FUNDED_BITS.values())) if m & bit]
        )
    start, end = cleaned.get("date_from"), cleaned.get("date_to")
    if start or end:
        tz = scope.company.billing_timezone
        zones = UsageDay.objects.filter(company=scope.company).aggregate(
            first=Min("tz"), last=Max("tz")
        )
        if zones["first"] not in (None, tz) or zones["last"] not in (None, tz):
            return None
        rows = rows.filter(tz=tz)
        if start:
            rows = rows.filter(day__gte=start)
        if end:
            rows = rows.filter(day__lte=end)
    return _zero_none(rows.aggregate(events=Sum("events"), **{n: Sum(n) for n in ("cost", *PARTS)}))


def usage_by_service(scope: PortalScope, office: Office, period: dt.date) -> list[dict]:
    """This period's usage of one office per service, with each funding source's own sum
    (one grouped query). Every figure is a sum of the records' parts, so what paid is
    named by the record, never by today's pooling state."""
    return list(
        scope.restrict(UsageRecord.objects.all())
        .filter(office=office, period=period)
        .values("service__name", "service__unit", "credit_kind")
        .annotate(
            events=Count("id"),
            quantity=Sum("quantity"),
            cost=Sum("cost"),
            **{name: Sum(name) for name in PARTS},
        )
        .order_by("-cost", "service__name")
    )


@dataclass(frozen=True)
class DayUsage:
    """One local day's cost of one office, split by what paid it."""

    day: dt.date
    allowance_part: Decimal = ZERO
    pool_part: Decimal = ZERO
    wallet_part: Decimal = ZERO
    ai_part: Decimal = ZERO
    uncovered: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return sum((getattr(self, name) for name in PARTS), ZERO)


def daily_usage(scope: PortalScope, office: Office, days: int = 30, now=None) -> list[DayUsage]:
    """Cost per day for the last `days` days (company time zone), split into the five
    parts the records name (allowance, pool, wallet, AI credits, uncovered); days without
    usage are zero. Read from the day rollups (a few rows a day); from the records only
    when some rollup of these days counts them in a time zone the company no longer has."""
    tz = scope.company.tz
    today = timezone.localtime(now or timezone.now(), tz).date()
    first = today - dt.timedelta(days=days - 1)
    sums = {name: Sum(name) for name in PARTS}
    rollups = scope.restrict(UsageDay.objects.all()).filter(
        office=office, day__gte=first - dt.timedelta(days=1)
    )
    rows = list(rollups.values("day", "tz").annotate(**sums).order_by("day"))
    if any(r["tz"] != scope.company.billing_timezone for r in rows):
        start = dt.datetime.combine(first, dt.time.min, tzinfo=tz)
        rows = list(
            scope.restrict(UsageRecord.objects.all())
            .filter(office=office, occurred_at__gte=start)
            .annotate(day=TruncDate("occurred_at", tzinfo=tz))
            .values("day")
            .annotate(**sums)
            .order_by("day")
        )
    by_day = {r["day"]: r for r in rows}
    result = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        r = by_day.get(day, {})
        result.append(DayUsage(day, **{name: r.get(name) or ZERO for name in PARTS}))
    return result
