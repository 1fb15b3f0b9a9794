"""Accounts (SPEC §2): the company pool, one wallet per office, the AI agent account.

Credits opens them; offices only creates companies and offices. A company or office
created elsewhere gets its accounts from the first write that needs them."""

from __future__ import annotations

from django.db import transaction
from django.db.models import Q

from credits.alerts import thresholds_refresh
from credits.models import Account, AccountKind, CompanyControls
from offices.models import Company, Office
from offices.services import company_create, office_create


def accounts_ensure(*, company: Company) -> None:
    """Create any missing account of the company: its pool, its AI agent account and one
    wallet per office. Idempotent and safe under concurrency (insert-or-ignore)."""
    wanted = [
        Account(company=company, kind=AccountKind.POOL),
        Account(company=company, kind=AccountKind.AI_AGENT),
    ]
    wanted += [
        Account(company=company, office_id=office_id, kind=AccountKind.WALLET)
        for office_id in Office.objects.filter(company=company).values_list("id", flat=True)
    ]
    existing = set(Account.objects.filter(company=company).values_list("kind", "office_id"))
    missing = [a for a in wanted if (a.kind, a.office_id) not in existing]
    if not missing:
        return
    Account.objects.bulk_create(missing, ignore_conflicts=True)
    # A new balance of a company with a default low-balance threshold starts at zero,
    # below it: its threshold and alert are set at once (SPEC §8.2, invariant 11).
    if CompanyControls.objects.filter(company=company, alert_threshold__isnull=False).exists():
        new = Q()
        for a in missing:
            new |= Q(kind=a.kind, office_id=a.office_id)
        locked = list(
            Account.objects.select_for_update().filter(new, company=company).order_by("pk")
        )
        pooling = Company.objects.filter(pk=company.pk).values_list("pooling_enabled", flat=True)[0]
        thresholds_refresh(company=company, accounts=locked, pooling=pooling)


@transaction.atomic
def company_open(**kwargs) -> Company:
    """A new company (offices.services.company_create) with its pool, AI agent account
    and its primary office's wallet."""
    company = company_create(**kwargs)
    accounts_ensure(company=company)
    return company


@transaction.atomic
def office_open(**kwargs) -> Office:
    """A new office (offices.services.office_create) with its own wallet."""
    office = office_create(**kwargs)
    accounts_ensure(company=office.company)
    return office
