"""Per-day usage rollups (UsageDay): kept by the allocation service, rebuilt for a backfill.

A rollup row sums the usage records of one office, service, credit kind, local day (in the
company's time zone when they were charged) and funding split. The usage history reads
its totals from them (usage/selectors.py), `check_ledger` verifies them."""

from __future__ import annotations

from collections import defaultdict

from django.db import connection

from core.money import ZERO
from usage.models import FUNDED_BITS, UsageDay, UsageRecord, funded_mask

SUMMED = ("cost", *FUNDED_BITS)  # cost and the five parts of its split
KEY = ("company_id", "office_id", "service_id", "credit_kind", "day", "tz", "funded")


def _grouped(records: list[UsageRecord], tz) -> dict[tuple, list]:
    """(key) → [events, cost, allowance, pool, wallet, ai, uncovered] of `records`."""
    groups: dict[tuple, list] = defaultdict(lambda: [0, *[ZERO] * len(SUMMED)])
    tz_name = str(tz)
    for r in records:
        key = (
            r.company_id,
            r.office_id,
            r.service_id,
            r.credit_kind,
            r.occurred_at.astimezone(tz).date(),
            tz_name,
            funded_mask(r),
        )
        row = groups[key]
        row[0] += 1
        for i, name in enumerate(SUMMED, start=1):
            row[i] += getattr(r, name)
    return groups


def usage_days_add(records: list[UsageRecord], tz) -> None:
    """Add freshly charged records to their day rollups: the portable path (PostgreSQL
    sums them in SQL, usage_days_add_sql). Called in the charging transaction after the
    allowance rows of the records' (office, kind, period) are locked FOR UPDATE, which
    serializes every writer of these rollup rows (a day lies in one period), so this
    read-modify-write cannot lose an update."""
    groups = _grouped(records, tz)
    if not groups:
        return
    # Sorted: rows are created and updated in one order, whatever the batch.
    keys = sorted(groups, key=lambda k: (k[1], k[2], k[3], k[4], k[6]))
    existing = {
        tuple(getattr(d, f) for f in KEY): d
        for d in UsageDay.objects.filter(
            office_id__in={k[1] for k in keys}, day__in={k[4] for k in keys}
        )
    }
    new, changed = [], []
    for key in keys:
        events, *sums = groups[key]
        row = existing.get(key)
        if row is None:
            row = UsageDay(**dict(zip(KEY, key, strict=True)))
            new.append(row)
        else:
            changed.append(row)
        row.events += events
        for name, value in zip(SUMMED, sums, strict=True):
            setattr(row, name, getattr(row, name) + value)
    UsageDay.objects.bulk_create(new)
    UsageDay.objects.bulk_update(changed, ["events", *SUMMED])


def funded_sql(alias: str = "r") -> str:
    """The UsageDay.funded bits of a usage record, as SQL."""
    return " + ".join(
        f"CASE WHEN {alias}.{part} > 0 THEN {bit} ELSE 0 END" for part, bit in FUNDED_BITS.items()
    )


def usage_days_add_sql(*, day: str, tz: str, source: str, upsert: bool = True) -> str:
    """PostgreSQL: an INSERT adding the records `source` (FROM … WHERE … over alias r) to
    their day rollups, summed by the database (the sums usage_days_add makes in Python);
    `day` and `tz` are SQL for a record's local day and zone. The charging service runs
    it under the same allowance-row locks."""
    table = UsageDay._meta.db_table
    names = ", ".join((*KEY, "events", *SUMMED))
    sums = ", ".join(f"SUM(r.{c})" for c in SUMMED)
    sql = (
        f"INSERT INTO {table} AS d ({names}) "  # noqa: S608
        f"SELECT r.company_id, r.office_id, r.service_id, r.credit_kind, {day}, {tz}, "
        f"{funded_sql('r')}, COUNT(*), {sums} {source} GROUP BY 1, 2, 3, 4, 5, 6, 7"
    )
    if upsert:
        # Rows are created and updated in one order, whatever the batch.
        added = ", ".join(f"{c} = d.{c} + EXCLUDED.{c}" for c in ("events", *SUMMED))
        sql += (
            " ORDER BY 2, 3, 4, 5, 7 "
            "ON CONFLICT (office_id, service_id, credit_kind, day, tz, funded) "
            f"DO UPDATE SET {added}"
        )
    return sql


def usage_days_rebuild(company_ids: list[int] | None = None) -> None:
    """Replace the rollups of some companies (all when None) with sums of their records,
    days in each company's current time zone (a backfill: migration, bench dataset)."""
    deleted = UsageDay.objects.all()
    records = UsageRecord.objects.all()
    if company_ids is not None:
        deleted = deleted.filter(company_id__in=company_ids)
        records = records.filter(company_id__in=company_ids)
    deleted.delete()
    if connection.vendor == "postgresql":
        where, params = "", []
        if company_ids is not None:
            where, params = "WHERE r.company_id = ANY(%s)", [list(company_ids)]
        sql = usage_days_add_sql(
            day="(r.occurred_at AT TIME ZONE c.billing_timezone)::date",
            tz="c.billing_timezone",
            source=f"FROM {UsageRecord._meta.db_table} r "
            f"JOIN offices_company c ON c.id = r.company_id {where}",
            upsert=False,
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
        return
    by_company = defaultdict(list)
    for record in records.select_related("company").order_by("pk"):
        by_company[record.company].append(record)
    for company, company_records in by_company.items():
        usage_days_add(company_records, company.tz)
