"""The money controls in the API (SPEC §8): GET /api/v1/balance shows the rules, the
pool caps with their room, open alerts and this period's recharges; GET /api/v1/alerts
lists alerts. Another company's controls never show."""

from __future__ import annotations

from credits.controls import alert_threshold_set, pool_cap_set, recharge_rule_set
from credits.models import Account, AccountKind, Alert
from credits.services import credits_purchase, pooling_set
from tests.api.conftest import usage_event


def test_balance_shows_rules_caps_open_alerts_and_recharges(company, care, api, other_api):
    # given: pooling on with 10 in the pool, a pool rule below 8 add 20 (limit 2), a cap of
    # 6 on austin, a default threshold of 25
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="10", actor=care)
    pool = Account.objects.get(company=company, kind=AccountKind.POOL)
    recharge_rule_set(
        company=company, account=pool, threshold="8", amount="20", monthly_limit=2, actor=care
    )
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="6", actor=care)
    alert_threshold_set(company=company, value="25", actor=care)
    # when: austin uses its allowance and 4 more (10 → 6: recharge first → 26)
    events = [usage_event(f"e{i}", office="austin") for i in range(104)]
    assert api.send_events(*events).status_code == 200
    body = api.get("/api/v1/balance").json()
    # then
    assert body["pool_balance"] == "26.0000"
    assert body["alert_threshold"] == "25.0000"
    assert body["recharge_rules"] == [
        {
            "balance": {"kind": "pool", "office": None},
            "active": True,
            "threshold": "8.0000",
            "amount": "20.0000",
            "monthly_limit": 2,
            "recharges_this_period": 1,
        }
    ]
    caps = {c["office"]: c for c in body["pool_caps"]}
    assert caps["austin"] == {
        "office": "austin",
        "cap": "6.0000",
        "pool_drawn": "4.0000",
        "room": "2.0000",
    }
    assert caps["berlin"]["cap"] is None and caps["berlin"]["room"] is None
    (recharge,) = body["recharges_this_period"]
    assert (recharge["amount"], recharge["balance_after"]) == ("20.0000", "30.0000")
    assert recharge["reference"].startswith("recharge-rule:")
    # the AI account (0 < 25) is low; the pool (26) is not
    assert [(a["kind"], a["balance"]["kind"]) for a in body["open_alerts"]] == [
        ("low_balance", "ai_agent")
    ]
    # and the other company sees none of it
    other = other_api.get("/api/v1/balance").json()
    assert other["recharge_rules"] == [] and other["open_alerts"] == []
    assert {c["office"] for c in other["pool_caps"]} == {"hq", "paris"}


def test_alerts_lists_open_and_resolved_alerts_newest_first(company, care, api, other_api):
    hq = Account.objects.get(company=company, kind=AccountKind.WALLET, office__slug="hq")
    alert_threshold_set(company=company, account=hq, value="5", actor=care)
    credits_purchase(company=company, amount="10", office=hq.office, actor=care)  # resolves
    alert_threshold_set(company=company, value="1", actor=care)  # opens the others
    body = api.get("/api/v1/alerts").json()
    assert len(body["alerts"]) == Alert.objects.filter(company=company).count() == 4
    assert [a["id"] for a in body["alerts"]] == sorted(
        (a["id"] for a in body["alerts"]), reverse=True
    )
    resolved = [a for a in body["alerts"] if a["resolved_at"]]
    assert [a["balance"] for a in resolved] == [{"kind": "wallet", "office": "hq"}]
    open_only = api.get("/api/v1/alerts?state=open&limit=2").json()["alerts"]
    assert len(open_only) == 2 and all(a["resolved_at"] is None for a in open_only)
    assert api.get("/api/v1/alerts?state=closed").status_code == 422
    assert api.get("/api/v1/alerts?limit=0").status_code == 422
    assert other_api.get("/api/v1/alerts").json() == {"alerts": []}


def test_the_schema_documents_the_controls(api):
    schema = api.get("/api/openapi.json").json()
    assert "/api/v1/alerts" in schema["paths"]
    balance = schema["components"]["schemas"]["BalanceOut"]["properties"]
    for name in ("recharge_rules", "pool_caps", "open_alerts", "recharges_this_period"):
        assert name in balance


def test_a_pool_cap_alert_shows_in_the_alert_list_and_the_balance(company, care, api, other_api):
    # given: pooling on, 50 in the pool, austin capped at 3
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="50", actor=care)
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="3", actor=care)
    # when: austin needs 5 beyond its allowance
    events = [usage_event(f"e{i}", office="austin") for i in range(105)]
    assert api.send_events(*events).status_code == 200
    # then: one open pool-cap alert, in the list and in the balance's open alerts
    alert = Alert.objects.get(company=company, kind="pool_cap")
    expected = {
        "id": alert.pk,
        "kind": "pool_cap",
        "balance": {"kind": "pool", "office": None},
        "office": "austin",
        "period": f"{alert.period:%Y-%m}",
        "threshold": "3.0000",
        "balance_at_open": "47.0000",
        "opened_at": alert.opened_at.isoformat(),
        "resolved_at": None,
    }
    assert api.get("/api/v1/alerts?state=open").json()["alerts"] == [expected]
    assert api.get("/api/v1/balance").json()["open_alerts"] == [expected]
    assert other_api.get("/api/v1/alerts").json()["alerts"] == []
    # and once the cap is raised it is resolved: listed, no longer open
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="9", actor=care)
    assert api.get("/api/v1/alerts?state=open").json()["alerts"] == []
    (listed,) = api.get("/api/v1/alerts").json()["alerts"]
    assert listed["resolved_at"] is not None and listed["office"] == "austin"
    assert api.get("/api/v1/balance").json()["open_alerts"] == []
