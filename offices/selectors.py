"""Who may see what in the portal (SPEC §5). Every page, filter and export asks
`portal_scope_for` and reads through the returned scope; no view decides on its own."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery

from offices.models import Company, Membership, Office, OfficeAddOn, Role


@dataclass(frozen=True)
class PortalScope:
    """What one portal user may see: one company, all of it or some of its offices."""

    user: object
    company: Company
    is_company_admin: bool
    office_ids: frozenset[
        int
    ]  # the offices an office admin administers (unused for company admins)
    primary_office_id: int | None = None

    @property
    def role_label(self) -> str:
        return Role.COMPANY_ADMIN.label if self.is_company_admin else Role.OFFICE_ADMIN.label

    def restrict(self, queryset: QuerySet) -> QuerySet:
        """`queryset` (of a model with `company` and `office` keys: usage records,
        allowances, wallets) limited to this company and, for office admins, to their
        offices. Filtering on the row's own company key keeps the (company, time)
        indexes usable."""
        queryset = queryset.filter(company=self.company)
        if not self.is_company_admin:
            queryset = queryset.filter(office_id__in=self.office_ids)
        return queryset

    def offices(self) -> QuerySet[Office]:
        """The offices this user may see, primary first then by name."""
        queryset = Office.objects.filter(company=self.company)
        if not self.is_company_admin:
            queryset = queryset.filter(pk__in=self.office_ids)
        return queryset.order_by("-is_primary", "name", "pk")

    def offices_with_plans(self) -> QuerySet[Office]:
        """Visible offices with plan and add-ons loaded (included credits without a query
        per office)."""
        return (
            self.offices()
            .select_related("plan")
            .prefetch_related(
                Prefetch("office_addons", queryset=OfficeAddOn.objects.select_related("addon"))
            )
        )

    def sees_office(self, office_id: int) -> bool:
        return self.is_company_admin or office_id in self.office_ids

    @property
    def sees_ai_credits(self) -> bool:
        """The AI agent balance is held by the primary office: company admins and that
        office's admins see it."""
        return self.is_company_admin or self.primary_office_id in self.office_ids


def portal_scope_for(user) -> PortalScope | None:
    """The scope of a logged-in user, or None when they hold no portal role (→ 403).

    A user with memberships in several companies is scoped to the first by name, so
    one page never mixes tenants."""
    if user is None or not user.is_authenticated or not user.is_active:
        return None
    # The company's primary office comes along in the same query (a page asks on every
    # request): one primary per company is a database constraint.
    primary = Office.objects.filter(company=OuterRef("company_id"), is_primary=True)
    memberships = list(
        Membership.objects.filter(user=user)
        .select_related("company")
        .annotate(primary_office_id=Subquery(primary.order_by().values("pk")[:1]))
        .order_by("company__name", "company_id")
    )
    if not memberships:
        return None
    company = memberships[0].company
    mine = [m for m in memberships if m.company_id == company.pk]
    is_company_admin = any(m.role == Role.COMPANY_ADMIN for m in mine)
    office_ids = frozenset(
        m.office_id for m in mine if m.role == Role.OFFICE_ADMIN and m.office_id is not None
    )
    if not is_company_admin and not office_ids:
        return None
    return PortalScope(
        user=user,
        company=company,
        is_company_admin=is_company_admin,
        office_ids=office_ids,
        primary_office_id=memberships[0].primary_office_id,
    )


def company_scope(company: Company) -> PortalScope:
    """Everything of one company, as its company admins see it: the scope of the API's
    company keys."""
    return PortalScope(user=None, company=company, is_company_admin=True, office_ids=frozenset())
