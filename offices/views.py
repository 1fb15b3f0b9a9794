"""Portal access (one mixin every page uses), the home redirect and the office page."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from core.errors import DomainError
from credits.models import AccountKind
from credits.selectors import billing_period, office_rows, visible_accounts
from offices.selectors import PortalScope, portal_scope_for
from usage.selectors import DayUsage, daily_usage, usage_by_service


class PortalMixin:
    """Anonymous → login; logged in without a role → 403; otherwise `self.scope` says
    what this user may see, and templates get it as `scope`."""

    scope: PortalScope

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        scope = portal_scope_for(request.user)
        if scope is None:
            raise PermissionDenied("Your account has no role in a company's portal.")
        self.scope = scope
        try:
            return super().dispatch(request, *args, **kwargs)
        except DomainError as error:
            # The one place where a refused business rule becomes an HTTP answer on a page.
            return render(
                request,
                "error.html",
                {"message": error.message, "scope": scope, "status": error.status_code},
                status=error.status_code,
            )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["scope"] = self.scope
        context["company"] = self.scope.company
        context["portal_tz"] = self.scope.company.billing_timezone
        return context


class HomeView(PortalMixin, View):
    """Company admins land on the company balance, office admins on their office."""

    def get(self, request):
        if self.scope.is_company_admin:
            return redirect("portal:balance")
        office = self.scope.offices().first()
        return redirect("portal:office", slug=office.slug)


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
