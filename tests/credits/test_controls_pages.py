"""The money-controls pages as each role sees them (SPEC §8): company admins change
rules, thresholds, caps and the webhook (validated, confirmed when destructive); office
admins see theirs read-only; open alerts show as a banner on every portal page of the
people they concern; the balance page shows the controls."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from credits.controls import alert_threshold_set, pool_cap_set, recharge_rule_set
from credits.models import Account, AccountKind, ControlChange, PoolCap, RechargeRule
from credits.services import pooling_set
from tests.factories import company_admin, company_factory, office_admin

URL = "/balance/controls/"


@pytest.fixture
def acme_admin(company):
    return company_admin(company, username="acme-admin")


@pytest.fixture
def austin_admin(company):
    return office_admin(company.offices.get(slug="austin"), username="austin-admin")


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def wallet(company, slug):
    return Account.objects.get(company=company, kind=AccountKind.WALLET, office__slug=slug)


def test_company_admin_sets_a_rule_and_sees_it_on_the_balance_page(company, acme_admin):
    client = client_for(acme_admin)
    hq = wallet(company, "hq")
    response = client.post(
        URL,
        {
            "action": "rule",
            "account": hq.pk,
            "threshold": "20",
            "amount": "50",
            "monthly_limit": "2",
        },
    )
    assert response.status_code == 302
    rule = RechargeRule.objects.get(account=hq)
    assert (rule.threshold, rule.amount, rule.monthly_limit) == (Decimal(20), Decimal(50), 2)
    assert ControlChange.objects.get().changed_by == acme_admin
    page = client.get("/balance/").content.decode()
    assert 'id="money-controls"' in page and f'data-rule="{rule.pk}"' in page
    assert "HQ wallet" in page or "Hq wallet" in page


@pytest.mark.parametrize(
    "data, message",
    [
        ({"threshold": "-1", "amount": "5", "monthly_limit": "3"}, "threshold"),
        ({"threshold": "5", "amount": "NaN", "monthly_limit": "3"}, "amount"),
        ({"threshold": "5", "amount": "1.23456", "monthly_limit": "3"}, "4 decimal places"),
        ({"threshold": "5", "amount": "5", "monthly_limit": "0"}, "monthly_limit"),
        ({"threshold": "5", "amount": "99999999", "monthly_limit": "3"}, "At most"),
    ],
)
def test_bad_values_show_an_error_and_save_nothing(company, acme_admin, data, message):
    response = client_for(acme_admin).post(
        URL, {"action": "rule", "account": wallet(company, "hq").pk, **data}
    )
    assert response.status_code == 422
    assert message in response.content.decode()
    assert not RechargeRule.objects.exists() and not ControlChange.objects.exists()


def test_another_companys_balance_or_office_is_404(company, acme_admin, services):
    globex = company_factory(slug="globex", offices=("paris",))
    client = client_for(acme_admin)
    theirs = Account.objects.get(company=globex, kind=AccountKind.POOL)
    rule = {
        "action": "rule",
        "account": theirs.pk,
        "threshold": "1",
        "amount": "1",
        "monthly_limit": "1",
    }
    assert client.post(URL, rule).status_code == 404
    paris = globex.offices.get(slug="paris")
    assert client.post(URL, {"action": "cap", "office": paris.pk, "cap": "5"}).status_code == 404
    assert client.post(URL, {"action": "cap", "office": "x", "cap": "5"}).status_code == 404
    assert not RechargeRule.objects.exists() and not PoolCap.objects.exists()


def test_office_admins_see_controls_read_only(company, care, austin_admin):
    recharge_rule_set(
        company=company, account=wallet(company, "austin"), threshold="5", amount="9", actor=care
    )
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="40", actor=care)
    client = client_for(austin_admin)
    page = client.get(URL).content.decode()
    assert 'id="read-only-note"' in page and '<form method="post" class="inline-form"' not in page
    assert "Austin wallet" in page and "Berlin" not in page and "40.00" in page
    response = client.post(
        URL, {"action": "cap", "office": company.offices.get(slug="austin").pk, "cap": "1"}
    )
    assert response.status_code == 403
    assert PoolCap.objects.get().cap == Decimal(40)


def test_removing_a_rule_asks_for_confirmation_first(company, care, acme_admin):
    rule = recharge_rule_set(
        company=company, account=wallet(company, "hq"), threshold="5", amount="9", actor=care
    )
    client = client_for(acme_admin)
    response = client.post(URL, {"action": "rule_delete", "rule": rule.pk})
    assert response.status_code == 200 and 'id="confirm-question"' in response.content.decode()
    assert RechargeRule.objects.filter(pk=rule.pk).exists()
    response = client.post(URL, {"action": "rule_delete", "rule": rule.pk, "confirm": "1"})
    assert response.status_code == 302
    assert not RechargeRule.objects.exists()


def test_the_webhook_secret_is_shown_once(company, acme_admin):
    client = client_for(acme_admin)
    response = client.post(URL, {"action": "webhook", "url": "https://hooks.example.com/c"})
    assert response.status_code == 200
    secret = company.controls.webhook_secret
    assert secret in response.content.decode()
    assert secret not in client.get(URL).content.decode()
    bad = client.post(URL, {"action": "webhook", "url": "http://hooks.example.com/c"})
    assert bad.status_code == 422 and "HTTPS" in bad.content.decode()
    company.controls.refresh_from_db()
    assert company.controls.webhook_url == "https://hooks.example.com/c"


def test_open_alerts_show_as_a_banner_to_the_people_they_concern(
    company, care, acme_admin, austin_admin
):
    berlin_admin = office_admin(company.offices.get(slug="berlin"), username="berlin-admin")
    alert_threshold_set(company=company, account=wallet(company, "austin"), value="5", actor=care)
    for user, sees in ((acme_admin, True), (austin_admin, True), (berlin_admin, False)):
        for url in (
            "/balance/",
            "/usage/",
            f"/offices/{'berlin' if user == berlin_admin else 'austin'}/",
        ):
            page = client_for(user).get(url).content.decode()
            assert ('class="alert-banner"' in page) is sees, (user, url)
            assert ("Austin wallet is below" in page) is sees


def test_the_cap_and_its_room_show_on_the_balance_page(company, care, acme_admin):
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    pool_cap_set(company=company, office=company.offices.get(slug="berlin"), cap="25", actor=care)
    page = client_for(acme_admin).get("/balance/").content.decode()
    assert 'data-cap="berlin"' in page and "Pool cap of Berlin: 25.00, room left 25.00" in page
