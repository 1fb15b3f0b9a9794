"""The team page (/team/, company admins only) and accepting an invite (public link)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.http import Http404
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views import View
from django.views.generic import FormView, TemplateView
from django_tables2 import RequestConfig

from core.errors import DomainError, PermissionDenied, ValidationFailed
from offices.models import Role
from offices.team.forms import AccessForm, InviteAcceptForm, InviteForm
from offices.team.selectors import (
    pending_invites_for,
    team_changes_for,
    team_member_for,
    team_members_for,
)
from offices.team.services import (
    invite_accept,
    invite_create,
    invite_for_token,
    invite_resend,
    invite_revoke,
    member_access_set,
    member_remove,
)
from offices.team.tables import InviteTable, MemberTable, TeamChangeTable, member_access
from offices.views import PortalMixin

TEAM_PER_PAGE = 50


def link_base(request) -> str:
    """The portal's address as this request reached it, for links in mail."""
    return request.build_absolute_uri("/").rstrip("/")


def form_errors_from(form, error: DomainError) -> None:
    """A refused service call shown on the form: per field where the error names one."""
    items = getattr(error, "errors", None) or []
    placed = False
    for item in items:
        name = item.get("field")
        if name in form.fields:
            form.add_error(name, item["message"])
            placed = True
    if not placed:
        form.add_error(None, error.message)


class CompanyAdminOnly:
    """Team pages are for company admins: office admins get 403."""

    def dispatch(self, request, *args, **kwargs):
        if not self.scope.is_company_admin:
            raise PermissionDenied("Only company admins manage the team.")
        return super().dispatch(request, *args, **kwargs)


class TeamView(PortalMixin, CompanyAdminOnly, TemplateView):
    template_name = "offices/team/team.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        tz = self.scope.company.tz
        paginate = {"per_page": TEAM_PER_PAGE}
        members = MemberTable(team_members_for(self.scope), tz=tz)
        invites = InviteTable(
            pending_invites_for(self.scope),
            tz=tz,
            csrf_token=get_token(self.request),
            prefix="invites-",
        )
        changes = TeamChangeTable(team_changes_for(self.scope), tz=tz, prefix="changes-")
        for table in (members, invites, changes):
            RequestConfig(self.request, paginate=paginate).configure(table)
        context.update(members_table=members, invites_table=invites, changes_table=changes)
        return context


class InviteCreateView(PortalMixin, CompanyAdminOnly, FormView):
    template_name = "offices/team/invite.html"
    form_class = InviteForm

    def get_form_kwargs(self):
        return super().get_form_kwargs() | {"scope": self.scope}

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            invite = invite_create(
                company=self.scope.company,
                email=data["email"],
                role=data["role"],
                offices=data["offices"],
                actor=self.request.user,
                link_base=link_base(self.request),
            )
        except ValidationFailed as error:
            form_errors_from(form, error)
            return self.form_invalid(form)
        messages.success(self.request, f"An invite was e-mailed to {invite.email}.")
        return redirect("portal:team")


class InviteResendView(PortalMixin, CompanyAdminOnly, View):
    http_method_names = ["post"]

    def post(self, request, pk):
        invite = invite_resend(
            company=self.scope.company,
            invite_id=pk,
            actor=request.user,
            link_base=link_base(request),
        )
        messages.success(request, f"A new invite link was e-mailed to {invite.email}.")
        return redirect("portal:team")


class InviteRevokeView(PortalMixin, CompanyAdminOnly, TemplateView):
    """GET asks to confirm; POST withdraws the invite."""

    template_name = "offices/team/confirm.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        invite = pending_invites_for(self.scope).filter(pk=self.kwargs["pk"]).first()
        if invite is None:
            raise Http404("No such pending invite.")
        context.update(
            heading="Revoke this invite?",
            question=f"The invite link sent to {invite.email} will stop working.",
            button="Revoke invite",
        )
        return context

    def post(self, request, pk):
        invite = invite_revoke(company=self.scope.company, invite_id=pk, actor=request.user)
        messages.success(request, f"The invite of {invite.email} was revoked.")
        return redirect("portal:team")


class MemberMixin(CompanyAdminOnly):
    def member(self):
        member = team_member_for(self.scope, self.kwargs["user_id"])
        if member is None:
            raise Http404("No such person on your team.")
        return member


class MemberView(PortalMixin, MemberMixin, FormView):
    template_name = "offices/team/member.html"
    form_class = AccessForm

    def get_form_kwargs(self):
        self.person = self.member()
        memberships = self.person.team_memberships
        is_admin = any(m.role == Role.COMPANY_ADMIN for m in memberships)
        initial = {
            "role": Role.COMPANY_ADMIN if is_admin else Role.OFFICE_ADMIN,
            "offices": [m.office_id for m in memberships if m.office_id],
        }
        return super().get_form_kwargs() | {"scope": self.scope, "initial": initial}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["person"] = self.person
        context["access"] = member_access(self.person)
        return context

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            changed = member_access_set(
                company=self.scope.company,
                user_id=self.person.pk,
                role=data["role"],
                offices=data["offices"],
                actor=self.request.user,
            )
        except ValidationFailed as error:
            form_errors_from(form, error)
            return self.form_invalid(form)
        name = self.person.get_username()
        messages.success(
            self.request, f"{name}'s access was changed." if changed else "Nothing changed."
        )
        return redirect("portal:team")


class MemberRemoveView(PortalMixin, MemberMixin, TemplateView):
    """GET asks to confirm; POST removes the person's access to the company."""

    template_name = "offices/team/confirm.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        person = self.member()
        context.update(
            heading=f"Remove {person.get_username()}'s access?",
            question=(
                f"{person.get_username()} ({member_access(person)}) will no longer see "
                f"{self.scope.company.name} in the portal."
            ),
            button="Remove access",
        )
        return context

    def post(self, request, user_id):
        person = self.member()
        member_remove(company=self.scope.company, user_id=person.pk, actor=request.user)
        messages.success(request, f"{person.get_username()} no longer has access.")
        if person.pk == request.user.pk:
            return redirect("login")
        return redirect("portal:team")


class InviteAcceptView(View):
    """The link of an invite: choose a username and a password, then you are signed in.
    A used, revoked, replaced or expired link is a 410 page, a tampered one a 400."""

    template_name = "offices/team/accept.html"

    def dispatch(self, request, *args, **kwargs):
        response = super().dispatch(request, *args, **kwargs)
        add_never_cache_headers(response)
        return response

    def _refused(self, request, error: DomainError):
        return render(
            request,
            "offices/team/link_refused.html",
            {"message": error.message},
            status=error.status_code,
        )

    def get(self, request, token):
        try:
            invite = invite_for_token(token)
        except DomainError as error:
            return self._refused(request, error)
        form = InviteAcceptForm(initial={"username": invite.email})
        return render(request, self.template_name, {"form": form, "invite": invite})

    def post(self, request, token):
        try:
            invite = invite_for_token(token)
        except DomainError as error:
            return self._refused(request, error)
        form = InviteAcceptForm(request.POST)
        if form.is_valid():
            try:
                user = invite_accept(
                    token=token,
                    username=form.cleaned_data["username"],
                    password=form.cleaned_data["password1"],
                )
            except ValidationFailed as error:
                if error.errors:
                    for item in error.errors:
                        field = "password1" if item["field"] == "password" else item["field"]
                        form.add_error(field if field in form.fields else None, item["message"])
                else:
                    return self._refused(request, error)
            except DomainError as error:
                return self._refused(request, error)
            else:
                login(request, user, backend="django.contrib.auth.backends.ModelBackend")
                messages.success(request, f"Welcome, {user.get_username()}.")
                return redirect("portal:home")
        return render(request, self.template_name, {"form": form, "invite": invite}, status=200)
