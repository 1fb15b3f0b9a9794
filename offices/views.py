"""Portal access (one mixin every page uses), the home redirect and the office page."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views import View

from core.errors import DomainError
from offices.selectors import PortalScope, portal_scope_for


class PortalMixin:
    """Anonymous → login; logged in without a role → 403; otherwise `self.scope` says
    what this user may see, and templates get it as `scope`."""

    scope: PortalScope

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        scope = portal_scope_for(request.user)
        if scope is None:
            return self.no_role(request)
        self.scope = scope
        try:
            response = super().dispatch(request, *args, **kwargs)
        except DomainError as error:
            # The one place where a refused business rule becomes an HTTP answer on a page.
            response = render(
                request,
                "error.html",
                {"message": error.message, "scope": scope, "status": error.status_code},
                status=error.status_code,
            )
        # Every portal page and export shows balances or usage: never kept in a cache.
        add_never_cache_headers(response)
        return response

    def no_role(self, request):
        """A logged-in user without a portal role: 403 (whose page points staff to the
        admin)."""
        raise PermissionDenied("Your account has no role in a company's portal.")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["scope"] = self.scope
        context["company"] = self.scope.company
        context["portal_tz"] = self.scope.company.billing_timezone
        return context


class ScopedListMixin:
    """A list page (django-filter + django-tables2) whose filters see only the user's
    scope and whose table shows times in the company's time zone."""

    def get_filterset_kwargs(self, filterset_class):
        kwargs = super().get_filterset_kwargs(filterset_class)
        kwargs["scope"] = self.scope
        return kwargs

    def get_table_kwargs(self):
        return {"tz": self.scope.company.tz}


class HomeView(PortalMixin, View):
    """Company admins land on the company balance, office admins on their office, and
    staff who sign in here (customer care) on the admin, where their work is."""

    def no_role(self, request):
        if request.user.is_staff:
            return redirect("admin:index")
        return super().no_role(request)

    def get(self, request):
        if self.scope.is_company_admin:
            return redirect("portal:balance")
        office = self.scope.offices().first()
        return redirect("portal:office", slug=office.slug)
