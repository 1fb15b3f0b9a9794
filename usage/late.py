"""Late events (SPEC §10.3): the window a usage event's occurred_at must lie in, and the
mark a statement carries when usage of its period arrived after the period ended.

* `late_refusals`: the events of a batch that are older than the company's late-event
  window (`Company.late_event_window_days`, set by care: offices.services.late_window_set)
  or lie in a month whose records have been archived (usage.partitions), one error each.
  usage_ingest refuses the whole batch when there is any.
* `late_usage_of`: the usage of a period charged after the period ended (N events, X
  credits, received from … to …); statements show it on its own line and say "amended
  on" the day the last of it arrived."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Max, Min, Sum
from django.utils import timezone

from core.money import ZERO, q
from offices.models import Company
from usage.models import UsageRecord
from usage.partitions import archived_tables, month_add, month_start

# Occurred_at of a record and the billing period it was charged to agree in the company's
# time zone at the moment of charging; a later change of the zone shifts them by at most a
# day, so the records of a period are searched this much beyond its moments.
ZONE_SLACK = dt.timedelta(days=2)


def window_rule(days: int) -> str:
    return f"the late-event window of {days} day{'' if days == 1 else 's'}"


def _utc_text(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def archived_months() -> set[dt.date]:
    """The UTC months whose usage records have been archived (usage_retention)."""
    return {dt.datetime.strptime(name[-6:], "%Y%m").date() for name in archived_tables()}


def window_clock() -> dt.datetime:
    """The moment the window is measured from: now. (Tests of other rules that need events
    on fixed calendar days measure it from when those events happened: tests/clock.py.)"""
    return timezone.now()


def late_refusals(company: Company, events, *, now: dt.datetime | None = None) -> list[dict]:
    """One error (index, field, message) for each of `events` ((index, UsageEvent) pairs)
    whose occurred_at lies before now − the company's late-event window, or in an
    archived month."""
    now = now or window_clock()
    days = company.late_event_window_days
    earliest = now - dt.timedelta(days=days)
    # usage_retention archives only months before the previous one: an event of this UTC
    # month or the last needs no look at the catalog (nearly every batch).
    this_month = month_start(now.astimezone(dt.UTC).date())
    recent = dt.datetime.combine(month_add(this_month, -1), dt.time(), tzinfo=dt.UTC)
    errors, older = [], []
    for index, event in events:
        at = event.occurred_at
        if at < earliest:
            message = (
                f"occurred_at is older than {window_rule(days)} (the earliest accepted now is "
                f"{_utc_text(earliest)}); usage that old is no longer charged."
            )
            errors.append({"index": index, "field": "occurred_at", "message": message})
        elif at < recent:
            older.append((index, event))
    if older and (archived := archived_months()):
        for index, event in older:
            month = month_start(event.occurred_at.astimezone(dt.UTC).date())
            if month in archived:
                message = (
                    f"occurred_at lies in {month:%Y-%m}, a month whose usage has been "
                    f"archived; it is refused like an event older than {window_rule(days)}."
                )
                errors.append({"index": index, "field": "occurred_at", "message": message})
    errors.sort(key=lambda e: e["index"])
    return errors


# Statements --------------------------------------------------------------------------


@dataclass(frozen=True)
class LateUsage:
    """The usage of a period that was charged after the period ended."""

    events: int = 0
    cost: Decimal = ZERO
    first_received: dt.datetime | None = None
    last_received: dt.datetime | None = None
    tz: dt.tzinfo = dt.UTC

    def __bool__(self) -> bool:
        return self.events > 0

    @property
    def amended_on(self) -> dt.date | None:
        """The day (company time zone) the period's figures last changed."""
        return self.last_received.astimezone(self.tz).date() if self.last_received else None

    @property
    def received_text(self) -> str:
        """When it arrived, as people read it: "2 Dec", "2–4 Dec", "30 Nov – 4 Dec"."""
        if not self:
            return ""
        first = self.first_received.astimezone(self.tz).date()
        last = self.last_received.astimezone(self.tz).date()
        year = "" if first.year == last.year else f" {first.year}"
        if first == last:
            return f"{last.day} {last:%b}"
        if (first.year, first.month) == (last.year, last.month):
            return f"{first.day}–{last.day} {last:%b}"
        return f"{first.day} {first:%b}{year} – {last.day} {last:%b}"


def late_usage_of(
    company: Company,
    *,
    period: dt.date,
    starts_at: dt.datetime,
    ends_at: dt.datetime,
    office_ids=None,
) -> LateUsage:
    """The records of `period` (of `office_ids`, or every office) charged at or after
    `ends_at`, the moment the period ended: count, credits and the first and last time one
    arrived. One query; on PostgreSQL it reads only the period's monthly partitions, and
    their records charged after `ends_at` through the BRIN index on created_at."""
    records = UsageRecord.objects.filter(
        company=company,
        period=period,
        occurred_at__gte=starts_at - ZONE_SLACK,
        occurred_at__lt=ends_at + ZONE_SLACK,
        created_at__gte=ends_at,
    )
    if office_ids is not None:
        records = records.filter(office_id__in=list(office_ids))
    row = records.order_by().aggregate(
        n=Count("id"), cost=Sum("cost"), first=Min("created_at"), last=Max("created_at")
    )
    if not row["n"]:
        return LateUsage(tz=company.tz)
    return LateUsage(
        events=row["n"],
        cost=q(row["cost"]),
        first_received=row["first"],
        last_received=row["last"],
        tz=company.tz,
    )


def late_usage_csv_rows(late: LateUsage, *, header: bool = False):
    """The statement CSV's late-usage rows: with `header`, the "Amended on" line of the
    heading (only when the period was amended); else the block before the check, always
    there so that the file keeps one shape."""
    if header:
        if late:
            yield ["Amended on", late.amended_on.isoformat()]
        return
    received = [late.first_received, late.last_received] if late else ["", ""]
    yield []
    yield ["Late usage", "Events", "Credits", "First received", "Last received"]
    yield [
        "Charged after the period ended",
        late.events,
        late.cost,
        *[m.astimezone(late.tz).isoformat() if m else "" for m in received],
    ]
