from django.db import connection
from django.test.utils import CaptureQueriesContext

from credits.services import credits_grant, credits_purchase, pooling_set
from offices.models import CreditKind
from offices.services import office_addon_set
from tests.api.conftest import usage_event
from tests.factories import AddOnFactory, office_factory

ALLOWANCE_100 = {"included": "100.0000", "used": "0.0000", "remaining": "100.0000"}


def offices_by_slug(body) -> dict:
    return {o["office"]: o for o in body["offices"]}


def test_a_fresh_company_shows_each_offices_plan_allowance_with_nothing_used(company, api):
    # given: berlin has an add-on with 50 more standard credits; nothing used yet
    office_addon_set(office=company.offices.get(slug="berlin"), addon=AddOnFactory(), quantity=2)
    # when
    response = api.get("/api/v1/balance")
    # then
    assert response.status_code == 200
    body = response.json()
    assert (body["company"], body["pooling_enabled"], body["pool_balance"]) == (
        "acme",
        False,
        "0.0000",
    )
    offices = offices_by_slug(body)
    assert list(offices) == ["hq", "austin", "berlin"]
    assert offices["hq"]["is_primary"] is True
    assert offices["austin"]["allowances"]["standard"].items() >= ALLOWANCE_100.items()
    assert offices["berlin"]["allowances"]["standard"]["included"] == "200.0000"
    assert offices["berlin"]["allowances"]["ai_agent"]["remaining"] == "10.0000"


def test_balances_and_allowances_follow_usage(company, care, api):
    # given: austin bought 30 credits; hq holds 25 AI credits
    credits_purchase(
        company=company, amount="30", office=company.offices.get(slug="austin"), actor=care
    )
    credits_grant(company=company, amount="25", kind=CreditKind.AI_AGENT, actor=care)
    # when: austin uses 110 credits and berlin 6 AI conversations (12 AI credits)
    api.send_events(
        usage_event("b-1", office="austin", quantity="110"),
        usage_event("b-2", office="berlin", service="ai_agent", quantity="6"),
    )
    body = api.get("/api/v1/balance").json()
    offices = offices_by_slug(body)
    # then
    assert offices["austin"]["wallet_balance"] == "20.0000"
    assert offices["austin"]["allowances"]["standard"] == {
        "included": "100.0000",
        "used": "100.0000",
        "remaining": "0.0000",
        "uncovered": "0.0000",
    }
    assert offices["berlin"]["allowances"]["ai_agent"]["used"] == "10.0000"
    assert (body["ai_agent_office"], body["ai_agent_balance"]) == ("hq", "23.0000")


def test_pooling_on_shows_the_pool_and_empty_wallets(company, care, api):
    credits_purchase(
        company=company, amount="40", office=company.offices.get(slug="berlin"), actor=care
    )
    pooling_set(company=company, enabled=True, actor=care, reason="consolidate")
    body = api.get("/api/v1/balance").json()
    assert (body["pooling_enabled"], body["pool_balance"]) == (True, "40.0000")
    assert {o["wallet_balance"] for o in body["offices"]} == {"0.0000"}


def test_uncovered_overage_is_shown_with_the_allowance(company, api):
    api.send_events(usage_event("o-1", office="austin", quantity="104.5"))
    austin = offices_by_slug(api.get("/api/v1/balance").json())["austin"]
    assert austin["allowances"]["standard"]["uncovered"] == "4.5000"


def test_the_balance_takes_the_same_queries_for_3_or_8_offices(company, api):
    api.send_events(usage_event("q-1"))
    with CaptureQueriesContext(connection) as few:
        assert api.get("/api/v1/balance").status_code == 200
    for n in range(5):
        office_factory(company=company, slug=f"branch-{n}")
    with CaptureQueriesContext(connection) as many:
        body = api.get("/api/v1/balance").json()
    assert len(body["offices"]) == 8
    assert len(many) == len(few)
