"""The company balance page and the add-credits flow (form → summary → record)."""

from __future__ import annotations

import re

from django.contrib import messages
from django.shortcuts import redirect
from django.urls import reverse
from django.views.generic import TemplateView

from core.errors import DomainError
from credits.models import Account, AccountKind
from credits.portal_forms import AddCreditsForm, new_token
from credits.selectors import BalanceOverview, balance_overview
from credits.services import credits_purchase
from offices.templatetags.portal_format import credits as fmt
from offices.templatetags.portal_format import percent
from offices.views import PortalMixin


class BalanceView(PortalMixin, TemplateView):
    template_name = "credits/balance.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        overview = balance_overview(self.scope)
        context["overview"] = overview
        context["office_table"] = office_table(overview)
        # The table's optional columns, decided once rather than in each row.
        context["show_share"] = overview.pooling_on or bool(overview.pool_drawn_total)
        context["show_wallet"] = not overview.pooling_on
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


def office_table(overview: BalanceOverview) -> list[dict]:
    """The offices table's cells, formatted once here: with hundreds of offices, a filter or
    {% url %} in each cell was most of the page's time. Plain dicts are also the template
    language's fastest lookup."""
    office_url = office_url_maker()
    pooling_on = overview.pooling_on
    table = []
    for row in overview.rows:
        office, standard, ai_agent = row.office, row.standard, row.ai_agent
        uncovered = row.uncovered
        table.append(
            {
                "slug": office.slug,
                "url": office_url(office.slug),
                "name": office.name,
                "is_primary": office.is_primary,
                "plan": office.plan.name,
                "standard_included": fmt(standard.included),
                "standard_used": fmt(standard.used),
                "standard_remaining": fmt(standard.remaining),
                "ai_included": fmt(ai_agent.included),
                "ai_used": fmt(ai_agent.used),
                "ai_remaining": fmt(ai_agent.remaining),
                # Drawn from the pool while pooling is on, else from the office's wallet.
                "drawn": fmt(standard.pool_drawn if pooling_on else standard.wallet_drawn),
                "share": None if row.pool_share is None else percent(row.pool_share),
                "share_class": row.share_class,
                "wallet": fmt(row.wallet.balance if row.wallet is not None else None),
                "uncovered": fmt(uncovered),
                "any_uncovered": bool(uncovered),
            }
        )
    return table


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
            f"{fmt(entry.amount)} credits were added to {form.destination}. "
            f"Its balance is now {fmt(entry.balance_after)}.",
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
