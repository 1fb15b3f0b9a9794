"""Admin list and detail columns that print as the portal does: credits with thousands
separators, times in the company's own time zone."""

from __future__ import annotations

from operator import attrgetter

from django.contrib import admin
from django.utils import timezone

from offices.templatetags.portal_format import credits


def credits_column(field: str, description: str):
    """A column showing `field` (a credits amount) like the portal: "1,234.50"."""

    @admin.display(description=description, ordering=field)
    def column(self, obj):
        return credits(getattr(obj, field))

    column.__name__ = f"{field}_credits"
    return column


def local_time_column(field: str, description: str, company: str = "company"):
    """A column showing `field` (a datetime) in the time zone of the row's company
    (`company`: the path to it), named: "2026-11-03 14:05 CET"."""
    company_of = attrgetter(company)

    @admin.display(description=description, ordering=field)
    def column(self, obj):
        value = getattr(obj, field)
        if value is None:
            return "—"
        return timezone.localtime(value, company_of(obj).tz).strftime("%Y-%m-%d %H:%M %Z")

    column.__name__ = f"{field}_local"
    return column
