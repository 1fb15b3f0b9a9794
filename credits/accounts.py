"""Accounts (SPEC §2): the company pool, one wallet per office, the AI agent account.

Credits opens them; offices only creates companies and offices. A company or office
created elsewhere gets its accounts from the first write that needs them."""

from __future__ import annotations

from django.db import transaction

from credits.models import Account, AccountKind
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
    Account.objects.bulk_create(wanted, ignore_conflicts=True)


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
