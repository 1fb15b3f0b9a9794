"""The activity (ledger) filter. The balance choices come from the user's scope, so a
balance the user may not see is an invalid choice (a form error), never a way in."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms

from credits.models import Account, AccountKind, EntryType
from credits.selectors import activity_accounts
from offices.selectors import PortalScope

EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)


def account_label(account: Account) -> str:
    if account.kind == AccountKind.WALLET:
        return f"{account.office.name} wallet"
    return account.get_kind_display()


class ActivityFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        for name in ("date_from", "date_to"):
            value = data.get(name)
            if value and not (EARLIEST_DATE <= value <= LATEST_DATE):
                self.add_error(
                    name,
                    f"Pick a date between {EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}.",
                )
        start, end = data.get("date_from"), data.get("date_to")
        if start and end and start > end and not self.errors:
            self.add_error("date_to", "The end date is before the start date.")
        return data


class ActivityFilter(django_filters.FilterSet):
    account = django_filters.ModelChoiceFilter(
        queryset=Account.objects.none(), label="Balance", empty_label="All balances"
    )
    entry_type = django_filters.ChoiceFilter(
        choices=EntryType.choices, label="Entry type", empty_label="Any type"
    )
    date_from = django_filters.DateFilter(
        label="From", method="filter_date_from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = django_filters.DateFilter(
        label="To", method="filter_date_to", widget=forms.DateInput(attrs={"type": "date"})
    )

    class Meta:
        form = ActivityFilterForm
        fields: list[str] = []

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None, scope: PortalScope):
        super().__init__(data, queryset, request=request, prefix=prefix)
        self.tz = scope.company.tz
        accounts = Account.objects.filter(company=scope.company).select_related("office")
        shown = activity_accounts(scope)
        if shown is not None:
            accounts = accounts.filter(pk__in=[a.pk for a in shown])
        self.filters["account"].queryset = accounts.order_by("kind", "office__name", "pk")

    @property
    def form(self):
        form = super().form
        form.fields["account"].label_from_instance = account_label
        return form

    def _start_of(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)

    def filter_date_from(self, queryset, name, value):
        return queryset.filter(created_at__gte=self._start_of(value))

    def filter_date_to(self, queryset, name, value):
        # Inclusive: the whole last day in the company's time zone.
        return queryset.filter(created_at__lt=self._start_of(value + dt.timedelta(days=1)))
