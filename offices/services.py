"""Writes for companies, offices and memberships."""

from __future__ import annotations

from django.db import transaction

from offices.models import AddOn, Company, Membership, Office, OfficeAddOn, Plan, Role


@transaction.atomic
def company_create(
    *,
    name: str,
    slug: str,
    primary_office_name: str,
    primary_office_slug: str,
    plan: Plan,
    billing_timezone: str = "UTC",
    actor=None,
) -> Company:
    """A company always has exactly one primary office (its accounts: credits.accounts)."""
    company = Company(name=name, slug=slug, billing_timezone=billing_timezone)
    company.full_clean()
    company.save()
    office_create(
        company=company,
        name=primary_office_name,
        slug=primary_office_slug,
        plan=plan,
        is_primary=True,
        actor=actor,
    )
    return company


@transaction.atomic
def office_create(
    *, company: Company, name: str, slug: str, plan: Plan, is_primary: bool = False, actor=None
) -> Office:
    """An office of a company (its wallet: credits.accounts.office_open)."""
    office = Office(company=company, name=name, slug=slug, plan=plan, is_primary=is_primary)
    office.full_clean()
    office.save()
    return office


def office_addon_set(*, office: Office, addon: AddOn, quantity: int, actor=None) -> OfficeAddOn:
    obj, _ = OfficeAddOn.objects.update_or_create(
        office=office, addon=addon, defaults={"quantity": quantity}
    )
    return obj


def membership_grant(*, user, company: Company, office: Office | None = None) -> Membership:
    """Company admin when no office is given, otherwise office admin of that office."""
    role = Role.OFFICE_ADMIN if office else Role.COMPANY_ADMIN
    existing = Membership.objects.filter(user=user, company=company, office=office).first()
    if existing is not None:
        # Granting what is already granted changes nothing (full_clean would call it a clash).
        return existing
    membership = Membership(user=user, company=company, office=office, role=role)
    membership.full_clean()
    obj, _ = Membership.objects.get_or_create(
        user=user, company=company, office=office, defaults={"role": role}
    )
    return obj
