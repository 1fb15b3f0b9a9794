"""Billing periods (SPEC §2): a calendar month in the company's billing time zone.

The one place that turns a moment into a period; allowances reset each period."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.utils import timezone


def period_of(moment: dt.datetime, tz) -> dt.date:
    """The billing period (first day of the month, company time zone) containing `moment`."""
    return moment.astimezone(tz).date().replace(day=1)


def period_end(start: dt.date) -> dt.date:
    """The first day of the period after the one starting on `start`."""
    return (start + dt.timedelta(days=32)).replace(day=1)


@dataclass(frozen=True)
class BillingPeriod:
    start: dt.date  # first day, company time zone
    end: dt.date  # last day
    today: dt.date
    days_left: int  # including today

    @property
    def next_start(self) -> dt.date:
        return self.end + dt.timedelta(days=1)


def billing_period(company, now: dt.datetime | None = None) -> BillingPeriod:
    """The calendar month containing `now` in the company's billing time zone."""
    moment = now or timezone.now()
    start = period_of(moment, company.tz)
    today = moment.astimezone(company.tz).date()
    next_start = period_end(start)
    return BillingPeriod(
        start=start,
        end=next_start - dt.timedelta(days=1),
        today=today,
        days_left=(next_start - today).days,
    )
