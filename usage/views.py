"""Usage history (filter + table + totals), its CSV export and the office page, scoped by
role."""

from __future__ import annotations

from decimal import Decimal

from django.core.paginator import EmptyPage
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect
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
from offices.views import PortalMixin, ScopedListMixin
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


class UsageHistoryView(PortalMixin, ScopedListMixin, SingleTableMixin, FilterView):
    template_name = "usage/usage_history.html"
    table_class = UsageTable
    filterset_class = UsageFilter
    # Never COUNT(*) the whole history to paginate: look one row ahead instead.
    table_pagination = {"per_page": PER_PAGE, "paginator_class": UsagePaginator}

    def get(self, request, *args, **kwargs):
        # Links made before offices were named by slug carry the office's id: send them to
        # the same filter by slug, so the form shows the office chosen.
        office = request.GET.get("office", "")
        if office.isdigit() and len(office) < 19:
            offices = self.scope.offices()
            if not offices.filter(slug=office).exists():
                slug = offices.filter(pk=int(office)).values_list("slug", flat=True).first()
                if slug is not None:
                    query = request.GET.copy()
                    query["office"] = slug
                    return redirect(f"{request.path}?{query.urlencode()}")
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        return usage_history_for(self.scope)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        table = context["table"]
        requested = [s for s in self.request.GET.getlist("sort") if s]
        known = {c.order_by_alias.bare for c in table.columns if c.orderable}
        context["sort_error"] = next((s for s in requested if s.lstrip("-") not in known), None)
        filterset = self.filterset
        valid = not filterset.is_bound or filterset.is_valid()
        context["totals"] = usage_totals_for(self.scope, filterset) if valid else None
        context["totals_period"] = totals_period(filterset) if valid else ""
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


def totals_period(filterset) -> str:
    """What the totals cover: "all time", "from …", "to …" or "… to …" (ISO dates)."""
    data = filterset.form.cleaned_data if filterset.is_bound else {}
    start, end = data.get("date_from"), data.get("date_to")
    if start and end:
        return f"{start:%Y-%m-%d} to {end:%Y-%m-%d}"
    if start:
        return f"from {start:%Y-%m-%d}"
    if end:
        return f"up to {end:%Y-%m-%d}"
    return "all time"


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
CHART_HEIGHT = 230
CHART_LEFT = 64  # room for the value ticks
CHART_TOP = 26  # room for the unit
CHART_BOTTOM = 22  # room for the date ticks
Y_TICKS = 4

# What paid, in stacking order: each funding source has its own colour (static/css).
SOURCES = (
    ("allowance_part", "allowance", "Allowance"),
    ("pool_part", "pool", "Shared pool"),
    ("wallet_part", "wallet", "Office wallet"),
    ("ai_part", "ai", "AI agent credits"),
    ("uncovered", "uncovered", "Uncovered overage"),
)


def nice_step(top: Decimal, ticks: int) -> Decimal:
    """A round tick step (1, 2 or 5 × 10^n) so that `ticks` steps reach at least `top`."""
    raw = top / ticks
    power = Decimal(10) ** raw.adjusted()
    for factor in (1, 2, 5, 10):
        if power * factor >= raw:
            return power * factor
    return power * 10  # pragma: no cover - factor 10 always reaches raw


PHONE_CHART_WIDTH = 380
PHONE_CHART_LEFT = 52


def chart_bars(
    days: list[DayUsage], *, width: int = CHART_WIDTH, left: int = CHART_LEFT, name: str = "chart"
) -> dict:
    """Geometry of a stacked bar chart, one segment per funding source, with value ticks
    on the y axis and weekly date ticks on the x axis, as plain numbers for an inline SVG;
    no script and no inline style are needed to draw it. `width`: of the drawing in its
    own units (a phone gets a narrower one, so its text stays legible); `name` prefixes
    its element ids."""
    busiest = max((d.total for d in days), default=Decimal(0))
    step = nice_step(busiest, Y_TICKS) if busiest > 0 else Decimal(1)
    top = step * Y_TICKS
    plot_w = width - left
    plot_h = CHART_HEIGHT - CHART_BOTTOM - CHART_TOP
    base = CHART_TOP + plot_h
    slot = plot_w / max(len(days), 1)
    bar_w = max(slot * 0.7, 1)
    bars = []
    for i, day in enumerate(days):
        x = left + i * slot + (slot - bar_w) / 2
        y = base
        segments = []
        for field, css, _ in SOURCES:
            value = getattr(day, field)
            if value > 0:
                h = float(value / top) * plot_h
                y -= h
                segments.append({"css": f"seg-{css}", "y": round(y, 2), "h": round(max(h, 0.5), 2)})
        parts = [(label, getattr(day, field)) for field, _, label in SOURCES]
        bars.append(
            {
                "day": day,
                "x": round(x, 2),
                "w": round(bar_w, 2),
                "segments": segments,
                "parts": [(label, value) for label, value in parts if value > 0],
                "label_x": round(x + bar_w / 2, 2),
                # A date under the first bar and every 7th after it.
                "tick": i % 7 == 0,
            }
        )
    y_ticks = [
        {"value": step * n, "y": round(base - plot_h * n / Y_TICKS, 2)} for n in range(Y_TICKS + 1)
    ]
    return {
        "width": width,
        "height": CHART_HEIGHT,
        "left": left,
        "top_y": CHART_TOP,
        "base": base,
        "plot_h": plot_h,
        "label_y": CHART_HEIGHT - 6,
        "top": top,
        "busiest": busiest,
        "y_ticks": y_ticks,
        "bars": bars,
        "total": sum((d.total for d in days), Decimal(0)),
        "first": days[0].day if days else None,
        "last": days[-1].day if days else None,
        "empty": busiest <= 0,
        "sources": [{"css": css, "label": label} for _, css, label in SOURCES],
        "name": name,
    }


def service_columns(by_service: list[dict], *, pooling_on: bool) -> list[tuple[str, str]]:
    """The funding columns of the by-service table: allowance and uncovered always, the
    balance that funds usage now, and any other source that paid something this period
    (after a pooling switch both the pool and the wallet)."""
    columns = []
    for field, _, label in SOURCES:
        always = field in ("allowance_part", "uncovered")
        current = field == ("pool_part" if pooling_on else "wallet_part")
        if always or current or any(s[field] for s in by_service):
            columns.append((field, label))
    return columns


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
        by_service = usage_by_service(scope, office, period.start)
        columns = service_columns(by_service, pooling_on=company.pooling_enabled)
        context.update(
            office=office,
            period=period,
            row=row,
            pool=accounts.get(AccountKind.POOL),
            wallet=accounts.get(AccountKind.WALLET),
            ai_account=accounts.get(AccountKind.AI_AGENT),
            by_service=[
                {**s, "parts": [(field, label, s[field]) for field, label in columns]}
                for s in by_service
            ],
            service_columns=[label for _, label in columns],
            chart=chart_bars(days),
            phone_chart=chart_bars(
                days, width=PHONE_CHART_WIDTH, left=PHONE_CHART_LEFT, name="phone-chart"
            ),
            history_url=f"{reverse('usage:history')}?{urlencode({'office': office.slug})}",
        )
        return context
