"""Statement pages (page, CSV, PDF) and the what-if page (SPEC §9), scoped by role.

The figures come from usage.statements and usage.whatif; these views only pick the
period and the office from the request and render."""

from __future__ import annotations

import csv
import datetime as dt
import io

from django.http import HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.views import View
from django.views.generic import TemplateView

from core.errors import PermissionDenied
from credits.periods import period_end, period_of
from offices.templatetags.portal_format import credits
from offices.views import PortalMixin
from usage.statements import (
    MOVEMENT_LABELS,
    MOVEMENTS,
    Statement,
    company_first_period,
    period_parse,
    statement_build,
    statement_csv_rows,
    statement_scope,
)
from usage.whatif import whatif_replay

PERIOD_CHOICES = 12  # months offered by the period picker


def period_choices(company, now=None) -> list[str]:
    """The billing months a statement exists for, newest first (at most a year)."""
    tz = company.tz
    current = period_of(now or timezone.now(), tz)
    first = company_first_period(company)
    out = []
    month = current
    while month >= first and len(out) < PERIOD_CHOICES:
        out.append(f"{month:%Y-%m}")
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return out


class StatementMixin(PortalMixin):
    def statement(self) -> Statement:
        scope = statement_scope(self.scope, self.request.GET.get("office"))
        period = period_parse(self.kwargs["period"], company=scope.company)
        return statement_build(scope, period=period)

    def office_query(self) -> str:
        """?office=… of this request, once statement() has accepted it."""
        office = self.request.GET.get("office")
        return f"?{urlencode({'office': office})}" if office else ""


class StatementPickView(PortalMixin, View):
    """The period picker's target: ?period=YYYY-MM → that period's statement page."""

    def get(self, request):
        text = (
            request.GET.get("period") or f"{period_of(timezone.now(), self.scope.company.tz):%Y-%m}"
        )
        period = period_parse(text, company=self.scope.company)
        target = "portal:whatif" if request.GET.get("what") == "whatif" else "portal:statement"
        return redirect(target, period=f"{period:%Y-%m}")


def statement_months(company, now=None) -> list[dict]:
    """Every billing month a statement exists for, newest first, with its status."""
    tz = company.tz
    current = period_of(now or timezone.now(), tz)
    first = company_first_period(company)
    out = []
    month = current
    while month >= first:
        out.append(
            {
                "period": month,
                "text": f"{month:%Y-%m}",
                "status": "In progress" if month == current else "Closed",
            }
        )
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return out


def month_neighbours(period: dt.date, company, now=None) -> tuple[str | None, str | None]:
    """The statement months before and after `period` ("YYYY-MM"), None past either end."""
    current = period_of(now or timezone.now(), company.tz)
    before = (period - dt.timedelta(days=1)).replace(day=1)
    after = period_end(period)
    previous = f"{before:%Y-%m}" if before >= company_first_period(company) else None
    following = f"{after:%Y-%m}" if after <= current else None
    return previous, following


class StatementListView(PortalMixin, TemplateView):
    """Statements: the company's billing months with their status, newest first."""

    template_name = "usage/statement_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(months=statement_months(self.scope.company))
        return context


class StatementView(StatementMixin, TemplateView):
    template_name = "usage/statement.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        statement = self.statement()
        query = self.office_query()
        context.update(
            statement=statement,
            movements=[(m, MOVEMENT_LABELS[m]) for m in MOVEMENTS],
            periods=period_choices(self.scope.company),
            csv_url=reverse("portal:statement_csv", args=[statement.period_text]) + query,
            pdf_url=reverse("portal:statement_pdf", args=[statement.period_text]) + query,
            whatif_url=reverse("portal:whatif", args=[statement.period_text])
            if self.scope.is_company_admin
            else None,
            ends_on=period_end(statement.period) - dt.timedelta(days=1),
        )
        previous, following = month_neighbours(statement.period, self.scope.company)
        context.update(
            previous_url=reverse("portal:statement", args=[previous]) + query if previous else None,
            previous_text=previous,
            next_url=reverse("portal:statement", args=[following]) + query if following else None,
            next_text=following,
        )
        return context


class StatementCsvView(StatementMixin, View):
    def get(self, request, period):
        statement = self.statement()
        out = io.StringIO()
        writer = csv.writer(out)
        for row in statement_csv_rows(statement):
            writer.writerow(row)
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = (
            f'attachment; filename="statement-{statement.company.slug}-{statement.period_text}.csv"'
        )
        return response


class RemoteAssetRefused(ValueError):
    pass


def refuse_fetch(url: str):
    """What the PDF's URL fetcher does with any URL: refuse it. The statement's PDF loads
    nothing, local or remote (its stylesheet is part of the document)."""
    raise RemoteAssetRefused(f"The statement PDF loads no external resource ({url[:60]}).")


def pdf_render(html: str) -> bytes:
    """`html` printed by WeasyPrint with a URL fetcher that fetches nothing."""
    from weasyprint import HTML  # imported on use: a heavy import most requests skip
    from weasyprint.urls import URLFetcher

    class NoFetcher(URLFetcher):
        def fetch(self, url, headers=None):
            return refuse_fetch(url)

    return HTML(string=html, url_fetcher=NoFetcher(), base_url=None).write_pdf()


def _columns(cells: list[str], widths: list[int]) -> str:
    """One line of a fixed-width table: the first column left-aligned, the rest right."""
    first, *rest = cells
    return first[: widths[0]].ljust(widths[0]) + "".join(
        cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)
    )


def statement_text_tables(statement: Statement) -> dict[str, list[str]]:
    """The statement's two tables as lines of fixed-width text, for the PDF: WeasyPrint
    lays out a line of text far faster than a table cell (2 s → 0.3 s at 50 offices)."""
    balance_widths = [24, 14, *[14] * len(MOVEMENTS), 14, 6]
    short = {
        "purchases": "Purchases",
        "grants": "Grants",
        "auto_recharges": "Auto-rech.",
        "transfers_in": "Pool in",
        "transfers_out": "Pool out",
        "adjustments": "Adjustments",
        "usage": "Usage",
    }
    balances = [
        _columns(
            ["Balance", "Opening", *[short[m] for m in MOVEMENTS], "Closing", "Tie"],
            balance_widths,
        )
    ]
    for line in [*statement.balances, None, statement.balance_totals]:
        if line is None:
            balances.append("-" * sum(balance_widths))
            continue
        balances.append(
            _columns(
                [
                    line.label,
                    credits(line.opening),
                    *[credits(getattr(line, m)) for m in MOVEMENTS],
                    credits(line.closing),
                    "yes" if line.ties_out else "NO",
                ],
                balance_widths,
            )
        )
    office_widths = [22, 10, 13, 13, 13, 13, 12, 13, 9, 14]
    offices = [
        _columns(
            [
                "Office",
                "Credits",
                "Included",
                "Allow. used",
                "Pool",
                "Wallet",
                "AI",
                "Uncovered",
                "Events",
                "Cost",
            ],
            office_widths,
        )  # fmt: skip
    ]

    def figures(name, label, f):
        return _columns(
            [name, label, credits(f.included), credits(f.used), credits(f.pool_drawn),
             credits(f.wallet_drawn), credits(f.ai_drawn), credits(f.uncovered),
             f"{f.events:,}", credits(f.cost_total)],
            office_widths,
        )  # fmt: skip

    offices += [
        figures(line.office, "AI agent" if line.kind == "ai_agent" else "Standard", line.figures)
        for line in statement.offices
    ]
    offices.append("-" * sum(office_widths))
    offices += [
        figures("Total", "AI agent" if f.kind == "ai_agent" else "Standard", f)
        for f in statement.kind_totals
    ]
    return {"balances": balances, "offices": offices}


def statement_pdf(statement: Statement) -> bytes:
    html = render_to_string(
        "usage/statement_pdf.html",
        {
            "statement": statement,
            "tables": statement_text_tables(statement),
            "ends_on": period_end(statement.period) - dt.timedelta(days=1),
            "generated_at": timezone.now(),
        },
    )
    return pdf_render(html)


class StatementPdfView(StatementMixin, View):
    def get(self, request, period):
        statement = self.statement()
        response = HttpResponse(statement_pdf(statement), content_type="application/pdf")
        response["Content-Disposition"] = (
            f'attachment; filename="statement-{statement.company.slug}-{statement.period_text}.pdf"'
        )
        return response


class WhatIfView(PortalMixin, TemplateView):
    """Company admins only: a replay shows every office's figures."""

    template_name = "usage/whatif.html"

    def get_context_data(self, **kwargs):
        if not self.scope.is_company_admin:
            raise PermissionDenied("Only company admins see the what-if of the whole company.")
        context = super().get_context_data(**kwargs)
        company = self.scope.company
        period = period_parse(self.kwargs["period"], company=company)
        context.update(
            whatif=whatif_replay(company, period=period),
            periods=period_choices(company),
            statement_url=reverse("portal:statement", args=[f"{period:%Y-%m}"]),
        )
        return context
