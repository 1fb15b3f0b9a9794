"""Usage records partitioned by month on PostgreSQL (usage/partitions.py, migration
usage 0010): the migration converts a table with rows, partitions are created ahead and
take over rows from DEFAULT, retention detaches and archives whole months, and the guard
table (UsageKey) keeps an id charged once through all of it."""

from __future__ import annotations

import datetime as dt
import gzip
import io
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.checks import ledger_violations
from core.errors import ValidationFailed
from tests.factories import company_factory, event
from usage.models import UsageKey, UsageRecord
from usage.partitions import (
    ARCHIVE_SCHEMA,
    DEFAULT,
    TABLE,
    is_partitioned,
    month_add,
    month_start,
    partition_name,
    partitions_ensure,
    partitions_list,
)
from usage.services import usage_ingest

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="partitions exist on PostgreSQL only"
)

BEFORE, AFTER = (
    ("usage", "0009_phone_digits_index"),
    ("usage", "0010_partitioned_records_and_key_guard"),
)
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
THIS_MONTH = month_start(NOW.date())


def months_ago(n: int, day: int = 10) -> dt.datetime:
    month = month_add(THIS_MONTH, -n)
    return dt.datetime(month.year, month.month, day, 12, 0, tzinfo=dt.UTC)


def rows() -> dict[int, dict]:
    """Every stored record, every column, by primary key."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {TABLE} ORDER BY id")  # noqa: S608
        names = [c.name for c in cursor.description]
        return {r[0]: dict(zip(names, r, strict=True)) for r in cursor.fetchall()}


def where(pk: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT tableoid::regclass::text FROM {TABLE} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def relkind() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [TABLE])
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_migration_converts_a_table_with_rows_and_fills_the_guard(company):
    other = company_factory(slug="other")
    # given: records charged now, 14 months ago and 40 months ago (outside the default
    # window of partitions), then the schema taken back to before the partitioning
    usage_ingest(
        company=company,
        events=[
            event("now-1", quantity="3", occurred_at=NOW - dt.timedelta(hours=1)),
            event("old-1", office="austin", quantity="2", occurred_at=months_ago(14)),
            event("ancient-1", quantity="1", occurred_at=months_ago(40)),
        ],
    )
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    assert relkind() == "r"  # a plain table again, rows kept
    with connection.cursor() as cursor:  # the previous state's unique key is back
        cursor.execute(
            "SELECT 1 FROM pg_constraint WHERE conname = 'usage_external_id_once_per_company'"
        )
        assert cursor.fetchone() is not None
        cursor.execute("SELECT to_regclass('usage_usagekey')")
        assert cursor.fetchone()[0] is None
    # a row written through the previous state's model (and its id sequence), for another
    # company: never charged, so only its id and guard are checked below
    old_state = MigrationExecutor(connection).loader.project_state([BEFORE]).apps
    OldRecord = old_state.get_model("usage", "UsageRecord")
    template = OldRecord.objects.get(external_id="now-1")
    template.pk, template.external_id = None, "made-before-1"
    template.company_id, template.office_id = other.pk, other.offices.get(slug="hq").pk
    template.save()
    before = rows()
    assert len(before) == 4
    # when
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([AFTER])
    # then: partitioned, every row unchanged and in its month's partition
    try:
        assert relkind() == "p"
        assert rows() == before
        for pk, row in before.items():
            assert where(pk) == partition_name(month_start(row["occurred_at"].date()))
        # the guard holds one row per record
        keys = set(
            UsageKey.objects.values_list("company_id", "external_id", "record_id", "occurred_at")
        )
        assert keys == {
            (r["company_id"], r["external_id"], pk, r["occurred_at"]) for pk, r in before.items()
        }
        # the sequence goes on after the old rows, and ingestion works on the new table
        result = usage_ingest(
            company=company,
            events=[
                event("after-1", occurred_at=NOW),
                event("old-1", office="austin", quantity="2", occurred_at=months_ago(14)),
            ],
        )
        assert result[0].record.pk > max(before)
        assert [r.duplicate for r in result] == [False, True]
        assert result[1].record.pk == next(
            pk for pk, r in before.items() if r["external_id"] == "old-1"
        )
        # every invariant holds for the charged company; the other company's hand-made
        # row was never charged (no allowance, rollup or ledger effect), so there only
        # the checks of §6.4 (ids and their guard rows) apply
        assert ledger_violations([company.pk]) == []
        assert [v for v in ledger_violations([other.pk]) if "§6.4" in v] == []
    finally:
        MigrationExecutor(connection).migrate([AFTER])  # whatever happened, leave it migrated


@pytest.mark.django_db
def test_fresh_database_is_partitioned_with_a_window_and_default(company):
    names = {p.name for p in partitions_list()}
    assert is_partitioned()
    assert DEFAULT in names
    for n in range(-12, 4):
        assert partition_name(month_add(THIS_MONTH, n)) in names


@pytest.mark.django_db
def test_events_far_from_now_land_in_default_and_a_new_partition_takes_them(company):
    # given: events 30 months ago: no partition covers them
    far = months_ago(30)
    usage_ingest(
        company=company,
        events=[
            event("far-1", occurred_at=far),
            event("far-2", occurred_at=far + dt.timedelta(days=3)),
        ],
    )
    pks = list(
        UsageRecord.objects.filter(external_id__startswith="far-").values_list("pk", flat=True)
    )
    assert {where(pk) for pk in pks} == {DEFAULT}
    stored = rows()
    # when: the maintenance command creates that month, twice
    month = month_start(far.date())
    out = io.StringIO()
    call_command(
        "usage_partitions", "--from", f"{month:%Y-%m}", "--to", f"{month:%Y-%m}", stdout=out
    )
    again = io.StringIO()
    call_command(
        "usage_partitions", "--from", f"{month:%Y-%m}", "--to", f"{month:%Y-%m}", stdout=again
    )
    # then: the rows moved into it, unchanged; the second run created nothing
    assert f"created {partition_name(month)}" in out.getvalue()
    assert "0 partition(s) created" in again.getvalue()
    assert {where(pk) for pk in pks} == {partition_name(month)}
    assert rows() == stored
    assert partitions_ensure(month, month_add(month, 1)) == []
    # and a re-sent id is still a duplicate, found through the guard
    result = usage_ingest(company=company, events=[event("far-1", occurred_at=far)])
    assert result[0].duplicate and result[0].record.pk in pks
    assert ledger_violations() == []


@pytest.mark.django_db
def test_usage_partitions_refuses_a_bad_month(company):
    with pytest.raises(CommandError, match="not a month"):
        call_command("usage_partitions", "--from", "2025-13")


@pytest.mark.django_db
def test_retention_dry_run_changes_nothing_then_archives_whole_months(company, tmp_path):
    # (everything, the archive schema included, is rolled back with the test's transaction)
    # given: records 12 and 11 months ago and now
    old, older = months_ago(11), months_ago(12)  # inside the migration's window
    usage_ingest(
        company=company,
        events=[
            event("r-older", quantity="5", occurred_at=older),
            event("r-old", office="austin", quantity="4", occurred_at=old),
            event("r-now", quantity="3", occurred_at=NOW - dt.timedelta(minutes=5)),
        ],
    )
    stored = rows()
    before = month_start(old.date())  # archive the month 12 months ago only
    # when: a dry run
    out = io.StringIO()
    call_command("usage_retention", "--before", f"{before:%Y-%m}", stdout=out)
    # then: it says what it would do and nothing changed
    assert f"would archive {partition_name(month_start(older.date()))} (1 rows)" in out.getvalue()
    assert "Dry run: nothing changed" in out.getvalue()
    assert rows() == stored
    # when: applied, with an archive directory
    out = io.StringIO()
    call_command(
        "usage_retention",
        "--before",
        f"{before:%Y-%m}",
        "--apply",
        "--archive-dir",
        str(tmp_path),
        stdout=out,
    )
    # then: every partition before that month left the live table, moved to the archive
    gone = partition_name(month_start(older.date()))
    assert f"archived {gone} (1 rows)" in out.getvalue()
    live = {p.name for p in partitions_list()}
    assert gone not in live
    assert not [p for p in partitions_list() if p.month and p.month < before]
    assert set(UsageRecord.objects.values_list("external_id", flat=True)) == {"r-old", "r-now"}
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT external_id, cost FROM {ARCHIVE_SCHEMA}.{gone}")  # noqa: S608
        assert cursor.fetchall() == [("r-older", Decimal("5.0000"))]
        # archived rows are append-only too
        with pytest.raises(Exception, match="append-only"):
            cursor.execute("SAVEPOINT s")
            cursor.execute(f"DELETE FROM {ARCHIVE_SCHEMA}.{gone}")  # noqa: S608
        cursor.execute("ROLLBACK TO SAVEPOINT s")
    with gzip.open(tmp_path / f"{gone}.tsv.gz", "rt") as f:
        lines = f.read().splitlines()
    assert "external_id" in lines[0].split("\t")  # a header line, then the row
    assert len(lines) == 2 and "r-older" in lines[1]
    # check_ledger still sums the archived records: no violation
    assert ledger_violations() == []
    # the id stays charged: sent again it is refused, not charged twice
    with pytest.raises(ValidationFailed) as refused:
        usage_ingest(company=company, events=[event("r-older", quantity="5", occurred_at=older)])
    assert refused.value.errors[0]["index"] == 0
    assert "archived" in refused.value.errors[0]["message"]
    assert UsageKey.objects.filter(external_id="r-older").count() == 1
    # and a second run finds nothing more to do
    out = io.StringIO()
    call_command("usage_retention", "--before", f"{before:%Y-%m}", "--apply", stdout=out)
    assert "Nothing to archive" in out.getvalue()


@pytest.mark.django_db
def test_retention_refuses_months_that_are_not_closed(company):
    with pytest.raises(CommandError, match="not closed"):
        call_command("usage_retention", "--before", f"{THIS_MONTH:%Y-%m}")


@pytest.mark.django_db
def test_check_ledger_reports_a_record_without_its_guard_row(company):
    usage_ingest(company=company, events=[event("g-1")])
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM usage_usagekey WHERE external_id = 'g-1'")
    assert any("guard row of event id 'g-1'" in v for v in ledger_violations())


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
