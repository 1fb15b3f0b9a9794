"""The one selector that decides what a portal user may see."""

from offices.selectors import portal_scope_for
from offices.services import membership_grant
from tests.factories import UserFactory, company_factory


def test_company_admin_sees_every_office(acme, acme_admin):
    scope = portal_scope_for(acme_admin)
    assert scope.is_company_admin
    assert set(scope.offices().values_list("slug", flat=True)) == {"hq", "austin", "berlin"}


def test_office_admin_sees_their_offices_only(acme, offices):
    user = UserFactory(username="two-offices")
    membership_grant(user=user, company=acme, office=offices["austin"])
    membership_grant(user=user, company=acme, office=offices["berlin"])
    scope = portal_scope_for(user)
    assert not scope.is_company_admin
    assert list(scope.offices().values_list("slug", flat=True)) == ["austin", "berlin"]
    assert not scope.sees_ai_credits


def test_user_of_two_companies_is_scoped_to_the_first_by_name(acme, services):
    zeta = company_factory(slug="zeta", name="Zeta")
    user = UserFactory(username="both")
    membership_grant(user=user, company=zeta)
    membership_grant(user=user, company=acme, office=acme.offices.get(slug="berlin"))
    scope = portal_scope_for(user)
    assert scope.company == acme and not scope.is_company_admin
    assert list(scope.offices().values_list("slug", flat=True)) == ["berlin"]


def test_no_membership_no_scope(acme, no_role_user):
    assert portal_scope_for(no_role_user) is None


def test_inactive_user_has_no_scope(acme, acme_admin):
    acme_admin.is_active = False
    acme_admin.save()
    assert portal_scope_for(acme_admin) is None
