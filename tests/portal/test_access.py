"""Each page × each role: who gets the page, a login redirect, a 403 or a 404."""

import pytest

from tests.portal.conftest import login

PAGES = ["/balance/", "/offices/austin/", "/usage/", "/usage/export.csv", "/credits/add/"]


@pytest.mark.parametrize("url", ["/", *PAGES])
def test_anonymous_is_sent_to_log_in(client, acme, url):
    response = client.get(url)
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")


@pytest.mark.parametrize("url", ["/", *PAGES])
def test_logged_in_without_a_role_gets_403(client, acme, no_role_user, url):
    login(client, no_role_user)
    response = client.get(url)
    assert response.status_code == 403
    assert b"No access" in response.content


def test_staff_without_a_membership_gets_403(client, acme, care):
    login(client, care)
    assert client.get("/balance/").status_code == 403


@pytest.mark.parametrize("url", PAGES)
def test_company_admin_sees_every_page(client, acme_usage, acme_admin, url):
    login(client, acme_admin)
    assert client.get(url).status_code == 200


@pytest.mark.parametrize("url", PAGES)
def test_office_admin_sees_every_page_of_their_office(client, acme_usage, austin_admin, url):
    login(client, austin_admin)
    assert client.get(url).status_code == 200


def test_home_sends_company_admin_to_the_balance(client, acme, acme_admin):
    login(client, acme_admin)
    assert client.get("/")["Location"] == "/balance/"


def test_home_sends_office_admin_to_their_office(client, acme, austin_admin):
    login(client, austin_admin)
    assert client.get("/")["Location"] == "/offices/austin/"


def test_office_admin_gets_404_for_another_office(client, acme_usage, austin_admin):
    login(client, austin_admin)
    response = client.get("/offices/berlin/")
    assert response.status_code == 404
    assert b"Berlin" not in response.content


def test_other_tenants_office_slug_is_404(client, acme_usage, globex_admin):
    # Globex has hq and paris; austin exists only in Acme.
    login(client, globex_admin)
    assert client.get("/offices/austin/").status_code == 404
    assert client.get("/offices/paris/").status_code == 200


def test_other_tenants_admin_sees_only_their_company(client, acme_usage, globex_admin):
    login(client, globex_admin)
    html = client.get("/balance/").content.decode()
    assert "Globex" in html
    assert "Acme" not in html and "Austin" not in html


def test_login_page_has_labelled_fields_and_logs_in(client, acme_admin):
    html = client.get("/accounts/login/").content.decode()
    assert '<label for="id_username">Username</label>' in html
    assert '<label for="id_password">Password</label>' in html
    response = client.post(
        "/accounts/login/", {"username": "acme-admin", "password": "pw-Secret-123"}
    )
    assert response.status_code == 302
    assert client.get("/balance/").status_code == 200


def test_logout_is_a_post_form(client, acme, acme_admin):
    login(client, acme_admin)
    html = client.get("/balance/").content.decode()
    assert 'action="/accounts/logout/"' in html and 'method="post"' in html
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/balance/").status_code == 302


@pytest.mark.parametrize("url", PAGES[:3] + PAGES[4:])
def test_pages_need_no_inline_script_or_style(client, acme_usage, acme_admin, url):
    # The Content-Security-Policy (default-src 'self') would block them.
    login(client, acme_admin)
    response = client.get(url)
    html = response.content.decode()
    assert "<script" not in html
    assert 'style="' not in html and "<style" not in html
    assert "default-src 'self'" in response["Content-Security-Policy"]


def test_domain_errors_become_their_status_with_a_message(client, acme, acme_admin, monkeypatch):
    from core.errors import Conflict

    def conflict(scope):
        raise Conflict("The balance is being recalculated; try again.")

    monkeypatch.setattr("credits.views.balance_overview", conflict)
    login(client, acme_admin)
    response = client.get("/balance/")
    assert response.status_code == 409
    assert "being recalculated" in response.content.decode()


def test_repeated_failed_logins_show_the_lockout_page(client, acme_admin, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "acme-admin", "password": "wrong"})
    response = client.post(
        "/accounts/login/", {"username": "acme-admin", "password": "pw-Secret-123"}
    )
    assert "Too many failed log-ins" in response.content.decode()
    assert client.get("/balance/").status_code == 302  # still not logged in
