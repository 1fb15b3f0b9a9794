"""Credit request pages: the list (both roles, scoped), asking (office admins), one
request with its decision (company admins decide)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect
from django.views import View
from django.views.generic import FormView, TemplateView
from django_filters.views import FilterView
from django_tables2 import SingleTableMixin

from core.errors import DomainError, PermissionDenied
from core.money import credits_noun
from credits.requests.filters import CreditRequestFilter
from credits.requests.forms import CreditRequestForm, DeclineForm
from credits.requests.selectors import credit_requests_for
from credits.requests.services import (
    credit_request_approve,
    credit_request_create,
    credit_request_decline,
)
from credits.requests.tables import CreditRequestTable
from offices.templatetags.portal_format import credits
from offices.views import PortalMixin, ScopedListMixin

PER_PAGE = 50


class CreditRequestListView(PortalMixin, ScopedListMixin, SingleTableMixin, FilterView):
    template_name = "credits/requests/list.html"
    table_class = CreditRequestTable
    filterset_class = CreditRequestFilter
    table_pagination = {"per_page": PER_PAGE}

    def get_queryset(self):
        return credit_requests_for(self.scope)


class CreditRequestCreateView(PortalMixin, FormView):
    """Office admins ask; company admins add credits themselves."""

    template_name = "credits/requests/new.html"
    form_class = CreditRequestForm

    def get_form_kwargs(self):
        if self.scope.is_company_admin:
            raise PermissionDenied(
                "Company admins add credits directly (Add credits); office admins request them."
            )
        return super().get_form_kwargs() | {"scope": self.scope}

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            request = credit_request_create(
                company=self.scope.company,
                office=data["office"],
                amount=data["amount"],
                note=data["note"],
                actor=self.request.user,
            )
        except DomainError as error:
            items = getattr(error, "errors", None) or [{"field": None, "message": error.message}]
            for item in items:
                name = item.get("field")
                form.add_error(name if name in form.fields else None, item["message"])
            return self.form_invalid(form)
        messages.success(
            self.request,
            f"Your request of {credits(request.amount)} {credits_noun(request.amount)} for "
            f"{request.office.name} was sent to your company admins.",
        )
        return redirect("portal:credit_request", pk=request.pk)


class CreditRequestDetailView(PortalMixin, TemplateView):
    template_name = "credits/requests/detail.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        request = credit_requests_for(self.scope).filter(pk=self.kwargs["pk"]).first()
        if request is None:
            raise Http404("No such credit request.")
        context["credit_request"] = request
        context.setdefault("decline_form", DeclineForm())
        return context


class CreditRequestDecideView(PortalMixin, View):
    """POST decision=approve, or decision=decline with a reason (company admins)."""

    http_method_names = ["post"]

    def post(self, request, pk):
        if not self.scope.is_company_admin:
            raise PermissionDenied("Only company admins decide credit requests.")
        if not credit_requests_for(self.scope).filter(pk=pk).exists():
            raise Http404("No such credit request.")
        decision = request.POST.get("decision")
        if decision == "approve":
            decided = credit_request_approve(
                company=self.scope.company, request_id=pk, actor=request.user
            )
            entry = decided.purchase
            messages.success(
                request,
                f"Approved: {credits(entry.amount)} {credits_noun(entry.amount)} were added. "
                f"That balance is now {credits(entry.balance_after)}.",
            )
            return redirect("portal:credit_request", pk=pk)
        if decision == "decline":
            form = DeclineForm(request.POST)
            if not form.is_valid():
                view = CreditRequestDetailView(request=request, kwargs={"pk": pk}, args=())
                view.scope = self.scope
                context = view.get_context_data(decline_form=form)
                response = view.render_to_response(context, status=422)
                return response
            credit_request_decline(
                company=self.scope.company,
                request_id=pk,
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
            messages.success(request, "The request was declined; its requester is told why.")
            return redirect("portal:credit_request", pk=pk)
        raise DomainError("Choose approve or decline.")
