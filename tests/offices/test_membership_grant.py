from offices.models import Membership, Role
from offices.services import membership_grant
from tests.factories import UserFactory


def test_granting_a_membership_twice_returns_the_first_and_adds_nothing(company):
    user = UserFactory(username="dana")
    austin = company.offices.get(slug="austin")
    first_company = membership_grant(user=user, company=company)
    first_office = membership_grant(user=user, company=company, office=austin)
    # when: granted again
    again_company = membership_grant(user=user, company=company)
    again_office = membership_grant(user=user, company=company, office=austin)
    # then: the same rows, nothing new
    assert (again_company, again_office) == (first_company, first_office)
    assert sorted(Membership.objects.filter(user=user).values_list("role", flat=True)) == [
        Role.COMPANY_ADMIN,
        Role.OFFICE_ADMIN,
    ]
