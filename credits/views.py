"""The company balance page and the add-credits flow (form → summary → record)."""

from __future__ import annotations

import re
from decimal import Decimal
from html import escape

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.generic import TemplateView

from core.errors import DomainError
from credits.controls_selectors import balance_controls
from credits.models import Account, AccountKind
from credits.portal_forms import AddCreditsForm, new_token
from credits.selectors import BalanceOverview, balance_overview
from credits.services import credits_purchase
from offices.templatetags.portal_format import credits, percent
from offices.views import PortalMixin


class BalanceView(PortalMixin, TemplateView):
    template_name = "credits/balance.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        overview = balance_overview(self.scope)
        context["overview"] = overview
        context["money_controls"] = balance_controls(
            self.scope, {row.office_id: row.pool_drawn for row in overview.rows}
        )
        # The table's optional columns, decided once rather than in each row.
        show_share = overview.pooling_on or bool(overview.pool_drawn_total)
        show_wallet = not overview.pooling_on
        context["show_share"] = show_share
        context["show_wallet"] = show_wallet
        context["office_table_rows"] = office_table_rows(
            overview, show_share=show_share, show_wallet=show_wallet
        )
        return context


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


def office_table_rows(
    overview: BalanceOverview, *, show_share: bool, show_wallet: bool
) -> SafeString:
    """The <tr> rows of the offices table, built here rather than in the template: with
    hundreds of offices, resolving and escaping a dozen template variables per row was
    most of the page's time. Names, slugs and URLs are escaped as the template would
    (django.utils.html.escape is html.escape); the figures come from `credits` and
    `percent`, which print only digits, separators, signs, "%" and "—"."""
    office_url = office_url_maker()
    fmt = remembering_credits()
    pooling_on = overview.pooling_on
    rows = []
    for row in overview.rows:
        standard, ai_agent = row.standard, row.ai_agent
        slug = escape(row.slug)
        uncovered = row.uncovered
        cells = [
            f'<tr data-office="{slug}">',
            f'<th scope="row"><a href="{escape(office_url(row.slug))}">{escape(row.name)}</a>'
            f"{PRIMARY_TAG if row.is_primary else ''}</th>",
            f'<td class="nowrap">{escape(row.plan)}</td>',
            f'<td class="num">{fmt(standard.included)}</td>',
            f'<td class="num">{fmt(standard.used)}</td>',
            f'<td class="num remaining">{fmt(standard.remaining)}</td>',
            f'<td class="num">{fmt(ai_agent.included)}</td>',
            f'<td class="num">{fmt(ai_agent.used)}</td>',
            f'<td class="num">{fmt(ai_agent.remaining)}</td>',
            # Drawn from the pool while pooling is on, else from the office's wallet.
            '<td class="num pool-drawn">'
            f"{fmt(standard.pool_drawn if pooling_on else standard.wallet_drawn)}</td>",
        ]
        if show_share:
            if row.pool_share is None:
                cells.append('<td class="num share">—</td>')
            else:
                cells.append(
                    '<td class="num share"><span class="sharebar">'
                    f'<span class="sharefill {row.share_class}"></span></span> '
                    f"{percent(row.pool_share)}</td>"
                )
        if show_wallet:
            cells.append(f'<td class="num wallet">{fmt(row.wallet_balance)}</td>')
        cells.append(f'<td class="num{" bad" if uncovered else ""}">{fmt(uncovered)}</td>')
        cells.append("</tr>")
        rows.append("\n".join(cells))
    # Reviewed: every text above is escaped (tests/portal/test_page_escaping.py).
    return mark_safe("\n".join(rows))  # noqa: S308 # nosec B308, B703


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
        messages.success(
            request,
            f"{credits(entry.amount)} credits were added to {form.destination}. "
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
