"""Customer care manages portal users, not other staff (SPEC §5): every admin route that
could change a staff account, or make someone staff, refuses it unless a superuser asks."""

import pytest
from django.contrib.auth.models import Group, Permission, User

from offices.roles import CUSTOMER_CARE_GROUP
from tests.admin.conftest import form_data
from tests.factories import UserFactory, customer_care_user

pytestmark = pytest.mark.django_db

NEW_PASSWORD = {"password1": "Taken-Over-987", "password2": "Taken-Over-987"}
NEW_PASSWORD_FORM = {**NEW_PASSWORD, "usable_password": "true"}


def change_url(user) -> str:
    return f"/admin/auth/user/{user.pk}/change/"


def password_url(user) -> str:
    return f"/admin/auth/user/{user.pk}/password/"


@pytest.fixture
def colleague(db):
    """Another staff member, not a superuser: someone with more rights than care."""
    user = UserFactory(username="ops", is_staff=True, first_name="Olive")
    user.user_permissions.add(Permission.objects.get(codename="change_group"))
    return user


@pytest.fixture
def portal_user(db):
    return UserFactory(username="pat", first_name="Pat")


@pytest.fixture
def care_deleting(client):
    """Customer care where the site also lets care delete (portal) users."""
    user = customer_care_user("care-deleting")
    user.user_permissions.add(Permission.objects.get(codename="delete_user"))
    client.force_login(User.objects.get(pk=user.pk))
    return client


def assert_untouched(colleague):
    fresh = User.objects.get(pk=colleague.pk)
    assert fresh.check_password("pw-Secret-123") and not fresh.check_password("Taken-Over-987")
    assert fresh.is_staff and fresh.is_active and not fresh.is_superuser
    assert fresh.first_name == "Olive" and fresh.username == "ops"


# The password view -----------------------------------------------------------------------


def test_care_cannot_set_another_staff_members_password(care_client, colleague):
    # when care opens and posts the password form of a staff colleague
    assert care_client.get(password_url(colleague)).status_code == 403
    response = care_client.post(password_url(colleague), NEW_PASSWORD_FORM)
    # then it is refused and the colleague's password still works
    assert response.status_code == 403
    assert_untouched(colleague)


def test_care_still_sets_a_portal_users_password(care_client, portal_user):
    response = care_client.post(password_url(portal_user), NEW_PASSWORD_FORM)
    assert response.status_code == 302
    portal_user.refresh_from_db()
    assert portal_user.check_password("Taken-Over-987")


# The change form ---------------------------------------------------------------------------


def test_care_sees_a_staff_account_read_only_and_cannot_post_to_it(care_client, colleague):
    # given: care may view users, so the page opens, without a form to save
    page = care_client.get(change_url(colleague))
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="is_active"' not in body and 'name="_save"' not in body
    # when: a forged form deactivates the colleague and renames them
    data = {"username": "ops", "first_name": "Mallory", "is_active": "", "is_staff": "on"}
    response = care_client.post(change_url(colleague), data)
    # then
    assert response.status_code == 403
    assert_untouched(colleague)


@pytest.mark.parametrize("flag", ["is_staff", "is_superuser"])
def test_care_cannot_make_a_portal_user_staff(care_client, portal_user, flag):
    # given: the portal user's page as care sees it, without the rights fields
    response = care_client.get(change_url(portal_user))
    assert response.status_code == 200
    assert f'name="{flag}"' not in response.content.decode()
    # when: a forged form adds the flag and the Customer Care group
    data = form_data(response)
    care_group = Group.objects.get(name=CUSTOMER_CARE_GROUP)
    data.update({flag: "on", "groups": [care_group.pk], "first_name": "Patricia"})
    response = care_client.post(change_url(portal_user), data)
    # then: the harmless change is saved, the rights are not
    assert response.status_code == 302
    portal_user.refresh_from_db()
    assert portal_user.first_name == "Patricia"
    assert not portal_user.is_staff and not portal_user.is_superuser
    assert not portal_user.groups.exists()


def test_care_cannot_change_the_staff_flags_of_its_own_account(care_client, care):
    response = care_client.get(change_url(care))
    assert 'name="is_staff"' not in response.content.decode()
    data = form_data(response)
    data.update({"is_staff": "", "first_name": "Casey"})
    del data["is_staff"]  # an unticked box is simply absent from the post
    assert care_client.post(change_url(care), data).status_code == 302
    care.refresh_from_db()
    assert care.first_name == "Casey" and care.is_staff


def test_care_still_deactivates_a_portal_user(care_client, portal_user):
    data = form_data(care_client.get(change_url(portal_user)))
    del data["is_active"]
    assert care_client.post(change_url(portal_user), data).status_code == 302
    portal_user.refresh_from_db()
    assert not portal_user.is_active


def test_the_add_form_cannot_create_a_staff_user(care_client):
    response = care_client.post(
        "/admin/auth/user/add/",
        {"username": "newbie", **NEW_PASSWORD_FORM, "is_staff": "on", "is_superuser": "on"},
    )
    assert response.status_code == 302
    newbie = User.objects.get(username="newbie")
    assert not newbie.is_staff and not newbie.is_superuser


# Deleting ----------------------------------------------------------------------------------


def test_deleting_a_staff_account_is_refused_even_to_care_that_may_delete_users(
    care_deleting, colleague
):
    url = f"/admin/auth/user/{colleague.pk}/delete/"
    assert care_deleting.get(url).status_code == 403
    assert care_deleting.post(url, {"post": "yes"}).status_code == 403
    assert_untouched(colleague)


def test_the_bulk_delete_action_refuses_a_selection_holding_a_staff_account(
    care_deleting, colleague, portal_user
):
    # when: care deletes a portal user and a staff colleague in one action
    action = {"action": "delete_selected", "post": "yes"}
    response = care_deleting.post(
        "/admin/auth/user/", {**action, "_selected_action": [portal_user.pk, colleague.pk]}
    )
    # then: nothing is deleted
    assert response.status_code == 403
    assert User.objects.filter(pk__in=[portal_user.pk, colleague.pk]).count() == 2
    assert_untouched(colleague)
    # and the portal user alone may go
    response = care_deleting.post(
        "/admin/auth/user/", {**action, "_selected_action": [portal_user.pk]}
    )
    assert response.status_code == 302
    assert not User.objects.filter(pk=portal_user.pk).exists()


# Groups --------------------------------------------------------------------------------------


def test_care_cannot_edit_groups_to_give_itself_rights(care_client, care):
    group = Group.objects.get(name=CUSTOMER_CARE_GROUP)
    everything = list(Permission.objects.values_list("pk", flat=True))
    response = care_client.post(
        f"/admin/auth/group/{group.pk}/change/",
        {"name": CUSTOMER_CARE_GROUP, "permissions": everything},
    )
    assert response.status_code == 403
    response = care_client.post(
        "/admin/auth/group/add/", {"name": "Root", "permissions": everything}
    )
    assert response.status_code == 403
    assert not Group.objects.filter(name="Root").exists()
    assert not User.objects.get(pk=care.pk).has_perm("auth.change_group")


# A superuser still manages staff -------------------------------------------------------------


def test_a_superuser_manages_staff_accounts(client, superuser, colleague, portal_user):
    client.force_login(superuser)
    assert client.post(password_url(colleague), NEW_PASSWORD_FORM).status_code == 302
    colleague.refresh_from_db()
    assert colleague.check_password("Taken-Over-987")
    data = form_data(client.get(change_url(portal_user)))
    data["is_staff"] = "on"
    assert client.post(change_url(portal_user), data).status_code == 302
    portal_user.refresh_from_db()
    assert portal_user.is_staff
