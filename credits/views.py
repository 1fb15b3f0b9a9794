"""The company balance page and the add-credits flow (form → summary → record)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from decimal import Decimal
from html import escape

from django.contrib import messages
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import urlencode
from django.utils.safestring import SafeString, mark_safe
from django.views import View
from django.views.generic import TemplateView
from django_filters.views import FilterView
from django_tables2 import LazyPaginator, SingleTableMixin

from core.csv import neutralise
from core.errors import DomainError
from core.money import credits_noun
from credits.controls_selectors import balance_controls
from credits.filters import ActivityFilter
from credits.models import Account, AccountKind
from credits.portal_forms import AddCreditsForm, new_token
from credits.requests.selectors import credit_requests_pending_for
from credits.selectors import BalanceOverview, balance_overview, ledger_for
from credits.services import credits_purchase
from credits.tables import ActivityTable, entry_account_label
from offices.templatetags.portal_format import credits, percent
from offices.views import PortalMixin, ScopedListMixin


class BalanceView(PortalMixin, TemplateView):
    template_name = "credits/balance.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        overview = balance_overview(self.scope)
        context["overview"] = overview
        pending = credit_requests_pending_for(self.scope)
        context["pending_requests"] = list(pending[:5])
        shown = len(context["pending_requests"])
        context["pending_requests_count"] = pending.count() if shown == 5 else shown
        context["money_controls"] = balance_controls(
            self.scope, {row.office_id: row.pool_drawn for row in overview.rows}
        )
        # The table's optional columns, decided once rather than in each row.
        columns = OfficeColumns(
            pool_drawn=overview.shows_pool_drawn,
            share=overview.pooling_on or bool(overview.pool_drawn_total),
            wallet_drawn=overview.shows_wallet_drawn,
            wallet=not overview.pooling_on,
        )
        context["columns"] = columns
        context["office_table_rows"] = office_table_rows(overview, columns)
        context["activity_table"] = ActivityTable(
            overview.activity, tz=self.scope.company.tz, orderable=False
        )
        return context


@dataclass(frozen=True)
class OfficeColumns:
    """Which optional columns the offices table shows: draws of each source this period
    has (after a mid-period pooling switch, both), the pool share, the wallet balance."""

    pool_drawn: bool
    share: bool
    wallet_drawn: bool
    wallet: bool


# What the `slug` path converter accepts; reverse() leaves these characters as they are.
SLUG = re.compile(r"[-a-zA-Z0-9_]+\Z")
SLUG_MARKER = "office-slug-marker"


def office_url_maker():
    """A function slug → the office page's URL, like reverse("portal:office") but resolving
    the pattern only once."""
    prefix, suffix = reverse("portal:office", args=[SLUG_MARKER]).rsplit(SLUG_MARKER, 1)

    def office_url(slug: str) -> str:
        if SLUG.match(slug):
            return f"{prefix}{slug}{suffix}"
        return reverse("portal:office", args=[slug])

    return office_url


PRIMARY_TAG = ' <span class="tag">primary</span>'


def remembering_credits():
    """`credits` that remembers what it printed: the offices table repeats many figures
    (a plan's allowance, zeros). Negative figures are always formatted anew, since -0
    equals 0 but prints as "-0.00"."""
    printed: dict[Decimal, str] = {}

    def remembered(value: Decimal | None) -> str:
        if value is None or value.is_signed():
            return credits(value)
        text = printed.get(value)
        if text is None:
            text = printed[value] = credits(value)
        return text

    return remembered


def uncovered_url_maker():
    """A function (slug, period) → the usage history filtered to that office's uncovered
    usage in that period."""
    history = reverse("usage:history")

    def uncovered_url(slug: str, period) -> str:
        query = {
            "office": slug,
            "funded_by": "uncovered",
            "date_from": period.start.isoformat(),
            "date_to": period.end.isoformat(),
        }
        return f"{history}?{urlencode(query)}"

    return uncovered_url


def office_table_rows(overview: BalanceOverview, columns: OfficeColumns) -> SafeString:
    """The <tr> rows of the offices table, built here rather than in the template: with
    hundreds of offices, resolving and escaping a dozen template variables per row was
    most of the page's time. Names, slugs and URLs are escaped as the template would
    (django.utils.html.escape is html.escape); the figures come from `credits` and
    `percent`, which print only digits, separators, signs, "%" and "—". Each cell names
    its column (data-label), which phones show beside the figure."""
    office_url = office_url_maker()
    uncovered_url = uncovered_url_maker()
    fmt = remembering_credits()
    period, last_period = overview.period, overview.last_period
    rows = []

    def uncovered_cell(css: str, label: str, slug: str, amount: Decimal, in_period) -> str:
        if not amount:
            return f'<td class="num money {css}" data-label="{label}">{fmt(amount)}</td>'
        link = escape(uncovered_url(slug, in_period))
        return (
            f'<td class="num money {css} bad" data-label="{label}">'
            f'<a href="{link}">{fmt(amount)}</a></td>'
        )

    for row in overview.rows:
        standard, ai_agent = row.standard, row.ai_agent
        slug = escape(row.slug)
        cells = [
            f'<tr data-office="{slug}">',
            f'<th scope="row"><a href="{escape(office_url(row.slug))}">{escape(row.name)}</a>'
            f"{PRIMARY_TAG if row.is_primary else ''}"
            f'<span class="subtle">{escape(row.plan)}</span></th>',
            f'<td class="num opt" data-label="Standard included">{fmt(standard.included)}</td>',
            f'<td class="num" data-label="Standard used">{fmt(standard.used)}</td>',
            '<td class="num money remaining" data-label="Standard remaining">'
            f"{fmt(standard.remaining)}</td>",
            f'<td class="num opt" data-label="AI included">{fmt(ai_agent.included)}</td>',
            f'<td class="num" data-label="AI used">{fmt(ai_agent.used)}</td>',
            '<td class="num money ai-remaining" data-label="AI remaining">'
            f"{fmt(ai_agent.remaining)}</td>",
        ]
        # What each source actually paid this period, from the rollups of the records'
        # parts: never relabelled by today's pooling state.
        if columns.pool_drawn:
            cells.append(
                '<td class="num money pool-drawn" data-label="From pool">'
                f"{fmt(standard.pool_drawn)}</td>"
            )
        if columns.share:
            if row.pool_share is None:
                cells.append('<td class="num share opt" data-label="Share of pool draws">—</td>')
            else:
                cells.append(
                    '<td class="num share opt" data-label="Share of pool draws">'
                    '<span class="sharebar">'
                    f'<span class="sharefill {row.share_class}"></span></span> '
                    f"{percent(row.pool_share)}</td>"
                )
        if columns.wallet_drawn:
            cells.append(
                '<td class="num money wallet-drawn" data-label="From wallet">'
                f"{fmt(standard.wallet_drawn)}</td>"
            )
        if columns.wallet:
            cells.append(
                '<td class="num money wallet" data-label="Wallet balance">'
                f"{fmt(row.wallet_balance)}</td>"
            )
        cells.append(
            uncovered_cell("uncovered", "Uncovered this period", row.slug, row.uncovered, period)
        )
        cells.append(
            uncovered_cell(
                "uncovered-last", "Uncovered last period", row.slug, row.uncovered_last, last_period
            )
        )
        cells.append("</tr>")
        rows.append("\n".join(cells))
    # Reviewed: every text above is escaped (tests/portal/test_page_escaping.py).
    return mark_safe("\n".join(rows))  # noqa: S308 # nosec B308, B703


ACTIVITY_PER_PAGE = 50


class ActivityPaginator(LazyPaginator):
    """Looks one row ahead instead of counting the whole ledger; a fixed page size."""

    def __init__(self, object_list, per_page, **kwargs):
        super().__init__(object_list, ACTIVITY_PER_PAGE, **kwargs)


class ActivityView(PortalMixin, ScopedListMixin, SingleTableMixin, FilterView):
    """Every ledger entry the user may read, filterable by balance, entry type and
    dates, paginated; what a billing team reconciles against."""

    template_name = "credits/activity.html"
    table_class = ActivityTable
    filterset_class = ActivityFilter
    table_pagination = {"per_page": ACTIVITY_PER_PAGE, "paginator_class": ActivityPaginator}

    def get_queryset(self):
        return ledger_for(self.scope)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        filterset = self.filterset
        valid = not filterset.is_bound or filterset.is_valid()
        query = self.request.GET.copy()
        query.pop("page", None)
        query.pop("sort", None)
        export = reverse("portal:activity_export")
        context["export_url"] = f"{export}?{query.urlencode()}" if valid else None
        return context


class ActivityExportView(PortalMixin, View):
    """The filtered activity as CSV, streamed; text cells neutralised (SPEC §7)."""

    def get(self, request):
        scope = self.scope
        filterset = ActivityFilter(request.GET or None, queryset=ledger_for(scope), scope=scope)
        if filterset.is_bound and not filterset.is_valid():
            problems = "; ".join(
                f"{name}: {' '.join(errors)}" for name, errors in filterset.errors.items()
            )
            return HttpResponse(
                f"Bad filter: {problems}\n", status=400, content_type="text/plain; charset=utf-8"
            )
        response = StreamingHttpResponse(
            activity_csv_rows(filterset.qs, scope.company.tz), content_type="text/csv"
        )
        stamp = timezone.localdate(timezone=scope.company.tz).isoformat()
        response["Content-Disposition"] = (
            f'attachment; filename="activity-{scope.company.slug}-{stamp}.csv"'
        )
        return response


class _Echo:
    def write(self, value: str) -> str:
        return value


ACTIVITY_CSV_HEADER = [
    "when",
    "entry_type",
    "balance",
    "amount",
    "balance_after",
    "by",
    "reference",
    "memo",
    "entry_id",
]


def activity_csv_rows(queryset, tz):
    """The CSV lines of `queryset` (ledger entries), read in chunks."""
    writer = csv.writer(_Echo())
    yield writer.writerow(ACTIVITY_CSV_HEADER)
    for entry in queryset.iterator(chunk_size=2000):
        yield writer.writerow(
            [
                timezone.localtime(entry.created_at, tz).isoformat(),
                entry.entry_type,
                neutralise(entry_account_label(entry)),
                f"{entry.amount:.4f}",
                f"{entry.balance_after:.4f}",
                neutralise(entry.created_by.get_username() if entry.created_by else ""),
                neutralise(entry.reference),
                neutralise(entry.memo),
                entry.pk,
            ]
        )


class AddCreditsView(PortalMixin, TemplateView):
    """GET shows the form; POST without `confirm` validates and shows what will happen;
    POST with `confirm` records the purchase. The hidden token is the idempotency key,
    so a double submit of the confirmation records one purchase."""

    template_name = "credits/add_credits.html"
    confirm_template_name = "credits/add_credits_confirm.html"

    def get(self, request, *args, **kwargs):
        form = AddCreditsForm(scope=self.scope, initial={"token": new_token()})
        return self.render_to_response(self.get_context_data(form=form))

    def post(self, request, *args, **kwargs):
        form = AddCreditsForm(request.POST, scope=self.scope)
        if "edit" in request.POST or not form.is_valid():
            return self.render_to_response(self.get_context_data(form=form), status=200)
        if "confirm" not in request.POST:
            return self.response_class(
                request=request,
                template=[self.confirm_template_name],
                context=self.get_context_data(form=form, target=self._target(form)),
                using=self.template_engine,
            )
        data = form.cleaned_data
        try:
            entry = credits_purchase(
                company=self.scope.company,
                amount=data["amount"],
                office=data.get("office"),
                actor=request.user,
                reference=data.get("reference", ""),
                memo="Added in the portal",
                idempotency_key=f"portal:{request.user.pk}:{data['token']}",
            )
        except DomainError as error:
            form.add_error(None, error.message)
            return self.render_to_response(self.get_context_data(form=form), status=200)
        noun = credits_noun(entry.amount)
        messages.success(
            request,
            f"{credits(entry.amount)} {noun} {'was' if noun == 'credit' else 'were'} added to "
            f"{form.destination}. "
            f"Its balance is now {credits(entry.balance_after)}.",
        )
        return redirect("portal:balance")

    def _target(self, form) -> Account | None:
        """The balance that will receive the credits (for the summary)."""
        company = self.scope.company
        if company.pooling_enabled:
            return Account.objects.filter(company=company, kind=AccountKind.POOL).first()
        return Account.objects.filter(
            company=company, kind=AccountKind.WALLET, office=form.cleaned_data["office"]
        ).first()
