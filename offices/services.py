"""Writes for companies, offices and memberships."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django.contrib.admin.models import CHANGE, LogEntry
from django.db import transaction

from core.errors import ValidationFailed
from offices.locks import lock_company
from offices.models import (
    LATE_WINDOW_MAX,
    AddOn,
    Company,
    Membership,
    Office,
    OfficeAddOn,
    Plan,
    Role,
)


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


def late_window_parse(value) -> int:
    """A late-event window: a whole number of days from 1 to LATE_WINDOW_MAX."""
    field, problem = "late_event_window_days", None
    try:
        days = Decimal(str(value).strip())
    except (InvalidOperation, ValueError, TypeError):
        days = None
    if days is None or not days.is_finite() or days != days.to_integral_value():
        problem = "Enter a whole number of days."
    elif not 1 <= days <= LATE_WINDOW_MAX:
        problem = f"Between 1 and {LATE_WINDOW_MAX} days."
    if problem:
        raise ValidationFailed(f"{field}: {problem}", [{"field": field, "message": problem}])
    return int(days)


@transaction.atomic
def late_window_set(*, company: Company, days, actor) -> Company:
    """Set how many days back a usage event's occurred_at may lie (SPEC §10.3); the change
    is written to the admin audit log with the old and the new value. Setting the value it
    already has changes and logs nothing."""
    days = late_window_parse(days)
    locked = lock_company(company.pk, exclusive=True)
    old = locked.late_event_window_days
    if old != days:
        Company.objects.filter(pk=company.pk).update(late_event_window_days=days)
        LogEntry.objects.log_actions(
            user_id=actor.pk,
            queryset=[locked],
            action_flag=CHANGE,
            change_message=f"Late-event window: {old} → {days} days.",
            single_object=True,
        )
    company.late_event_window_days = days
    return company
