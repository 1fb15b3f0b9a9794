"""The team page (SPEC §11, issue 23): invites by e-mail (one-use, 72 h, Django's
signer), accepting one, changing and removing access, the last company admin, the audit,
and every bad input of the issue refused with a clear error and nothing written."""

from __future__ import annotations

import datetime as dt

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from offices.models import Invite, InviteStatus, Membership, Role, TeamAction, TeamChange
from offices.team.services import invite_create
from offices.team.tokens import invite_token
from tests.factories import company_admin, company_factory, office_admin
from tests.offices.team_helpers import last_link, run_worker

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "Lantern-Ridge-4417"


@pytest.fixture
def acme(services):
    return company_factory(slug="acme", name="Acme", offices=("austin", "berlin"))


@pytest.fixture
def globex(services):
    return company_factory(slug="globex", name="Globex", offices=("paris",))


@pytest.fixture
def boss(acme):
    return company_admin(acme, username="acme-admin")


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def invite_berlin(client, acme, email="new.person@example.com"):
    berlin = acme.offices.get(slug="berlin")
    return client.post(
        "/team/invite/", {"email": email, "role": Role.OFFICE_ADMIN, "offices": [berlin.pk]}
    )


def test_an_invite_is_mailed_after_commit_and_accepting_it_signs_in_to_berlin_only(acme, boss):
    # given acme-admin on the team page
    client = client_of(boss)
    assert client.get("/team/").status_code == 200
    # when they invite a new office admin for Berlin
    response = invite_berlin(client, acme)
    assert response.status_code == 302 and response["Location"] == "/team/"
    # then the mail is queued (not sent in the request) and the worker sends it
    assert mail.outbox == [] and DBTaskResult.objects.count() == 1
    run_worker()
    (message,) = mail.outbox
    assert message.to == ["new.person@example.com"]
    assert "Berlin" in message.body and "72 hours" in message.body
    link = last_link("new.person@example.com")
    # the pending invite shows on the team page
    assert "new.person@example.com" in client.get("/team/").content.decode()
    # when the person opens the link and sets a password
    person = Client()
    page = person.get(link)
    assert page.status_code == 200 and "Join Acme" in page.content.decode()
    response = person.post(
        link, {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    # then they are signed in, as office admin of Berlin only
    assert response.status_code == 302
    user = User.objects.get(username="newbie")
    assert user.email == "new.person@example.com" and user.check_password(NEW_PASSWORD)
    assert list(Membership.objects.filter(user=user).values_list("office__slug", "role")) == [
        ("berlin", Role.OFFICE_ADMIN)
    ]
    home = person.get("/", follow=True)
    assert home.redirect_chain[-1][0] == "/offices/berlin/"
    assert person.get("/offices/austin/").status_code == 404
    # and the invite is used up: the same link again is a clear 410, nothing created
    again = Client().post(
        link, {"username": "other", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert again.status_code == 410 and "already used" in again.content.decode()
    assert not User.objects.filter(username="other").exists()
    # and the audit holds the invite and its acceptance, who and what
    actions = list(TeamChange.objects.order_by("pk").values_list("action", "changed_by__username"))
    assert actions == [(TeamAction.INVITED, "acme-admin"), (TeamAction.INVITE_ACCEPTED, "newbie")]
    assert TeamChange.objects.get(action=TeamAction.INVITED).new_value == "Office admin of Berlin"


def test_accepting_checks_djangos_password_validators_and_writes_nothing(acme, boss):
    invite_berlin(client_of(boss), acme)
    run_worker()
    link = last_link("new.person@example.com")
    person = Client()
    response = person.post(link, {"username": "newbie", "password1": "1234", "password2": "1234"})
    assert response.status_code == 200
    body = response.content.decode()
    assert "too short" in body or "too common" in body
    assert not User.objects.filter(username="newbie").exists()
    assert Invite.objects.get().status == InviteStatus.PENDING
    # a username that is taken is refused too
    response = person.post(
        link, {"username": "ACME-admin", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    )
    assert response.status_code == 200 and "taken" in response.content.decode()
    assert Invite.objects.get().status == InviteStatus.PENDING


def test_tampered_revoked_replaced_and_expired_links_are_clear_pages(acme, boss):
    client = client_of(boss)
    invite_berlin(client, acme)
    run_worker()
    first = last_link("new.person@example.com")
    invite = Invite.objects.get()
    form = {"username": "newbie", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD}
    # tampered: one character of the signature changed → 400
    tampered = first[:-3] + ("A" if first[-3] != "A" else "B") + first[-2:]
    response = Client().get(tampered)
    assert response.status_code == 400 and "not valid" in response.content.decode()
    # a link naming another invite id with the same signature is tampered too
    assert Client().get("/accounts/invite/garbage:token/").status_code == 400
    # resent: the new link works, the old one is a 410
    assert client.post(f"/team/invites/{invite.pk}/resend/").status_code == 302
    run_worker()
    second = last_link("new.person@example.com")
    assert second != first
    response = Client().post(first, form)
    assert response.status_code == 410 and "newer invite" in response.content.decode()
    assert Client().get(second).status_code == 200
    # expired: a link signed 73 hours ago → 410
    old = timezone.now() - dt.timedelta(hours=73)
    Invite.objects.filter(pk=invite.pk).update(sent_at=old)
    response = Client().get(second)
    assert response.status_code == 410 and "expired" in response.content.decode()
    Invite.objects.filter(pk=invite.pk).update(sent_at=timezone.now())
    # revoked (with a confirmation page first): → 410
    confirm = client.get(f"/team/invites/{invite.pk}/revoke/")
    assert confirm.status_code == 200 and "Revoke this invite?" in confirm.content.decode()
    assert client.post(f"/team/invites/{invite.pk}/revoke/").status_code == 302
    response = Client().post(second, form)
    assert response.status_code == 410 and "withdrawn" in response.content.decode()
    assert not User.objects.filter(username="newbie").exists()
    assert list(TeamChange.objects.order_by("pk").values_list("action", flat=True)) == [
        TeamAction.INVITED,
        TeamAction.INVITE_RESENT,
        TeamAction.INVITE_REVOKED,
    ]


def test_a_signature_older_than_72_hours_is_refused_by_the_signer(acme, boss, monkeypatch):
    invite = invite_create(
        company=acme,
        email="x@example.com",
        role=Role.COMPANY_ADMIN,
        actor=boss,
        link_base="http://testserver",
    )
    # the signer's own clock: a token made 73 hours ago
    import time

    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 73 * 3600)
    token = invite_token(invite_id=invite.pk, nonce=invite.nonce)
    monkeypatch.setattr(time, "time", real)
    response = Client().get(f"/accounts/invite/{token}/")
    assert response.status_code == 410 and "expired" in response.content.decode()


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"email": "not-an-address", "role": "company_admin"}, "valid email address"),
        ({"email": "", "role": "company_admin"}, "required"),
        ({"email": "a@example.com", "role": "office_admin"}, "at least one office"),
        ({"email": "a@example.com", "role": "owner"}, "valid choice"),
    ],
)
def test_bad_invite_forms_are_refused_and_nothing_is_written(acme, boss, form, message):
    response = client_of(boss).post("/team/invite/", form)
    assert response.status_code == 200 and message in response.content.decode()
    assert Invite.objects.count() == 0 and TeamChange.objects.count() == 0
    assert DBTaskResult.objects.count() == 0


def test_an_office_of_another_company_in_the_invite_form_is_refused(acme, globex, boss):
    paris = globex.offices.get(slug="paris")
    response = client_of(boss).post(
        "/team/invite/", {"email": "a@example.com", "role": "office_admin", "offices": [paris.pk]}
    )
    assert response.status_code == 200 and "valid choice" in response.content.decode()
    assert Invite.objects.count() == 0 and TeamChange.objects.count() == 0


def test_the_service_refuses_another_companys_office_too(acme, globex, boss):
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="own company"):
        invite_create(
            company=acme,
            email="a@example.com",
            role=Role.OFFICE_ADMIN,
            offices=[globex.offices.get(slug="paris")],
            actor=boss,
            link_base="http://testserver",
        )
    assert Invite.objects.count() == 0


def test_duplicate_addresses_are_refused(acme, boss):
    client = client_of(boss)
    office_admin(acme.offices.get(slug="austin"), username="austin-admin")
    # already on the team (any case)
    response = client.post(
        "/team/invite/", {"email": "AUSTIN-admin@example.com", "role": "company_admin"}
    )
    assert response.status_code == 200 and "already on your team" in response.content.decode()
    # already invited
    assert invite_berlin(client, acme).status_code == 302
    response = invite_berlin(client, acme, email="New.Person@example.com")
    assert response.status_code == 200 and "pending invite" in response.content.decode()
    assert Invite.objects.count() == 1 and TeamChange.objects.count() == 1


def test_office_admins_get_403_on_every_team_page(acme, boss):
    berlin_admin = office_admin(acme.offices.get(slug="berlin"), username="berlin-admin")
    client = client_of(berlin_admin)
    for url in ("/team/", "/team/invite/", f"/team/people/{boss.pk}/"):
        assert client.get(url).status_code == 403, url
    assert client.post(f"/team/people/{boss.pk}/remove/").status_code == 403
    assert Membership.objects.filter(user=boss).exists()


def test_another_companys_people_never_appear_and_answer_404(acme, globex, boss):
    other = company_admin(globex, username="globex-admin")
    client = client_of(boss)
    page = client.get("/team/").content.decode()
    assert "acme-admin" in page and "globex-admin" not in page
    assert client.get(f"/team/people/{other.pk}/").status_code == 404
    assert client.post(f"/team/people/{other.pk}/remove/").status_code == 404
    invite = invite_create(
        company=globex,
        email="g@example.com",
        role=Role.COMPANY_ADMIN,
        actor=other,
        link_base="http://testserver",
    )
    assert client.post(f"/team/invites/{invite.pk}/resend/").status_code == 404
    assert client.post(f"/team/invites/{invite.pk}/revoke/").status_code == 404
    assert Invite.objects.get().status == InviteStatus.PENDING
    assert Membership.objects.filter(user=other).exists()


def test_changing_offices_is_audited_old_to_new(acme, boss):
    person = office_admin(acme.offices.get(slug="austin"), username="austin-admin")
    berlin = acme.offices.get(slug="berlin")
    austin = acme.offices.get(slug="austin")
    client = client_of(boss)
    assert client.get(f"/team/people/{person.pk}/").status_code == 200
    response = client.post(
        f"/team/people/{person.pk}/", {"role": "office_admin", "offices": [austin.pk, berlin.pk]}
    )
    assert response.status_code == 302
    assert set(Membership.objects.filter(user=person).values_list("office__slug", flat=True)) == {
        "austin",
        "berlin",
    }
    change = TeamChange.objects.get()
    assert (change.action, change.old_value, change.new_value, change.changed_by) == (
        TeamAction.ACCESS_CHANGED,
        "Office admin of Austin",
        "Office admin of Austin, Berlin",
        boss,
    )
    # promoted to company admin: one company membership, no office rows left
    client.post(f"/team/people/{person.pk}/", {"role": "company_admin"})
    assert list(Membership.objects.filter(user=person).values_list("role", "office")) == [
        (Role.COMPANY_ADMIN, None)
    ]


def test_the_last_company_admin_cannot_remove_or_demote_themselves(acme, boss):
    client = client_of(boss)
    austin = acme.offices.get(slug="austin")
    assert client.get(f"/team/people/{boss.pk}/remove/").status_code == 200  # the question
    response = client.post(f"/team/people/{boss.pk}/remove/")
    assert response.status_code == 422 and "last company admin" in response.content.decode()
    response = client.post(
        f"/team/people/{boss.pk}/", {"role": "office_admin", "offices": [austin.pk]}
    )
    assert response.status_code == 200 and "last company admin" in response.content.decode()
    assert Membership.objects.filter(user=boss, role=Role.COMPANY_ADMIN).exists()
    assert TeamChange.objects.count() == 0
    # with a second company admin, removing oneself is allowed
    company_admin(acme, username="second-admin")
    response = client.post(f"/team/people/{boss.pk}/remove/")
    assert response.status_code == 302
    assert not Membership.objects.filter(user=boss).exists()
    change = TeamChange.objects.get()
    assert (change.action, change.old_value, change.new_value) == (
        TeamAction.ACCESS_REMOVED,
        "Company admin",
        "No access",
    )
    assert client.get("/balance/").status_code == 403  # access ends at once


def test_removing_an_office_admin_ends_their_access(acme, boss):
    person = office_admin(acme.offices.get(slug="austin"), username="austin-admin")
    their_client = client_of(person)
    assert their_client.get("/offices/austin/").status_code == 200
    assert client_of(boss).post(f"/team/people/{person.pk}/remove/").status_code == 302
    assert their_client.get("/offices/austin/").status_code == 403
    assert User.objects.filter(pk=person.pk).exists()  # the login stays


def test_the_team_audit_is_append_only(acme, boss):
    from core.immutable import ImmutableError

    invite_berlin(client_of(boss), acme)
    change = TeamChange.objects.get()
    with pytest.raises(ImmutableError):
        change.save()
    with pytest.raises(ImmutableError):
        TeamChange.objects.all().delete()
