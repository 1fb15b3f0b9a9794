"""Reads of usage records for the portal, always through a PortalScope."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, F, QuerySet, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from core.money import ZERO
from offices.models import Office
from offices.selectors import PortalScope
from usage.models import UsageRecord

PARTS = ("allowance_part", "pool_part", "wallet_part", "ai_part", "uncovered")


def usage_history_for(scope: PortalScope) -> QuerySet[UsageRecord]:
    """Usage records the user may see, newest first, with what a row shows loaded."""
    return (
        scope.restrict(UsageRecord.objects.all())
        .select_related("office", "service")
        .order_by("-occurred_at", "-id")
    )


def usage_totals(queryset: QuerySet[UsageRecord]) -> dict[str, Decimal | int]:
    """Count, cost and its split over a (filtered) set, in one aggregate query."""
    sums = {name: Sum(name) for name in ("cost", *PARTS)}
    totals = queryset.order_by().aggregate(events=Count("id"), **sums)
    return {k: (v if v is not None else ZERO) for k, v in totals.items()}


def usage_by_service(scope: PortalScope, office: Office, period: dt.date) -> list[dict]:
    """This period's usage of one office per service (one grouped query)."""
    return list(
        scope.restrict(UsageRecord.objects.all())
        .filter(office=office, period=period)
        .values("service__name", "service__unit", "credit_kind")
        .annotate(
            events=Count("id"),
            quantity=Sum("quantity"),
            cost=Sum("cost"),
            allowance=Sum("allowance_part"),
            funded=Sum(F("pool_part") + F("wallet_part") + F("ai_part")),
            uncovered=Sum("uncovered"),
        )
        .order_by("-cost", "service__name")
    )


@dataclass(frozen=True)
class DayUsage:
    day: dt.date
    allowance: Decimal
    funded: Decimal  # from the pool, a wallet or AI credits
    uncovered: Decimal

    @property
    def total(self) -> Decimal:
        return self.allowance + self.funded + self.uncovered


def daily_usage(scope: PortalScope, office: Office, days: int = 30, now=None) -> list[DayUsage]:
    """Cost per day for the last `days` days (company time zone), split into allowance,
    pool or wallet, and uncovered; days without usage are zero."""
    tz = scope.company.tz
    today = timezone.localtime(now or timezone.now(), tz).date()
    first = today - dt.timedelta(days=days - 1)
    start = dt.datetime.combine(first, dt.time.min, tzinfo=tz)
    rows = (
        scope.restrict(UsageRecord.objects.all())
        .filter(office=office, occurred_at__gte=start)
        .annotate(day=TruncDate("occurred_at", tzinfo=tz))
        .values("day")
        .annotate(
            allowance=Sum("allowance_part"),
            funded=Sum(F("pool_part") + F("wallet_part") + F("ai_part")),
            uncovered=Sum("uncovered"),
        )
        .order_by("day")
    )
    by_day = {r["day"]: r for r in rows}
    result = []
    for i in range(days):
        day = first + dt.timedelta(days=i)
        r = by_day.get(day, {})
        result.append(
            DayUsage(
                day=day,
                allowance=r.get("allowance") or ZERO,
                funded=r.get("funded") or ZERO,
                uncovered=r.get("uncovered") or ZERO,
            )
        )
    return result
