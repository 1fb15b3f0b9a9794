"""The company balance page and the add-credits flow (form → summary → record)."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect
from django.views.generic import TemplateView

from core.errors import DomainError
from credits.models import Account, AccountKind
from credits.portal_forms import AddCreditsForm, new_token
from credits.selectors import balance_overview
from credits.services import credits_purchase
from offices.templatetags.portal_format import credits as fmt
from offices.views import PortalMixin


class BalanceView(PortalMixin, TemplateView):
    template_name = "credits/balance.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["overview"] = balance_overview(self.scope)
        return context


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
