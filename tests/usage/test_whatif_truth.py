"""The what-if tells the truth (SPEC §9.2, issue 26 items 1 and 9): pool caps stay in
force as they were at each draw and show on their own line, recharges are replayed where
they fired (the pool's rule; wallet rules sleep while pooled), archived periods are
refused, and a month's replay does not depend on the previous month's partition."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.money import ZERO
from credits.controls import pool_cap_set, recharge_rule_set
from credits.models import Account, AccountKind, PoolingChange
from credits.periods import period_of
from credits.services import credits_purchase
from offices.models import Company, CreditKind
from tests.factories import company_admin, event
from usage.api_auth import api_key_create
from usage.models import UsageRecord
from usage.services import usage_ingest
from usage.whatif import ArchivedPeriod, whatif_replay


def _now_period(company) -> dt.date:
    return period_of(dt.datetime.now(dt.UTC), company.tz)


def _offices(company) -> dict:
    return {o.slug: o for o in company.offices.all()}


def _by_name(whatif) -> dict:
    return {o.name: o for o in whatif.offices}


@pytest.mark.django_db
def test_demo_londons_overage_is_its_caps_doing_not_a_saving_of_pooling():
    # given the demo: Acme turned pooling on this round's month, London's pool cap left
    # usage uncovered after that
    call_command("seed_demo", stdout=io.StringIO())
    acme = Company.objects.get(slug="acme")
    turned_on = PoolingChange.objects.get(company=acme).created_at
    period = period_of(turned_on, acme.tz)
    whatif = whatif_replay(acme, period=period)
    london = _by_name(whatif)["London"]
    charged = UsageRecord.objects.filter(
        office__name="London",
        company=acme,
        credit_kind=CreditKind.STANDARD,
        created_at__gte=whatif.starts_at,
        created_at__lt=whatif.ends_at,
    )
    # London's overage of the month was all left while pooling was on (its cap) ...
    while_pooled = charged.filter(pooling_on=True).aggregate(s=Sum("uncovered"))["s"] or ZERO
    while_off = charged.filter(pooling_on=False).aggregate(s=Sum("uncovered"))["s"] or ZERO
    assert while_pooled > 0 and while_off == 0
    assert london.actual_uncovered == while_pooled
    # ... so the replay leaves the same uncovered, shown as the cap's, and pooling's
    # saving for London is nothing
    assert london.capped == while_pooled
    assert london.replayed_uncovered == london.actual_uncovered
    assert london.covered_by_pooling == ZERO
    assert whatif.capped == sum((o.capped for o in whatif.offices), ZERO) >= london.capped
    # the page and the API say so on their own line
    client = Client()
    client.force_login(company_admin(acme, "acme-truth-admin"))
    body = client.get(f"/what-if/{period:%Y-%m}/").content.decode()
    assert "Left uncovered by caps" in body
    assert f"{london.capped:,.2f}" in body
    _, key = api_key_create(company=acme, name="truth", actor=None)
    data = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get(f"/api/v1/what-if/{period:%Y-%m}").json()
    row = next(o for o in data["offices"] if o["office"] == "london")
    assert row["left_uncovered_by_caps"] == f"{london.capped}"
    assert row["covered_by_pooling"] == "0.0000"
    assert data["left_uncovered_by_caps"] == f"{whatif.capped}"


@pytest.mark.django_db
def test_a_cap_set_mid_month_applies_in_the_replay_from_then_on(company, care):
    offices = _offices(company)
    credits_purchase(company=company, amount="500", office=offices["hq"], actor=care)
    # austin runs 30 over its allowance (its wallet is empty) before any cap ...
    usage_ingest(company=company, events=[event("c1", office="austin", quantity="130")])
    pool_cap_set(company=company, office=offices["austin"], cap="20", actor=care)
    # ... and 40 more once a cap of 20 is set
    usage_ingest(company=company, events=[event("c2", office="austin", quantity="40")])
    whatif = whatif_replay(company, period=_now_period(company))
    austin = _by_name(whatif)["Austin"]
    assert austin.actual_uncovered == Decimal("70")
    # replayed: the pool pays the first 30 (no cap then); then the cap of 20 has no room
    # left after 30 drawn, so the 40 stay uncovered, by the cap
    assert austin.replayed_uncovered == Decimal("40")
    assert austin.capped == Decimal("40")
    assert austin.covered_by_pooling == Decimal("30")


@pytest.mark.django_db
def test_a_wallet_recharge_inside_a_batch_counts_where_it_fired(company, care):
    offices = _offices(company)
    credits_purchase(company=company, amount="10", office=offices["austin"], actor=care)
    wallet = Account.objects.get(company=company, office=offices["austin"])
    recharge_rule_set(
        company=company, account=wallet, threshold="5", amount="50", monthly_limit=3, actor=care
    )
    # one batch: allowance, 4 (wallet 6), 3 (would leave 3: +50 first, 53), 20 (33)
    usage_ingest(
        company=company,
        events=[
            event("w1", office="austin", quantity="100"),
            event("w2", office="austin", quantity="4"),
            event("w3", office="austin", quantity="3"),
            event("w4", office="austin", quantity="20"),
        ],
    )
    wallet.refresh_from_db()
    assert wallet.balance == Decimal("33")
    # then berlin runs 10 over while austin's wallet holds 33
    usage_ingest(company=company, events=[event("w5", office="berlin", quantity="110")])
    whatif = whatif_replay(company, period=_now_period(company))
    berlin = _by_name(whatif)["Berlin"]
    assert berlin.actual_uncovered == Decimal("10")
    assert berlin.idle_elsewhere == wallet.balance  # not 56: the balance right at the recharge
    # pooled, austin's wallet rule sleeps: the replayed pool gets the purchase only
    assert whatif.inflows == Decimal("10") and whatif.pool_recharges == ZERO
    by_name = _by_name(whatif)
    # the pool: 10, less 4 and 3 leaves 3 for the 20 (17 uncovered), then berlin's 10
    assert by_name["Austin"].replayed_uncovered == Decimal("17")
    assert berlin.replayed_uncovered == Decimal("10")


@pytest.mark.django_db
def test_the_pools_rule_recharges_the_replayed_pool_while_pooling_was_off(company, care):
    offices = _offices(company)
    credits_purchase(company=company, amount="10", office=offices["austin"], actor=care)
    pool = Account.objects.get(company=company, kind=AccountKind.POOL)
    recharge_rule_set(
        company=company, account=pool, threshold="5", amount="50", monthly_limit=1, actor=care
    )
    usage_ingest(
        company=company,
        events=[
            event("p1", office="austin", quantity="104"),
            event("p2", office="austin", quantity="3"),
            event("p3", office="austin", quantity="20"),
            event("p4", office="berlin", quantity="110"),
        ],
    )
    whatif = whatif_replay(company, period=_now_period(company))
    # actual: austin's wallet 10 pays 4 and 3, then 3 of 20 (17 over); berlin 10 over
    assert whatif.actual_uncovered == Decimal("27")
    # replayed: the pool's rule (dormant while pooling was off) fires before the 3: the
    # pool would be left at 3, below 5 → +50, and then everything is paid
    assert whatif.pool_recharges == Decimal("50")
    assert whatif.inflows == Decimal("60")
    assert whatif.replayed_uncovered == ZERO
    assert whatif.covered_by_pooling == Decimal("27")


@pytest.mark.django_db
def test_care_page_loads_the_what_if_on_demand(company, care):
    usage_ingest(company=company, events=[event("d1", office="austin", quantity="115")])
    client = Client()
    client.force_login(care)
    with CaptureQueriesContext(connection) as queries:
        page = client.get(f"/admin/offices/company/{company.pk}/change/")
    assert page.status_code == 200
    # (one indexed look-up of the company's first period, no replay)
    reads = [q["sql"] for q in queries if UsageRecord._meta.db_table in q["sql"]]
    assert all("LIMIT 1" in sql for sql in reads), reads
    body = page.content.decode()
    assert 'id="whatif-link"' in body and 'id="whatif-admin"' not in body
    # the link's page replays it
    whatif = client.get(f"/admin/offices/company/{company.pk}/what-if/")
    assert whatif.status_code == 200
    text = whatif.content.decode()
    assert 'id="whatif-admin"' in text and "15.0000" in text
    assert client.get("/admin/offices/company/999999/what-if/").status_code == 404
    # an office admin, not staff, gets the admin's login page instead
    outsider = Client()
    outsider.force_login(company_admin(company, "not-staff"))
    assert outsider.get(f"/admin/offices/company/{company.pk}/what-if/").status_code == 302


# Archived periods ---------------------------------------------------------------------


def _month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions: PostgreSQL only")
@pytest.mark.django_db
def test_archived_month_is_refused_and_the_next_month_is_unchanged(company, care):
    from unittest import mock

    from usage.partitions import month_add

    this = _month_start(dt.datetime.now(dt.UTC).date())
    older, old = month_add(this, -12), month_add(this, -11)  # inside the partition window
    at = dt.datetime(old.year, old.month, 2, 12, tzinfo=dt.UTC)
    late = dt.datetime(older.year, older.month, 27, 12, tzinfo=dt.UTC)
    with mock.patch("django.utils.timezone.now", return_value=late):
        credits_purchase(company=company, amount="1", office=_offices(company)["hq"], actor=care)
        usage_ingest(
            company=company,
            events=[event("o1", office="austin", quantity="101", occurred_at=late)],
        )
        # (the events occurred in the month before `old` and one is charged late, in `old`)
    with mock.patch("django.utils.timezone.now", return_value=at):
        credits_purchase(
            company=company, amount="5", office=_offices(company)["berlin"], actor=care
        )
        usage_ingest(
            company=company,
            events=[
                event("o2", office="austin", quantity="30", occurred_at=late),
                event("o3", office="hq", quantity="120", occurred_at=at),
            ],
        )
    before = whatif_replay(company, period=old)
    assert before.records == 2  # the late event of the month before is this month's
    call_command("usage_retention", "--before", f"{old:%Y-%m}", "--apply", stdout=io.StringIO())
    assert not UsageRecord.objects.filter(external_id="o2").exists()  # gone with its month
    after = whatif_replay(company, period=old)
    assert (after.records, after.offices, after.inflows) == (
        before.records,
        before.offices,
        before.inflows,
    )
    # the archived month itself is refused, with its reason, not replayed as empty
    with pytest.raises(ArchivedPeriod, match="archived"):
        whatif_replay(company, period=older)
    client = Client()
    client.force_login(company_admin(company))
    page = client.get(f"/what-if/{older:%Y-%m}/")
    assert page.status_code == 409 and "archived" in page.content.decode()
    _, key = api_key_create(company=company, name="t", actor=None)
    answer = Client(HTTP_AUTHORIZATION=f"Bearer {key}").get(f"/api/v1/what-if/{older:%Y-%m}")
    assert answer.status_code == 409 and "archived" in answer.json()["detail"].lower()
