"""GET /api/v1/offices/{slug}/spendable (SPEC §12): what an office can spend now before
its usage goes uncovered, per credit kind; from the primary, never the replica."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext

from credits.controls import pool_cap_set
from credits.services import credits_grant, credits_purchase, pooling_set
from offices.models import CreditKind
from offices.services import office_addon_set
from tests.api.conftest import ApiClient, usage_event
from tests.factories import AddOnFactory
from tests.test_db_router import replica  # noqa: F401 - the replica fixture
from usage.api_auth import api_key_create


def spendable(api, office: str, kind: str = "standard"):
    return api.get(f"/api/v1/offices/{office}/spendable?credit_kind={kind}")


def test_pooling_off_the_allowance_left_plus_the_offices_own_wallet(company, care, api):
    # given: austin bought 30 credits, berlin 70; austin used 40 of its 100 included
    offices = {o.slug: o for o in company.offices.all()}
    credits_purchase(company=company, amount="30", office=offices["austin"], actor=care)
    credits_purchase(company=company, amount="70", office=offices["berlin"], actor=care)
    api.send_events(usage_event("s-1", office="austin", quantity="40"))
    # when
    response = spendable(api, "austin")
    # then
    assert response.status_code == 200
    body = response.json()
    assert body == {
        "office": "austin",
        "credit_kind": "standard",
        "period": body["period"],
        "allowance_remaining": "60.0000",
        "funded_by": "wallet",
        "balance": "30.0000",
        "pool_cap_room": None,
        "spendable": "90.0000",
    }
    assert len(body["period"]) == 7


def test_what_it_says_can_be_spent_is_charged_without_anything_uncovered(company, care, api):
    credits_purchase(
        company=company, amount="12.5", office=company.offices.get(slug="berlin"), actor=care
    )
    left = spendable(api, "berlin").json()["spendable"]
    assert left == "112.5000"
    # when: berlin spends exactly that, then one credit more
    first = api.send_events(usage_event("s-2", office="berlin", quantity=left)).json()
    second = api.send_events(usage_event("s-3", office="berlin", quantity="1")).json()
    # then
    assert first["events"][0]["split"]["uncovered"] == "0.0000"
    assert second["events"][0]["split"]["uncovered"] == "1.0000"
    assert spendable(api, "berlin").json()["spendable"] == "0.0000"


def test_pooling_on_the_pool_up_to_the_offices_cap_room(company, care, api):
    credits_purchase(
        company=company, amount="50", office=company.offices.get(slug="hq"), actor=care
    )
    pooling_set(company=company, enabled=True, actor=care, reason="share")
    austin = company.offices.get(slug="austin")
    pool_cap_set(company=company, office=austin, cap="20", actor=care)
    # when: austin draws 5 from the pool beyond its allowance
    api.send_events(usage_event("s-4", office="austin", quantity="105"))
    austin_body = spendable(api, "austin").json()
    berlin_body = spendable(api, "berlin").json()
    # then: austin may draw 15 more under its cap; berlin the whole pool (45)
    assert (austin_body["funded_by"], austin_body["balance"]) == ("pool", "45.0000")
    assert (austin_body["pool_cap_room"], austin_body["spendable"]) == ("15.0000", "15.0000")
    assert (berlin_body["pool_cap_room"], berlin_body["spendable"]) == (None, "145.0000")


def test_a_cap_larger_than_the_pool_leaves_the_pool_as_the_limit(company, care, api):
    credits_purchase(company=company, amount="8", office=company.offices.get(slug="hq"), actor=care)
    pooling_set(company=company, enabled=True, actor=care, reason="share")
    pool_cap_set(company=company, office=company.offices.get(slug="hq"), cap="500", actor=care)
    body = spendable(api, "hq").json()
    assert (body["balance"], body["pool_cap_room"], body["spendable"]) == (
        "8.0000",
        "500.0000",
        "108.0000",
    )


def test_ai_agent_the_ai_allowance_left_plus_the_primary_offices_ai_credits(company, care, api):
    # given: berlin has an add-on of 2 × 5 AI credits; hq holds 25 AI credits
    addon = AddOnFactory(included_ai_agent=Decimal("5"))
    office_addon_set(office=company.offices.get(slug="berlin"), addon=addon, quantity=2)
    credits_grant(company=company, amount="25", kind=CreditKind.AI_AGENT, actor=care)
    api.send_events(usage_event("s-5", office="berlin", service="ai_agent", quantity="3"))
    body = spendable(api, "berlin", "ai_agent").json()
    # then: 10 + 10 included, 6 used (3 conversations at 2)
    assert body["funded_by"] == "ai_agent"
    assert body["allowance_remaining"] == "14.0000"
    assert body["balance"] == "25.0000"
    assert body["spendable"] == "39.0000"


def test_another_companys_office_is_not_found(company, other_company, api):
    assert spendable(api, "paris").status_code == 404
    assert spendable(api, "no-such-office").status_code == 404
    theirs = ApiClient(api_key_create(company=other_company, name="k")[1])
    assert spendable(theirs, "paris").status_code == 200
    assert spendable(theirs, "austin").status_code == 404


@pytest.mark.parametrize("query", ["?credit_kind=gold", "?credit_kind=", "", "?credit_kind=AI"])
def test_a_bad_or_missing_credit_kind_is_a_422(company, api, query):
    response = api.get(f"/api/v1/offices/austin/spendable{query}")
    assert response.status_code == 422
    assert "credit_kind" in response.content.decode()


@pytest.mark.parametrize("authorization", [None, "Bearer not-a-key", "Basic dXNlcjpwYXNz"])
def test_without_a_valid_key_it_is_a_401(company, authorization):
    headers = {} if authorization is None else {"HTTP_AUTHORIZATION": authorization}
    response = ApiClient(**headers).get("/api/v1/offices/austin/spendable?credit_kind=standard")
    assert response.status_code == 401


def test_it_is_in_the_openapi_schema(company, api):
    schema = api.get("/api/openapi.json").json()
    operation = schema["paths"]["/api/v1/offices/{slug}/spendable"]["get"]
    params = {p["name"]: p for p in operation["parameters"]}
    assert params["credit_kind"]["required"] is True
    assert set(operation["responses"]) >= {"200", "401", "404", "422"}


def test_it_is_read_from_the_primary_when_a_replica_exists(replica, services):  # noqa: F811
    from tests.factories import company_factory

    company = company_factory(slug="acme", offices=("austin", "berlin"))
    api = ApiClient(api_key_create(company=company, name="k")[1])
    with (
        CaptureQueriesContext(connections["default"]) as primary,
        CaptureQueriesContext(replica) as copy,
    ):
        assert spendable(api, "austin").status_code == 200
    assert len(copy) == 0
    assert any("credits_allowance" in q["sql"] for q in primary)
    assert any("credits_account" in q["sql"] for q in primary)
