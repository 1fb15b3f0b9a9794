"""The pool-cap alert (SPEC §8.3 "and may alert", §8.2): it opens in the charging
transaction when an office's cap left usage uncovered while the pool still held credits,
once per office and period; it resolves when the cap gives the office room again, when
pooling goes off, and when its period is over (a batch drew on the pool for a later
period). E-mail goes to the company admins and that office's admins; the banner shows it
to them. Charging runs on both write paths (the ORM and the one PostgreSQL statement)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.checks import ledger_check
from core.db import ORM, POSTGRESQL
from credits.controls import pool_cap_set
from credits.models import Account, AccountKind, Alert, AlertKind, Allowance
from credits.notifications import alert_notify, alert_payload
from credits.periods import billing_period
from credits.services import credits_purchase, pooling_set
from offices.models import CreditKind
from tests.credits.checks import assert_invariants
from tests.factories import company_admin, event, office_admin
from usage.services import usage_ingest

D = Decimal
WRITERS = [ORM, POSTGRESQL]


def sms(company, prefix: str, n: int, office="austin", writer=None, when=None):
    """`n` SMS events of `office` (1 credit each), in one batch."""
    return usage_ingest(
        company=company,
        events=[event(f"{prefix}-{i}", office=office, occurred_at=when) for i in range(n)],
        writer=writer,
    )


def cap_alerts(company, *, open_only=True):
    found = Alert.objects.filter(company=company, kind=AlertKind.POOL_CAP).select_related("office")
    if open_only:
        found = found.filter(resolved_at__isnull=True)
    return list(found.order_by("id"))


def pool(company) -> Account:
    return Account.objects.get(company=company, kind=AccountKind.POOL)


def austin_row(company, period=None) -> Allowance:
    rows = Allowance.objects.filter(
        office__slug="austin", company=company, kind=CreditKind.STANDARD
    )
    return rows.get(period=period) if period else rows.get()


def assert_ledger_ok(company):
    assert_invariants(company)
    assert ledger_check([company.pk]).violations == []


@pytest.fixture
def capped(company, care):
    """Pooling on, 100 in the pool, austin capped at 5 (its allowance is 100)."""
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="100", actor=care)
    company.refresh_from_db()
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="5", actor=care)
    return company


@pytest.mark.parametrize("writer", WRITERS)
def test_a_capped_out_office_alerts_once_and_a_further_capped_event_does_not_re_alert(
    capped, writer
):
    company = capped
    # given: austin uses its allowance and 4 of its 5 from the pool: no alert yet
    sms(company, "a", 104, writer=writer)
    assert cap_alerts(company) == []
    # when: 3 more: 1 from the pool, 2 uncovered by the cap while the pool holds 95
    sms(company, "b", 3, writer=writer)
    # then: one alert for austin and this period, with the cap and the pool's balance
    (alert,) = cap_alerts(company)
    period = billing_period(company).start
    assert (alert.office.slug, alert.period) == ("austin", period)
    assert alert.account_id == pool(company).pk
    assert (alert.threshold, alert.balance) == (D("5"), D("95"))
    assert austin_row(company).pool_cap_alert
    assert pool(company).pool_cap_alerts == 1
    # when: more capped events, in one batch and in another
    sms(company, "c", 2, writer=writer)
    sms(company, "d", 1, writer=writer)
    # then: still that one alert, and no other kind opened
    assert cap_alerts(company, open_only=False) == [alert]
    assert Alert.objects.filter(company=company).count() == 1
    assert austin_row(company).uncovered == D("5")
    assert_ledger_ok(company)


def test_an_empty_pool_opens_the_uncovered_alert_not_the_cap_alert(company, care):
    # given: pooling on, 3 in the pool, austin capped at 5
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="3", actor=care)
    company.refresh_from_db()
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="5", actor=care)
    # when: austin needs 6 beyond its allowance: the pool empties before the cap bites
    sms(company, "a", 106)
    # then: the empty pool's alert, no cap alert
    assert cap_alerts(company) == []
    assert Alert.objects.get(company=company).kind == AlertKind.UNCOVERED
    assert_ledger_ok(company)


def test_other_offices_and_uncapped_usage_open_nothing(capped):
    company = capped
    sms(company, "b", 150, office="berlin")  # no cap: 50 from the pool
    sms(company, "a", 105)  # exactly austin's cap: nothing uncovered
    assert cap_alerts(company) == []
    assert not austin_row(company).pool_cap_alert


@pytest.mark.parametrize("writer", WRITERS)
def test_raising_the_cap_to_give_room_resolves_it_and_a_new_capping_re_alerts(capped, care, writer):
    company = capped
    austin = company.offices.get(slug="austin")
    sms(company, "a", 110, writer=writer)  # 5 from the pool, 5 uncovered
    (first,) = cap_alerts(company)
    # when: the cap is lowered or raised without giving room (drawn 5)
    pool_cap_set(company=company, office=austin, cap="2", actor=care)
    pool_cap_set(company=company, office=austin, cap="5", actor=care)
    # then: still open
    assert cap_alerts(company) == [first]
    # when: raised to 8: room 3
    pool_cap_set(company=company, office=austin, cap="8", actor=care)
    # then: resolved, with the pool's balance then; the flag and the pool's count clear
    first.refresh_from_db()
    assert first.resolved_at is not None and first.resolved_balance == D("95")
    assert not austin_row(company).pool_cap_alert
    assert pool(company).pool_cap_alerts == 0
    # and capped out again, a new alert opens for the same period
    sms(company, "b", 4, writer=writer)
    (second,) = cap_alerts(company)
    assert second.pk != first.pk and second.period == first.period
    assert_ledger_ok(company)


def test_removing_the_cap_resolves_it(capped, care):
    company = capped
    sms(company, "a", 110)
    assert len(cap_alerts(company)) == 1
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap=None, actor=care)
    assert cap_alerts(company) == []
    assert len(cap_alerts(company, open_only=False)) == 1
    assert_ledger_ok(company)


def test_turning_pooling_off_resolves_it(capped, care):
    company = capped
    sms(company, "a", 110)
    assert len(cap_alerts(company)) == 1
    pooling_set(company=company, enabled=False, actor=care, reason="test")
    assert cap_alerts(company) == []
    assert not austin_row(company).pool_cap_alert
    assert pool(company).pool_cap_alerts == 0
    assert_ledger_ok(company)
    # and back on, the cap still capped out: the next capped event alerts again
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="10", actor=care)
    sms(company, "b", 1)
    assert len(cap_alerts(company)) == 1
    assert_ledger_ok(company)


@pytest.mark.parametrize("writer", WRITERS)
def test_an_earlier_periods_alert_resolves_when_the_pool_is_drawn_for_a_later_period(
    capped, writer
):
    company = capped
    this_month = billing_period(company).start
    last_month = (this_month - dt.timedelta(days=1)).replace(day=1)
    before = dt.datetime.combine(this_month - dt.timedelta(days=3), dt.time(12), tzinfo=dt.UTC)
    # given: austin capped out last month
    sms(company, "old", 110, writer=writer, when=before)
    (old,) = cap_alerts(company)
    assert old.period == last_month
    # when: hq's first pool draw of this month (any office: the period is the company's)
    now = timezone.now() - dt.timedelta(minutes=1)
    sms(company, "now", 1, office="hq", writer=writer, when=now)
    # then: last month's alert resolves; the pool knows this month has begun
    old.refresh_from_db()
    assert old.resolved_at is not None
    assert pool(company).latest_period == this_month
    # and a late capped event of last month opens none (its period is over)
    sms(company, "late", 1, writer=writer, when=before)
    assert cap_alerts(company) == []
    # while austin capped out this month opens this month's
    sms(company, "a", 110, writer=writer, when=now)
    (new,) = cap_alerts(company)
    assert new.period == this_month
    assert_ledger_ok(company)


def test_a_batch_that_caps_nothing_writes_nothing_about_alerts(capped):
    company = capped
    sms(company, "a", 2)  # the pool's period is known from now on
    with CaptureQueriesContext(connection) as queries:
        sms(company, "b", 102, writer=POSTGRESQL)
    touched = [
        q["sql"]
        for q in queries.captured_queries
        if Alert._meta.db_table in q["sql"] or "pool_cap_alert" in q["sql"].split("SET")[-1]
    ]
    assert touched == []
    assert cap_alerts(company) == []


def test_check_ledger_reports_the_alert_out_of_step(capped, care):
    company = capped
    sms(company, "a", 110)
    # an open alert whose row says none
    Allowance.objects.filter(pk=austin_row(company).pk).update(pool_cap_alert=False)
    found = ledger_check([company.pk]).violations
    assert any("open pool-cap alerts, its row says none" in v for v in found), found
    # a flag while the office has room
    Allowance.objects.filter(pk=austin_row(company).pk).update(pool_cap_alert=True, pool_cap=D(50))
    found = ledger_check([company.pk]).violations
    assert any("flagged capped out, yet has room 45" in v for v in found), found
    # the pool's count out of step
    Allowance.objects.filter(pk=austin_row(company).pk).update(pool_cap=D(5))
    assert ledger_check([company.pk]).violations == []
    Account.objects.filter(pk=pool(company).pk).update(pool_cap_alerts=0)
    found = ledger_check([company.pk]).violations
    assert any("counts 0 open pool-cap alerts, has 1" in v for v in found), found


# Who is told ---------------------------------------------------------------------------


def test_email_goes_to_company_admins_and_that_offices_admins(capped, care):
    company = capped
    boss = company_admin(company, username="boss")
    austin_boss = office_admin(company.offices.get(slug="austin"), username="austin-boss")
    office_admin(company.offices.get(slug="berlin"), username="berlin-boss")
    sms(company, "a", 110)
    (alert,) = cap_alerts(company)
    alert_notify.call(alert.pk)
    (message,) = mail.outbox
    assert sorted(message.to) == sorted([boss.email, austin_boss.email])
    assert message.subject == f"Pool cap reached: Austin in {alert.period:%B %Y}"
    assert "pool cap of 5.0000 credits" in message.body
    assert "raise or remove the cap" in message.body
    payload = alert_payload(alert)
    assert (payload["event"], payload["office"], payload["period"]) == (
        "alert.pool_cap",
        "austin",
        f"{alert.period:%Y-%m}",
    )
    assert payload["threshold"] == "5.0000" and payload["balance"]["kind"] == "pool"


@pytest.mark.django_db(transaction=True)
def test_the_notification_is_queued_only_when_the_charge_commits(company, care):
    from django_tasks_db.models import DBTaskResult

    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="100", actor=care)
    company.refresh_from_db()
    pool_cap_set(company=company, office=company.offices.get(slug="austin"), cap="5", actor=care)
    queued = DBTaskResult.objects.count()
    sms(company, "a", 110)
    assert len(cap_alerts(company)) == 1
    assert DBTaskResult.objects.count() == queued + 1
    sms(company, "b", 2)  # no re-alert: nothing queued
    assert DBTaskResult.objects.count() == queued + 1


def test_the_banner_shows_it_to_company_admins_and_that_offices_admins(capped):
    company = capped
    boss = company_admin(company, username="boss")
    austin_boss = office_admin(company.offices.get(slug="austin"), username="austin-boss")
    berlin_boss = office_admin(company.offices.get(slug="berlin"), username="berlin-boss")
    sms(company, "a", 110)
    period = billing_period(company).start
    text = f"Austin has drawn its 5.00-credit pool cap for {period:%B %Y}"
    for user, sees in ((boss, True), (austin_boss, True), (berlin_boss, False)):
        client = Client()
        client.force_login(user)
        office = "berlin" if user == berlin_boss else "austin"
        for url in ("/balance/", "/usage/", f"/offices/{office}/", "/balance/controls/"):
            page = client.get(url).content.decode()
            assert (text in page) is sees, (user.username, url)
            assert (f'data-alert="pool_cap-austin-{period:%Y-%m}"' in page) is sees
