"""Adding credits in the portal: review, record once, bounds, scope, CSRF."""

import re
from decimal import Decimal

import pytest
from django.test import Client

from credits.models import Account, AccountKind, EntryType, LedgerEntry
from credits.services import pooling_set
from tests.portal.conftest import by_id, login


def token_of(client) -> str:
    html = client.get("/credits/add/").content.decode()
    return re.search(r'name="token" value="([0-9a-f]{32})"', html).group(1)


def purchases():
    return LedgerEntry.objects.filter(entry_type=EntryType.PURCHASE)


def test_company_admin_reviews_then_records_to_an_office_wallet(client, acme, acme_admin, offices):
    login(client, acme_admin)
    token = token_of(client)
    data = {"amount": "1500", "office": offices["berlin"].pk, "token": token}
    # when: the form is sent, a summary is shown and nothing is written yet
    review = client.post("/credits/add/", data)
    summary = by_id(review.content.decode(), "purchase-summary")
    assert "1,500.00" in summary and "Berlin wallet" in summary
    assert not purchases().exists()
    # when: confirmed
    response = client.post("/credits/add/", {**data, "confirm": "1"})
    # then
    assert response.status_code == 302 and response["Location"] == "/balance/"
    wallet = Account.objects.get(office=offices["berlin"], kind=AccountKind.WALLET)
    assert wallet.balance == Decimal("1500")
    entry = purchases().get()
    assert entry.created_by == acme_admin and entry.idempotency_key
    balance = client.get("/balance/").content.decode()
    assert "+1,500.00" in by_id(balance, "activity-table")
    assert "1,500.00 credits were added to the Berlin wallet" in balance


def test_double_submit_records_once(client, acme, acme_admin, offices):
    login(client, acme_admin)
    data = {"amount": "25", "office": offices["hq"].pk, "token": token_of(client), "confirm": "1"}
    client.post("/credits/add/", data)
    client.post("/credits/add/", data)
    assert purchases().count() == 1
    assert Account.objects.get(office=offices["hq"], kind=AccountKind.WALLET).balance == 25


def test_a_fresh_form_records_a_second_purchase(client, acme, acme_admin, offices):
    login(client, acme_admin)
    for _ in range(2):
        data = {"amount": "5", "office": offices["hq"].pk, "token": token_of(client)}
        client.post("/credits/add/", {**data, "confirm": "1"})
    assert purchases().count() == 2


def test_pooling_on_credits_go_to_the_pool(client, acme, care, austin_admin):
    pooling_set(company=acme, enabled=True, actor=care, reason="pool")
    login(client, austin_admin)
    html = client.get("/credits/add/").content.decode()
    assert 'name="office"' not in html and "shared company pool" in html
    data = {"amount": "300", "token": token_of(client), "confirm": "1"}
    assert client.post("/credits/add/", data).status_code == 302
    assert Account.objects.get(company=acme, kind=AccountKind.POOL).balance == 300


def test_office_admin_adds_to_their_own_wallet_only(client, acme, austin_admin, offices):
    login(client, austin_admin)
    html = client.get("/credits/add/").content.decode()
    assert "Berlin" not in html
    data = {"amount": "10", "office": offices["berlin"].pk, "token": token_of(client)}
    response = client.post("/credits/add/", {**data, "confirm": "1"})
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert not purchases().exists()
    data["office"] = offices["austin"].pk
    client.post("/credits/add/", {**data, "confirm": "1"})
    assert Account.objects.get(office=offices["austin"], kind=AccountKind.WALLET).balance == 10


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "Add at least 1"),
        ("-5", "Add at least 1"),
        ("abc", "Enter a number"),
        ("", "This field is required"),
        ("NaN", "Enter a number"),
        ("1000001", "At most 1,000,000 credits"),
        ("1e400", "Ensure that there are no more than"),
        ("1.00001", "no more than 4 decimal places"),
    ],
)
@pytest.mark.parametrize("step", ["review", "confirm"])
def test_bad_amounts_show_an_error_and_write_nothing(
    client, acme, acme_admin, offices, amount, message, step
):
    login(client, acme_admin)
    data = {"amount": amount, "office": offices["hq"].pk, "token": token_of(client)}
    if step == "confirm":
        data["confirm"] = "1"
    response = client.post("/credits/add/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not LedgerEntry.objects.exists()


def test_office_is_required_while_pooling_is_off(client, acme, acme_admin):
    login(client, acme_admin)
    response = client.post(
        "/credits/add/", {"amount": "5", "token": token_of(client), "confirm": "1"}
    )
    assert "This field is required" in response.content.decode()
    assert not LedgerEntry.objects.exists()


def test_a_forged_token_is_refused(client, acme, acme_admin, offices):
    login(client, acme_admin)
    data = {"amount": "5", "office": offices["hq"].pk, "token": "x" * 10, "confirm": "1"}
    assert "form has expired" in client.post("/credits/add/", data).content.decode()
    assert not LedgerEntry.objects.exists()


def test_the_form_needs_its_csrf_token(acme, acme_admin, offices):
    client = Client(enforce_csrf_checks=True)
    client.force_login(acme_admin)
    data = {"amount": "5", "office": offices["hq"].pk, "token": "a" * 32, "confirm": "1"}
    assert client.post("/credits/add/", data).status_code == 403
    assert not LedgerEntry.objects.exists()
    assert 'name="csrfmiddlewaretoken"' in client.get("/credits/add/").content.decode()


def test_no_role_user_cannot_post(client, acme, no_role_user, offices):
    login(client, no_role_user)
    data = {"amount": "5", "office": offices["hq"].pk, "token": "a" * 32, "confirm": "1"}
    assert client.post("/credits/add/", data).status_code == 403
    assert not LedgerEntry.objects.exists()


def test_a_refusal_from_the_service_is_shown_on_the_form(
    client, acme, acme_admin, offices, monkeypatch
):
    from core.errors import ValidationFailed

    def refuse(**kwargs):
        raise ValidationFailed("office: pooling changed while you were typing.")

    monkeypatch.setattr("credits.views.credits_purchase", refuse)
    login(client, acme_admin)
    data = {"amount": "5", "office": offices["hq"].pk, "token": token_of(client), "confirm": "1"}
    response = client.post("/credits/add/", data)
    assert response.status_code == 200
    assert "pooling changed while you were typing" in response.content.decode()
    assert not LedgerEntry.objects.exists()
