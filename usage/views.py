"""Usage history (filter + table + totals), its CSV export and the office page, scoped by
role."""

from __future__ import annotations

from decimal import Decimal

from django.core.paginator import EmptyPage
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views import View
from django.views.generic import TemplateView
from django_filters.views import FilterView
from django_tables2 import LazyPaginator, SingleTableMixin

from credits.models import AccountKind
from credits.periods import billing_period
from credits.selectors import office_rows, visible_accounts
from offices.views import PortalMixin
from usage.export import usage_csv_rows
from usage.filters import UsageFilter
from usage.selectors import (
    DayUsage,
    daily_usage,
    usage_by_service,
    usage_history_for,
    usage_totals_for,
)
from usage.tables import UsageTable

PER_PAGE = 25
MAX_PAGE = 100_000


class UsagePaginator(LazyPaginator):
    """Looks one row ahead instead of counting; a fixed page size whatever ?per_page
    says, and page numbers past any real history served as the first page (an offset
    beyond bigint would otherwise fail in the database)."""

    def __init__(self, object_list, per_page, **kwargs):
        super().__init__(object_list, PER_PAGE, **kwargs)

    def validate_number(self, number):
        number = super().validate_number(number)
        if number > MAX_PAGE:
            raise EmptyPage("That page number is too large.")
        return number


class UsageHistoryView(PortalMixin, SingleTableMixin, FilterView):
    template_name = "usage/usage_history.html"
    table_class = UsageTable
    filterset_class = UsageFilter
    # Never COUNT(*) the whole history to paginate: look one row ahead instead.
    table_pagination = {"per_page": PER_PAGE, "paginator_class": UsagePaginator}

    def get_queryset(self):
        return usage_history_for(self.scope)

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        kwargs["scope"] = self.scope
        return kwargs

    def get_table_kwargs(self):
        return {"tz": self.scope.company.tz}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        table = context["table"]
        requested = [s for s in self.request.GET.getlist("sort") if s]
        known = {c.order_by_alias.bare for c in table.columns if c.orderable}
        context["sort_error"] = next((s for s in requested if s.lstrip("-") not in known), None)
        filterset = self.filterset
        valid = not filterset.is_bound or filterset.is_valid()
        context["totals"] = usage_totals_for(self.scope, filterset) if valid else None
        query = self.request.GET.copy()
        query.pop("page", None)
        query.pop("sort", None)
        export = reverse("usage:export")
        context["export_url"] = f"{export}?{query.urlencode()}" if valid else None
        period = billing_period(self.scope.company)
        context["this_month_export_url"] = (
            f"{export}?{urlencode({'date_from': period.start, 'date_to': period.end})}"
        )
        context["period"] = period
        return context


class UsageExportView(PortalMixin, View):
    """Every row of the filtered history as CSV, streamed in chunks."""

    def get(self, request):
        filterset = UsageFilter(
            request.GET or None, queryset=usage_history_for(self.scope), scope=self.scope
        )
        if filterset.is_bound and not filterset.is_valid():
            problems = "; ".join(
                f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()
            )
            return HttpResponse(
                f"Bad filter: {problems}\n", status=400, content_type="text/plain; charset=utf-8"
            )
        response = StreamingHttpResponse(
            usage_csv_rows(filterset.qs, self.scope.company.tz), content_type="text/csv"
        )
        stamp = timezone.localdate(timezone=self.scope.company.tz).isoformat()
        response["Content-Disposition"] = (
            f'attachment; filename="usage-{self.scope.company.slug}-{stamp}.csv"'
        )
        return response


# The office page: an office's allowance, balances and usage ---------------------------


CHART_WIDTH = 900
CHART_HEIGHT = 200
CHART_LEFT = 48  # room for the axis labels
CHART_BOTTOM = 20


def chart_bars(days: list[DayUsage]) -> dict:
    """Geometry of a stacked bar chart (allowance / pool or wallet / uncovered) as plain
    numbers for an inline SVG; no script and no inline style are needed to draw it."""
    top = max((d.total for d in days), default=Decimal(0))
    plot_w = CHART_WIDTH - CHART_LEFT
    plot_h = CHART_HEIGHT - CHART_BOTTOM
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1)
    bars = []
    for i, day in enumerate(days):
        x = CHART_LEFT + i * slot + (slot - bar_w) / 2
        y = plot_h
        segments = []
        for css, value in (
            ("seg-allowance", day.allowance),
            ("seg-funded", day.funded),
            ("seg-uncovered", day.uncovered),
        ):
            if value > 0 and top > 0:
                h = float(value / top) * (plot_h - 4)
                y -= h
                segments.append({"css": css, "y": round(y, 2), "h": round(max(h, 0.5), 2)})
        bars.append({"day": day, "x": round(x, 2), "w": round(bar_w, 2), "segments": segments})
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "left": CHART_LEFT,
        "plot_h": plot_h,
        "label_y": CHART_HEIGHT - 4,
        "top": top,
        "bars": bars,
        "first": days[0].day if days else None,
        "last": days[-1].day if days else None,
        "empty": top <= 0,
    }


class OfficeDetailView(PortalMixin, TemplateView):
    template_name = "offices/office_detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        scope = self.scope
        # Another tenant's or another office's slug is simply not in the scope: 404.
        office = get_object_or_404(scope.offices_with_plans(), slug=self.kwargs["slug"])
        company = scope.company
        period = billing_period(company)
        (row,) = office_rows(scope, period, offices=[office])
        accounts = {a.kind: a for a in visible_accounts(scope, [office.pk])}
        days = daily_usage(scope, office)
        context.update(
            office=office,
            period=period,
            row=row,
            pool=accounts.get(AccountKind.POOL),
            wallet=accounts.get(AccountKind.WALLET),
            ai_account=accounts.get(AccountKind.AI_AGENT),
            by_service=usage_by_service(scope, office, period.start),
            chart=chart_bars(days),
            history_url=f"{reverse('usage:history')}?office={office.pk}",
        )
        return context
