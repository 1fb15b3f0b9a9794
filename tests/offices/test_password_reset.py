"""Password reset by e-mail (SPEC §11): Django's views and token, the mail sent by the
task queue's worker after commit, the same answer whether or not the address exists,
and a limit like log-in's (AXES_FAILURE_LIMIT per window, per client and per address)."""

from __future__ import annotations

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import Client
from django_tasks_db.models import DBTaskResult

from tests.factories import company_admin, company_factory
from tests.offices.team_helpers import last_link, run_worker

pytestmark = pytest.mark.django_db(transaction=True)

NEW_PASSWORD = "Harbour-Violet-2291"


@pytest.fixture(autouse=True)
def fresh_limits():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def admin(services):
    return company_admin(company_factory(slug="acme"), username="acme-admin")


def ask(client, email, **extra):
    return client.post("/accounts/password_reset/", {"email": email}, **extra)


def test_the_login_page_offers_a_reset_by_email():
    page = Client().get("/accounts/login/").content.decode()
    assert 'href="/accounts/password_reset/"' in page and "no mail" not in page


def test_reset_by_mail_end_to_end(admin):
    # when the admin asks for a reset
    response = ask(Client(), "ACME-admin@example.com")
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    # then the mail waits for the worker, which sends the link
    assert mail.outbox == [] and DBTaskResult.objects.count() == 1
    run_worker()
    link = last_link("acme-admin@example.com")
    assert "acme-admin" in mail.outbox[0].body
    # the link leads to a form (Django moves the token into the session first)
    client = Client()
    form = client.get(link, follow=True)
    assert form.status_code == 200 and "Choose a new password" in form.content.decode()
    url = form.redirect_chain[-1][0]
    weak = client.post(url, {"new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 200 and "too short" in weak.content.decode()
    done = client.post(url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert done.status_code == 302 and done["Location"] == "/accounts/reset/done/"
    admin.refresh_from_db()
    assert admin.check_password(NEW_PASSWORD)
    # and the link works once
    again = Client().get(link, follow=True)
    assert "cannot be used" in again.content.decode()
    # the new password logs in
    login = Client().post("/accounts/login/", {"username": "acme-admin", "password": NEW_PASSWORD})
    assert login.status_code == 302 and login["Location"] == "/"


def test_the_answer_is_the_same_whether_or_not_the_address_exists(admin):
    known = ask(Client(), "acme-admin@example.com")
    unknown = ask(Client(), "nobody-here@example.com")
    assert (known.status_code, known["Location"]) == (unknown.status_code, unknown["Location"])
    page_known = Client().get(known["Location"]).content
    page_unknown = Client().get(unknown["Location"]).content
    assert page_known == page_unknown
    run_worker()
    assert [m.to for m in mail.outbox] == [["acme-admin@example.com"]]


def test_requests_are_limited_per_address_like_log_in(admin, settings):
    settings.AXES_FAILURE_LIMIT = 3
    for n in range(3):
        # from different client addresses: the address's own count limits
        assert ask(Client(REMOTE_ADDR=f"10.0.0.{n}"), "acme-admin@example.com").status_code == 302
    limited = ask(Client(REMOTE_ADDR="10.0.0.9"), "acme-admin@example.com")
    assert limited.status_code == 429 and "Too many" in limited.content.decode()
    run_worker()
    assert len(mail.outbox) == 3  # the refused request sent nothing


def test_requests_are_limited_per_client_address(admin, settings):
    settings.AXES_FAILURE_LIMIT = 3
    client = Client(REMOTE_ADDR="10.1.1.1")
    for n in range(3):
        assert ask(client, f"someone{n}@example.com").status_code == 302
    assert ask(client, "acme-admin@example.com").status_code == 429
    # another client is not limited by this one
    assert ask(Client(REMOTE_ADDR="10.1.1.2"), "acme-admin@example.com").status_code == 302


def test_a_bad_address_is_a_form_error_and_queues_nothing(admin):
    response = ask(Client(), "not an address")
    assert response.status_code == 200 and "valid email address" in response.content.decode()
    assert DBTaskResult.objects.count() == 0
