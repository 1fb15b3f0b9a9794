"""check_ledger's per-local-day comparison of the day rollups, run over several companies
at once (the whole database, as `manage.py check_ledger` does): a company whose time zone
changed is compared per period only, every other company per local day as well."""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from core.checks import ledger_violations
from offices.models import Company
from tests.factories import company_factory
from tests.usage.test_usage_day_rollups import _charge
from usage.models import UsageDay

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the per-day comparison runs on PostgreSQL"
)


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""


@pytest.fixture
def two(db, services, care):
    kept = company_factory(
        slug="kol", billing_timezone="Asia/Kolkata", offices=("austin", "berlin")
    )
    moved = company_factory(
        slug="mov", billing_timezone="Asia/Kolkata", offices=("austin", "berlin")
    )
    _charge(kept, care, seed=5, n=180)
    _charge(moved, care, seed=6, n=180)
    # `moved` now bills in New York: its rollups count days in Kolkata.
    Company.objects.filter(pk=moved.pk).update(billing_timezone="America/New_York")
    return kept, moved


def _move_a_day(company) -> None:
    """A rollup moved to another day of its month: the per-period sums still agree."""
    row = UsageDay.objects.filter(company=company, day=dt.date(2026, 10, 6)).first()
    UsageDay.objects.filter(pk=row.pk).update(day=dt.date(2026, 10, 21))


def test_days_of_a_company_in_its_zone_are_checked_beside_one_whose_zone_changed(two):
    kept, moved = two
    assert ledger_violations() == []
    # when: each company gets a rollup moved within its month
    _move_a_day(kept)
    _move_a_day(moved)
    # then: only the company still in its zone is compared per day, and it is caught
    for scope in (None, [kept.pk, moved.pk], [kept.pk]):
        problems = ledger_violations(scope)
        assert problems, scope
        assert all("usage day rollups" in p for p in problems)
        assert any("day 2026-10-21" in p for p in problems)
        offices = set(kept.offices.values_list("pk", flat=True))
        assert all(int(p.split("office ")[1].split(",")[0]) in offices for p in problems)
    assert ledger_violations([moved.pk]) == []


def test_a_company_whose_days_were_all_in_its_zone_is_checked_per_day_again(two):
    kept, moved = two
    _move_a_day(moved)
    assert ledger_violations([moved.pk]) == []
    # when: the company returns to the zone its rollups were counted in
    Company.objects.filter(pk=moved.pk).update(billing_timezone="Asia/Kolkata")
    # then: the moved rollup is found
    problems = ledger_violations([moved.pk])
    assert any("day 2026-10-21" in p for p in problems)
