"""The day rollups (UsageDay) behind the usage history totals: kept by the allocation
service, equal to the plain SUM over the filtered records (company time zones that are not
UTC, days cut at local midnight), verified by check_ledger, and never used where they
cannot answer exactly."""

from __future__ import annotations

import datetime as dt
import itertools
import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from core.checks import ledger_violations
from credits.services import credits_purchase, pooling_set
from offices.models import Company
from offices.selectors import portal_scope_for
from tests.factories import company_admin, company_factory, event, office_admin
from usage import rollups
from usage.filters import UsageFilter
from usage.models import UsageDay
from usage.rollups import usage_days_rebuild
from usage.selectors import usage_history_for, usage_totals, usage_totals_for

# Around local midnights of Kolkata (UTC+5:30): 18:30 UTC is midnight there.
BASE = dt.datetime(2026, 10, 5, 18, 0, tzinfo=dt.UTC)
DAYS = ("2026-10-05", "2026-10-06", "2026-10-07", "2026-10-08")


def _charge(company, care, *, seed: int = 7, n: int = 240) -> None:
    """Events of every service, office and funding split, spread over four days with many
    of them minutes away from local midnight; in batches big (COPY) and small."""
    rng = random.Random(seed)
    austin = company.offices.get(slug="austin")
    credits_purchase(company=company, amount="150", office=austin, actor=care)
    offices = ("hq", "austin", "berlin")
    services = ("sms", "sms", "call_international", "ai_agent")
    events = []
    for i in range(n):
        day = rng.randrange(4)
        minute = rng.choice([-31, -30, -29, -1, 0, 1, 29, 30, 31, rng.randrange(-600, 600)])
        when = BASE + dt.timedelta(days=day, minutes=minute)
        events.append(
            event(
                f"e{seed}-{i}",
                office=rng.choice(offices),
                service=rng.choice(services),
                quantity=str(rng.randint(1, 9)),
                occurred_at=when,
                user_label=rng.choice(["Ana Ng", "Ben Ortiz", ""]),
            )
        )
    events.sort(key=lambda e: e.occurred_at)
    from usage.services import usage_ingest

    usage_ingest(company=company, events=events[:60])  # COPY path
    for start in range(60, 120, 7):  # INSERT path
        usage_ingest(company=company, events=events[start : min(start + 7, 120)])
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    usage_ingest(company=company, events=events[120:])


@pytest.fixture
def kolkata(db, services, care):
    company = company_factory(
        slug="kol", billing_timezone="Asia/Kolkata", offices=("austin", "berlin")
    )
    _charge(company, care)
    return company


def _filters(company, services):
    offices = {o.slug: o.pk for o in company.offices.all()}
    yield {}
    for slug in offices:
        yield {"office": offices[slug]}
    for code in ("sms", "call_international", "ai_agent"):
        yield {"service": services[code].pk}
    yield {"credit_kind": "ai_agent"}
    for funded in ("allowance", "pool", "wallet", "ai", "uncovered"):
        yield {"funded_by": funded}
    for first, last in itertools.combinations_with_replacement(DAYS, 2):
        yield {"date_from": first, "date_to": last}
    yield {"date_from": DAYS[1]}
    yield {"date_to": DAYS[1]}
    yield {
        "office": offices["austin"],
        "service": services["sms"].pk,
        "funded_by": "pool",
        "date_from": DAYS[1],
        "date_to": DAYS[2],
    }
    yield {"credit_kind": "standard", "funded_by": "allowance", "date_to": DAYS[2]}


def _totals(scope, data):
    filterset = UsageFilter(data, queryset=usage_history_for(scope), scope=scope)
    assert filterset.is_valid(), filterset.errors
    with CaptureQueriesContext(connection) as ctx:
        fast = usage_totals_for(scope, filterset)
    plain = usage_totals(filterset.qs)
    summed_records = [
        q for q in ctx.captured_queries if "usage_usagerecord" in q["sql"] and "SUM(" in q["sql"]
    ]
    return fast, plain, summed_records


def test_totals_from_day_rollups_equal_the_sum_of_the_filtered_records(kolkata, services):
    scope = portal_scope_for(company_admin(kolkata))
    assert UsageDay.objects.filter(company=kolkata).count() > 20
    checked = 0
    for data in _filters(kolkata, services):
        fast, plain, summed_records = _totals(scope, data)
        assert fast == plain, data
        assert not summed_records, data  # answered by the rollups
        checked += plain["events"] > 0
    assert checked > 20
    # Local days, not UTC days: an event at 18:29 UTC is on the 5th, at 18:30 on the 6th.
    fast, plain, _ = _totals(scope, {"date_from": DAYS[0], "date_to": DAYS[0]})
    assert (
        plain["events"]
        == kolkata.usage_records.filter(
            occurred_at__lt=dt.datetime(2026, 10, 5, 18, 30, tzinfo=dt.UTC)
        ).count()
    )


def test_office_admins_totals_come_from_their_offices_rollups_only(kolkata, services):
    austin = kolkata.offices.get(slug="austin")
    scope = portal_scope_for(office_admin(austin))
    for data in ({}, {"service": services["sms"].pk}, {"date_from": DAYS[1]}):
        fast, plain, summed_records = _totals(scope, data)
        assert fast == plain and not summed_records
        assert plain["events"] < kolkata.usage_records.count()


def test_other_filters_sum_the_records(kolkata, services):
    scope = portal_scope_for(company_admin(kolkata))
    for data in ({"q": "Ana"}, {"min_cost": "3"}, {"service": services["sms"].pk, "q": "Ben"}):
        fast, plain, summed_records = _totals(scope, data)
        assert fast == plain and summed_records


def test_a_new_time_zone_makes_dated_totals_sum_the_records(kolkata, services):
    # given: rollups of days in Kolkata, then the company moves to New York
    Company.objects.filter(pk=kolkata.pk).update(billing_timezone="America/New_York")
    kolkata.refresh_from_db()
    scope = portal_scope_for(company_admin(kolkata))
    for data in _filters(kolkata, services):
        fast, plain, summed_records = _totals(scope, data)
        assert fast == plain, data
        assert bool(summed_records) == ("date_from" in data or "date_to" in data), data
    assert ledger_violations([kolkata.pk]) == []


def test_rollups_are_what_a_rebuild_from_the_records_gives(kolkata):
    def rows():
        return sorted(
            UsageDay.objects.filter(company=kolkata).values_list(
                *rollups.KEY, "events", *rollups.SUMMED
            )
        )

    kept = rows()
    usage_days_rebuild([kolkata.pk])
    assert rows() == kept


def test_generic_path_stores_what_the_postgresql_path_stores(db, services, care, monkeypatch):
    first = company_factory(
        slug="pg", billing_timezone="America/New_York", offices=("austin", "berlin")
    )
    second = company_factory(
        slug="gen", billing_timezone="America/New_York", offices=("austin", "berlin")
    )
    _charge(first, care, seed=3, n=150)
    # The portable path: records saved as model instances, rollups summed in Python.
    with monkeypatch.context() as m:
        m.setattr(connection, "vendor", "other")
        _charge(second, care, seed=3, n=150)

    def rows(company):
        return sorted(
            (o_slug, s, k, d, tz, f, *rest)
            for (o_slug, s, k, d, tz, f, *rest) in UsageDay.objects.filter(
                company=company
            ).values_list(
                "office__slug",
                "service_id",
                "credit_kind",
                "day",
                "tz",
                "funded",
                "events",
                *rollups.SUMMED,
            )
        )

    assert rows(first) == rows(second)
    assert ledger_violations([first.pk, second.pk]) == []


def test_check_ledger_finds_a_wrong_rollup(kolkata):
    assert ledger_violations([kolkata.pk]) == []
    row = UsageDay.objects.filter(company=kolkata, day=dt.date(2026, 10, 6)).first()
    # A day moved within its month: only the per-day comparison sees it.
    UsageDay.objects.filter(pk=row.pk).update(day=dt.date(2026, 10, 20))
    problems = ledger_violations([kolkata.pk])
    assert problems and all("usage day rollups" in p for p in problems)
    assert any("day 2026-10-20" in p for p in problems)
    UsageDay.objects.filter(pk=row.pk).update(day=row.day, cost=row.cost + 1)
    problems = ledger_violations([kolkata.pk])
    assert any("period 2026-10-01" in p and "cost" in p for p in problems)
    UsageDay.objects.filter(pk=row.pk).delete()
    assert any("events" in p for p in ledger_violations([kolkata.pk]))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="HOT updates: PostgreSQL")
def test_adding_to_a_day_rollup_updates_it_in_place(db, services):
    # The charging transaction adds every batch to its rollup rows under the pool's lock:
    # no index holds the sums and the pages keep room, so each addition is a HOT update
    # (no new index entries).
    company = company_factory(slug="hot")
    batches = [
        [
            event(f"h{n}-{i}", quantity="2", occurred_at=BASE + dt.timedelta(minutes=i))
            for i in range(60)  # COPY path
        ]
        for n in range(3)
    ]
    from usage.services import usage_ingest

    usage_ingest(company=company, events=batches[0])
    with connection.cursor() as cursor:

        def updates():
            cursor.execute(
                "SELECT n_tup_upd, n_tup_hot_upd FROM pg_stat_xact_user_tables WHERE relname = %s",
                [UsageDay._meta.db_table],
            )
            return cursor.fetchone()

        before = updates()
        for batch in batches[1:]:
            usage_ingest(company=company, events=batch)
        after = updates()
        cursor.execute(
            "SELECT reloptions FROM pg_class WHERE relname = %s", [UsageDay._meta.db_table]
        )
        options = cursor.fetchone()[0]
    updated, hot = after[0] - before[0], after[1] - before[1]
    assert updated >= 2 and hot == updated
    assert "fillfactor=70" in options
    assert sum(UsageDay.objects.filter(company=company).values_list("events", flat=True)) == 180


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
