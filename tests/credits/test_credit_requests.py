"""Credit requests (SPEC §11): an office admin asks, a company admin approves (one
purchase through the Add credits path, to the wallet or the pool as §2 says at that
moment) or declines with a reason; both sides are e-mailed after commit; bad input is
refused with nothing written; a request is decided once, even at the same instant."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test import Client

from core.errors import Conflict
from credits.models import Account, AccountKind, CreditRequest, EntryType, LedgerEntry
from credits.requests.services import (
    credit_request_approve,
    credit_request_create,
    credit_request_decline,
)
from credits.services import pooling_set
from tests.credits.test_concurrency import run_together
from tests.factories import company_admin, company_factory, office_admin
from tests.offices.team_helpers import run_worker


@pytest.fixture
def acme(services):
    return company_factory(slug="acme", name="Acme", offices=("austin", "berlin"))


@pytest.fixture
def people(acme):
    berlin = acme.offices.get(slug="berlin")
    return {
        "boss": company_admin(acme, username="acme-admin"),
        "berlin": office_admin(berlin, username="berlin-admin"),
        "austin": office_admin(acme.offices.get(slug="austin"), username="austin-admin"),
    }


def client_of(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def purchases(acme):
    return LedgerEntry.objects.filter(company=acme, entry_type=EntryType.PURCHASE)


def wallet(acme, slug):
    return Account.objects.get(company=acme, kind=AccountKind.WALLET, office__slug=slug)


@pytest.mark.django_db(transaction=True)
def test_request_approve_and_mail_both_sides(acme, people):
    berlin = acme.offices.get(slug="berlin")
    # given the Berlin admin asks for 100 credits
    client = client_of(people["berlin"])
    assert client.get("/credits/requests/new/").status_code == 200
    response = client.post(
        "/credits/requests/new/", {"office": berlin.pk, "amount": "100", "note": "busy month"}
    )
    request = CreditRequest.objects.get()
    assert (
        response.status_code == 302 and response["Location"] == f"/credits/requests/{request.pk}/"
    )
    run_worker()
    (asked,) = mail.outbox
    assert asked.to == ["acme-admin@example.com"] and "100.00" in asked.subject
    # then the company admin sees it on the balance page and approves it
    boss = client_of(people["boss"])
    balance = boss.get("/balance/").content.decode()
    assert 'id="pending-requests"' in balance and "Berlin: 100.00 credits" in balance
    response = boss.post(f"/credits/requests/{request.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 302
    # the purchase is made once, into Berlin's wallet (pooling off)
    (entry,) = purchases(acme)
    assert entry.amount == Decimal("100.0000") and entry.account == wallet(acme, "berlin")
    assert entry.created_by == people["boss"] and entry.reference == f"credit-request:{request.pk}"
    request.refresh_from_db()
    assert (request.status, request.decided_by, request.purchase) == (
        "approved",
        people["boss"],
        entry,
    )
    # approving again is a clear refusal, and still one purchase
    again = boss.post(f"/credits/requests/{request.pk}/decide/", {"decision": "approve"})
    assert again.status_code == 409 and "already approved" in again.content.decode()
    assert purchases(acme).count() == 1
    assert 'id="pending-requests"' not in boss.get("/balance/").content.decode()
    # and the requester is e-mailed the decision
    run_worker()
    decided = mail.outbox[-1]
    assert decided.to == ["berlin-admin@example.com"] and "approved" in decided.subject
    assert "Berlin wallet" in decided.body


@pytest.mark.django_db
def test_approval_goes_to_the_pool_when_pooling_is_on_at_approval(acme, people, care):
    berlin = acme.offices.get(slug="berlin")
    request = credit_request_create(
        company=acme, office=berlin, amount="100", actor=people["berlin"]
    )
    pooling_set(company=acme, enabled=True, actor=care, reason="test")
    credit_request_approve(company=acme, request_id=request.pk, actor=people["boss"])
    (entry,) = purchases(acme)
    assert entry.account.kind == AccountKind.POOL and entry.amount == Decimal("100")
    assert wallet(acme, "berlin").balance == 0


@pytest.mark.django_db
def test_decline_needs_a_reason_and_makes_no_purchase(acme, people):
    berlin = acme.offices.get(slug="berlin")
    request = credit_request_create(
        company=acme, office=berlin, amount="50", actor=people["berlin"]
    )
    boss = client_of(people["boss"])
    url = f"/credits/requests/{request.pk}/decide/"
    response = boss.post(url, {"decision": "decline", "reason": ""})
    assert response.status_code == 422 and "required" in response.content.decode()
    request.refresh_from_db()
    assert request.status == "pending"
    response = boss.post(url, {"decision": "decline", "reason": "Budget is spent"})
    assert response.status_code == 302
    request.refresh_from_db()
    assert (request.status, request.decline_reason) == ("declined", "Budget is spent")
    assert purchases(acme).count() == 0
    # a declined request cannot be approved afterwards
    assert boss.post(url, {"decision": "approve"}).status_code == 409
    assert purchases(acme).count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("0", "Request at least 1 credit."),
        ("-5", "Request at least 1 credit."),
        ("1000001", "At most 1,000,000 credits at a time."),
        ("1.23456", "no more than 4 decimal places"),
        ("abc", "Enter a number"),
        ("NaN", "Enter a number"),
    ],
)
def test_bad_amounts_are_refused_and_nothing_is_written(acme, people, amount, message):
    berlin = acme.offices.get(slug="berlin")
    response = client_of(people["berlin"]).post(
        "/credits/requests/new/", {"office": berlin.pk, "amount": amount}
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert CreditRequest.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("amount", ["0", "-5", "1000001", "1.23456", "0.5", "NaN"])
def test_the_service_refuses_bad_amounts_too(acme, people, amount):
    from core.errors import ValidationFailed

    with pytest.raises(ValidationFailed):
        credit_request_create(
            company=acme,
            office=acme.offices.get(slug="berlin"),
            amount=amount,
            actor=people["berlin"],
        )
    assert CreditRequest.objects.count() == 0


@pytest.mark.django_db
def test_an_office_admin_asks_only_for_their_own_office(acme, people, services):
    austin = acme.offices.get(slug="austin")
    globex = company_factory(slug="globex", name="Globex", offices=("paris",))
    client = client_of(people["berlin"])
    for office in (austin, globex.offices.get(slug="paris")):
        response = client.post("/credits/requests/new/", {"office": office.pk, "amount": "10"})
        assert response.status_code == 200 and "valid choice" in response.content.decode()
    assert CreditRequest.objects.count() == 0
    # company admins add credits themselves
    assert client_of(people["boss"]).get("/credits/requests/new/").status_code == 403


@pytest.mark.django_db
def test_deciding_another_companys_request_is_404_and_changes_nothing(acme, people, services):
    globex = company_factory(slug="globex", name="Globex", offices=("paris",))
    paris_admin = office_admin(globex.offices.get(slug="paris"), username="paris-admin")
    theirs = credit_request_create(
        company=globex, office=globex.offices.get(slug="paris"), amount="10", actor=paris_admin
    )
    boss = client_of(people["boss"])
    assert boss.get(f"/credits/requests/{theirs.pk}/").status_code == 404
    response = boss.post(f"/credits/requests/{theirs.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 404
    response = boss.post(
        f"/credits/requests/{theirs.pk}/decide/", {"decision": "decline", "reason": "x"}
    )
    assert response.status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "pending" and LedgerEntry.objects.filter(company=globex).count() == 0
    # the service refuses it too, named by the acting company
    from core.errors import NotFound

    with pytest.raises(NotFound):
        credit_request_approve(company=acme, request_id=theirs.pk, actor=people["boss"])


@pytest.mark.django_db
def test_office_admins_cannot_decide_and_see_only_their_offices(acme, people):
    mine = credit_request_create(
        company=acme, office=acme.offices.get(slug="berlin"), amount="10", actor=people["berlin"]
    )
    other = credit_request_create(
        company=acme, office=acme.offices.get(slug="austin"), amount="20", actor=people["austin"]
    )
    client = client_of(people["berlin"])
    response = client.post(f"/credits/requests/{mine.pk}/decide/", {"decision": "approve"})
    assert response.status_code == 403 and purchases(acme).count() == 0
    assert client.get(f"/credits/requests/{other.pk}/").status_code == 404
    listing = client.get("/credits/requests/").content.decode()
    assert "Berlin" in listing and "Austin" not in listing.split('id="credit-requests"')[1]
    assert client.get("/credits/requests/?status=bogus").status_code == 200  # a form error


def _concurrency_setup(acme, people):
    return credit_request_create(
        company=acme, office=acme.offices.get(slug="berlin"), amount="100", actor=people["berlin"]
    )


pg_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="row locks and real concurrency need PostgreSQL"
)


@pg_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rounds", range(3))
def test_two_approvals_at_once_make_one_purchase(acme, people, rounds):
    request = _concurrency_setup(acme, people)
    outcomes = []

    def approve():
        try:
            credit_request_approve(company=acme, request_id=request.pk, actor=people["boss"])
            outcomes.append("approved")
        except Conflict:
            outcomes.append("refused")

    errors = run_together([approve, approve])
    assert errors == []
    assert sorted(outcomes) == ["approved", "refused"]
    assert purchases(acme).count() == 1
    assert wallet(acme, "berlin").balance == Decimal("100")


@pg_only
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("rounds", range(3))
def test_approve_and_decline_at_once_make_exactly_one_outcome(acme, people, rounds):
    request = _concurrency_setup(acme, people)
    outcomes = []

    def approve():
        try:
            credit_request_approve(company=acme, request_id=request.pk, actor=people["boss"])
            outcomes.append("approved")
        except Conflict:
            outcomes.append("refused")

    def decline():
        try:
            credit_request_decline(
                company=acme, request_id=request.pk, actor=people["boss"], reason="no"
            )
            outcomes.append("declined")
        except Conflict:
            outcomes.append("refused")

    errors = run_together([approve, decline])
    assert errors == []
    assert outcomes.count("refused") == 1
    request.refresh_from_db()
    winner = next(o for o in outcomes if o != "refused")
    assert request.status == winner
    assert purchases(acme).count() == (1 if winner == "approved" else 0)
    assert wallet(acme, "berlin").balance == (Decimal("100") if winner == "approved" else 0)
