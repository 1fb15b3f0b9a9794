"""The balance page's reads: the shortcuts taken for company admins return exactly what
the general form of each selector returns."""

import pytest
from django.urls import NoReverseMatch, reverse

from credits.selectors import balance_activity, visible_accounts
from credits.services import credits_purchase
from credits.views import office_url_maker
from offices.selectors import portal_scope_for
from tests.factories import company_admin, office_admin


def test_office_urls_are_those_reverse_gives(db):
    office_url = office_url_maker()
    for slug in ["hq", "o-001", "branch_2", "X9"]:
        assert office_url(slug) == reverse("portal:office", args=[slug])
    # Not a slug: refused exactly as reverse() refuses it.
    with pytest.raises(NoReverseMatch):
        office_url("a b")


def test_every_visible_balance_is_the_balances_of_every_visible_office(company, care):
    # given: a wallet with credits for austin, and both kinds of admin
    credits_purchase(
        company=company, amount="5", office=company.offices.get(slug="austin"), actor=care
    )
    admin = portal_scope_for(company_admin(company, username="ca"))
    austin = portal_scope_for(office_admin(company.offices.get(slug="austin"), username="oa"))
    for scope in (admin, austin):
        # when / then
        explicit = visible_accounts(scope, scope.offices().values_list("pk", flat=True))
        assert sorted(a.pk for a in visible_accounts(scope)) == sorted(a.pk for a in explicit)
    assert len(visible_accounts(admin)) == 5  # pool, AI credits, 3 wallets
    assert {a.office.slug for a in visible_accounts(austin) if a.office} == {"austin"}


def test_activity_of_every_balance_is_for_company_admins_only(company, care):
    credits_purchase(
        company=company, amount="5", office=company.offices.get(slug="austin"), actor=care
    )
    credits_purchase(
        company=company, amount="7", office=company.offices.get(slug="berlin"), actor=care
    )
    admin = portal_scope_for(company_admin(company, username="ca"))
    everything = balance_activity(admin, None)
    assert everything == balance_activity(admin, visible_accounts(admin))
    assert len(everything) == 2
    austin = portal_scope_for(office_admin(company.offices.get(slug="austin"), username="oa"))
    with pytest.raises(ValueError):
        balance_activity(austin, None)
