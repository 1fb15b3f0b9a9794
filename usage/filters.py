"""The usage history filter. The office choices come from the user's scope, so an office
the user may not see is an invalid choice (a form error), never a way in."""

from __future__ import annotations

import datetime as dt

import django_filters
from django import forms

from core.widgets import ListSelect
from offices.models import CreditKind
from offices.selectors import PortalScope
from usage.models import Service
from usage.search import search_condition, user_labels_matching

EARLIEST_DATE = dt.date(2000, 1, 1)
LATEST_DATE = dt.date(2999, 12, 31)

FUNDED_BY = [
    ("allowance", "Allowance"),
    ("pool", "Shared pool"),
    ("wallet", "Office wallet"),
    ("ai", "AI agent credits"),
    ("uncovered", "Uncovered overage"),
]
FUNDED_BY_FIELD = {
    "allowance": "allowance_part",
    "pool": "pool_part",
    "wallet": "wallet_part",
    "ai": "ai_part",
    "uncovered": "uncovered",
}


class OfficeChoiceField(forms.ModelChoiceField):
    """An office of the scope by its slug (SPEC §2: URLs name offices by slug). A number
    that is no office's slug is read as an office id, so links made before slugs keep
    working."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except forms.ValidationError:
            text = str(value).strip()
            if not text.isdigit():
                raise
            try:
                return self.queryset.get(pk=int(text))
            except (self.queryset.model.DoesNotExist, OverflowError, ValueError):
                raise forms.ValidationError(
                    self.error_messages["invalid_choice"], code="invalid_choice"
                ) from None

    def label_from_instance(self, obj):
        # Office.__str__ names the company (a query per option); the name is enough here.
        return obj.name


class OfficeFilter(django_filters.ModelChoiceFilter):
    field_class = OfficeChoiceField


class UsageFilterForm(forms.Form):
    def clean(self):
        data = super().clean()
        start, end = data.get("date_from"), data.get("date_to")
        for name in ("date_from", "date_to"):
            value = data.get(name)
            if value and not (EARLIEST_DATE <= value <= LATEST_DATE):
                self.add_error(
                    name,
                    f"Pick a date between {EARLIEST_DATE:%Y-%m-%d} and {LATEST_DATE:%Y-%m-%d}.",
                )
        if start and end and start > end and not self.errors:
            self.add_error("date_to", "The end date is before the start date.")
        return data


class UsageFilter(django_filters.FilterSet):
    office = OfficeFilter(
        queryset=None,
        label="Office",
        empty_label="All offices",
        to_field_name="slug",
        widget=ListSelect,
    )
    service = django_filters.ModelChoiceFilter(
        queryset=Service.objects.order_by("name"),
        label="Service",
        empty_label="All services",
        widget=ListSelect,
    )
    credit_kind = django_filters.ChoiceFilter(
        choices=CreditKind.choices, label="Credit kind", empty_label="Any kind"
    )
    funded_by = django_filters.ChoiceFilter(
        choices=FUNDED_BY, label="Funded by", empty_label="Anything", method="filter_funded_by"
    )
    date_from = django_filters.DateFilter(
        label="From", method="filter_date_from", widget=forms.DateInput(attrs={"type": "date"})
    )
    date_to = django_filters.DateFilter(
        label="To", method="filter_date_to", widget=forms.DateInput(attrs={"type": "date"})
    )
    q = django_filters.CharFilter(label="User or number", method="filter_search", max_length=100)
    min_cost = django_filters.NumberFilter(
        field_name="cost",
        lookup_expr="gte",
        label="Minimum cost",
        min_value=0,
        max_digits=18,
        decimal_places=4,
    )

    class Meta:
        form = UsageFilterForm
        fields: list[str] = []

    def __init__(self, data=None, queryset=None, *, request=None, prefix=None, scope: PortalScope):
        self.scope = scope
        super().__init__(data, queryset, request=request, prefix=prefix)
        office = self.filters["office"]
        office.queryset = scope.offices()
        if not scope.is_company_admin:
            # Only their own offices: one is simply preselected, several are "all mine".
            office.extra["empty_label"] = None if len(scope.office_ids) == 1 else "All my offices"
        self.tz = scope.company.tz
        self._labels: dict[str, list[str] | None] = {}

    def _start_of(self, day: dt.date) -> dt.datetime:
        return dt.datetime.combine(day, dt.time.min, tzinfo=self.tz)

    def filter_date_from(self, queryset, name, value):
        return queryset.filter(occurred_at__gte=self._start_of(value))

    def filter_date_to(self, queryset, name, value):
        # Inclusive: the whole last day in the company's time zone.
        return queryset.filter(occurred_at__lt=self._start_of(value + dt.timedelta(days=1)))

    def filter_funded_by(self, queryset, name, value):
        return queryset.filter(**{f"{FUNDED_BY_FIELD[value]}__gt": 0})

    def filter_search(self, queryset, name, value):
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(search_condition(value, self.search_labels(value, queryset.db)))

    def search_labels(self, text: str, using: str | None = None) -> list[str] | None:
        """The user labels that contain `text` (read once per filterset)."""
        if text not in self._labels:
            self._labels[text] = user_labels_matching(self.scope, text, using=using)
        return self._labels[text]

    def queryset_without(self, *names: str):
        """The queryset filtered by every valid filter except `names`."""
        queryset = self.queryset.all()
        for name, value in self.form.cleaned_data.items():
            if name not in names:
                queryset = self.filters[name].filter(queryset, value)
        return queryset
