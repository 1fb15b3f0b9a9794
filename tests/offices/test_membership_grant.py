from offices.models import Membership
from offices.services import membership_grant
from tests.factories import UserFactory


def test_granting_the_same_membership_twice_returns_the_first(company):
    user = UserFactory(username="twice")
    austin = company.offices.get(slug="austin")
    first = membership_grant(user=user, company=company)
    again = membership_grant(user=user, company=company)
    office_first = membership_grant(user=user, company=company, office=austin)
    office_again = membership_grant(user=user, company=company, office=austin)
    assert (again.pk, office_again.pk) == (first.pk, office_first.pk)
    assert Membership.objects.filter(user=user).count() == 2
