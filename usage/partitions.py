"""Monthly partitions of the usage records on PostgreSQL (docs/scaling.md, "Partitions").

`usage_usagerecord` is `PARTITION BY RANGE (occurred_at)`: one partition per UTC month,
`usage_usagerecord_pYYYYMM`, plus a DEFAULT partition that catches whatever no monthly
partition covers (an event from long ago, a month not created yet). Its primary key is
(id, occurred_at); "an id is charged once per company" is kept by the unpartitioned
guard table UsageKey. On SQLite (the demo) the table stays a plain table and everything
here is a no-op.

* `partitions_ensure` creates monthly partitions ahead of time (`manage.py
  usage_partitions`, safe to run repeatedly). A month whose rows already sit in DEFAULT
  is handled: DEFAULT is swapped for a new one and its rows re-inserted through the
  parent, so they land in the new partitions.
* `partitions_archive` detaches the partitions of whole months before a month and moves
  them to the schema `usage_archive` (`manage.py usage_retention`); `record_source` is
  the live table plus those archived ones, for the checks that sum every record.
* `table_rebuild` converts the table between plain and partitioned, with its rows
  (migration usage 0010, both ways)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db import connections, transaction

from core.immutable import immutable_trigger_sql

TABLE = "usage_usagerecord"
DEFAULT = f"{TABLE}_default"
ARCHIVE_SCHEMA = "usage_archive"
# Partitions made by migrations and by `usage_partitions` without arguments: this many
# months back and ahead of the current month.
MONTHS_BACK, MONTHS_AHEAD = 12, 3


def month_start(day: dt.date) -> dt.date:
    return day.replace(day=1)


def month_add(month: dt.date, n: int) -> dt.date:
    index = month.year * 12 + month.month - 1 + n
    return dt.date(index // 12, index % 12 + 1, 1)


def partition_name(month: dt.date) -> str:
    return f"{TABLE}_p{month:%Y%m}"


def default_window(today: dt.date | None = None) -> tuple[dt.date, dt.date]:
    """[start, end) of the months kept ahead by default: 12 back to 3 ahead."""
    this = month_start(today or dt.datetime.now(dt.UTC).date())
    return month_add(this, -MONTHS_BACK), month_add(this, MONTHS_AHEAD + 1)


def _bound(month: dt.date) -> str:
    return f"{month:%Y-%m-%d} 00:00:00+00"


def _months(start: dt.date, end: dt.date) -> list[dt.date]:
    months, month = [], month_start(start)
    while month < end:
        months.append(month)
        month = month_add(month, 1)
    return months


def is_partitioned(using: str = "default") -> bool:
    conn = connections[using]
    if conn.vendor != "postgresql":
        return False
    with conn.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        row = cursor.fetchone()
    return row is not None and row[0] == "p"


@dataclass(frozen=True)
class Partition:
    name: str
    month: dt.date | None  # None: the DEFAULT partition
    rows: int | None = None


def partitions_list(using: str = "default", *, rows: bool = False) -> list[Partition]:
    """The attached partitions, monthly ones by month, DEFAULT last (exact row counts
    when `rows`)."""
    if not is_partitioned(using):
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass ORDER BY c.relname",
            [TABLE],
        )
        names = [r[0] for r in cursor.fetchall()]
        found = []
        for name in names:
            month = None
            if name != DEFAULT:
                month = dt.datetime.strptime(name.removeprefix(f"{TABLE}_p"), "%Y%m").date()
            count = None
            if rows:
                cursor.execute(f"SELECT count(*) FROM {name}")  # noqa: S608 - catalog names
                count = cursor.fetchone()[0]
            found.append(Partition(name, month, count))
    found.sort(key=lambda p: (p.month is None, p.month or dt.date.min))
    return found


def archived_tables(using: str = "default") -> list[str]:
    """The archived monthly partitions (schema usage_archive), oldest first."""
    if connections[using].vendor != "postgresql":
        return []
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s AND tablename LIKE %s "
            "ORDER BY tablename",
            [ARCHIVE_SCHEMA, f"{TABLE}\\_p%"],
        )
        return [r[0] for r in cursor.fetchall()]


def record_source(using: str = "default") -> str:
    """SQL for every usage record, live and archived: the table, or a subquery of it and
    the archived partitions (same columns) once `usage_retention` has archived some."""
    archived = archived_tables(using)
    if not archived:
        return TABLE
    # Names from the catalog, no user input.
    parts = [f"SELECT * FROM {TABLE}"] + [  # noqa: S608
        f"SELECT * FROM {ARCHIVE_SCHEMA}.{name}"  # noqa: S608
        for name in archived
    ]
    return "(" + " UNION ALL ".join(parts) + ")"


def _create(cursor, month: dt.date) -> str:
    name = partition_name(month)
    cursor.execute(
        f"CREATE TABLE {name} PARTITION OF {TABLE} "
        f"FOR VALUES FROM ('{_bound(month)}') TO ('{_bound(month_add(month, 1))}')"
    )
    return name


def partitions_ensure(start: dt.date, end: dt.date, using: str = "default") -> list[str]:
    """Create the monthly partitions covering [start, end) that do not exist yet (months
    already archived are left alone) and return their names; a no-op on a table that is
    not partitioned (SQLite). Rows that DEFAULT holds for those months are moved into
    them: DEFAULT is detached, a new one attached, its rows inserted through the parent
    (routed to the new partitions) and the old one dropped — one transaction, which
    holds an exclusive lock on the table while it runs."""
    if not is_partitioned(using):
        return []
    have = {p.month for p in partitions_list(using)}
    archived = {dt.datetime.strptime(n[-6:], "%Y%m").date() for n in archived_tables(using)}
    missing = [m for m in _months(start, end) if m not in have and m not in archived]
    if not missing:
        return []
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN SHARE ROW EXCLUSIVE MODE")
        ranges = " OR ".join(
            f"(occurred_at >= '{_bound(m)}' AND occurred_at < '{_bound(month_add(m, 1))}')"
            for m in missing
        )
        cursor.execute(f"SELECT EXISTS (SELECT 1 FROM {DEFAULT} WHERE {ranges})")  # noqa: S608
        if not cursor.fetchone()[0]:
            return [_create(cursor, m) for m in missing]
        old = f"{DEFAULT}_moving"
        cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {DEFAULT}")
        cursor.execute(f"ALTER TABLE {DEFAULT} RENAME TO {old}")
        cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")
        created = [_create(cursor, m) for m in missing]
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")  # noqa: S608
        # Deferred foreign-key checks of rows written earlier in this transaction (only
        # when called inside a larger one, as in tests) must run before their table goes.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"DROP TABLE {old}")
        return created


@dataclass(frozen=True)
class Archived:
    name: str
    month: dt.date
    rows: int
    file: str | None = None


def partitions_to_archive(before: dt.date, using: str = "default") -> list[Partition]:
    """The attached monthly partitions wholly before the month `before`, with row counts."""
    return [
        p
        for p in partitions_list(using, rows=True)
        if p.month is not None and p.month < month_start(before)
    ]


def default_rows_before(before: dt.date, using: str = "default") -> int:
    """Rows of the DEFAULT partition that occurred before `before` (they stay live)."""
    if not is_partitioned(using):
        return 0
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT count(*) FROM {DEFAULT} WHERE occurred_at < %s",  # noqa: S608
            [_bound(month_start(before))],
        )
        return cursor.fetchone()[0]


def partitions_archive(
    before: dt.date, *, archive_dir=None, using: str = "default"
) -> list[Archived]:
    """Detach every monthly partition wholly before `before`, move it to the schema
    usage_archive (append-only trigger included) and, with `archive_dir`, also write it
    as gzip-compressed COPY text (`<name>.tsv.gz`, with a header line). Each partition in
    a transaction of its own."""
    import gzip
    from pathlib import Path

    done = []
    conn = connections[using]
    for partition in partitions_to_archive(before, using):
        name, path = partition.name, None
        with transaction.atomic(using=using), conn.cursor() as cursor:
            cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {ARCHIVE_SCHEMA}")
            cursor.execute(f"ALTER TABLE {TABLE} DETACH PARTITION {name}")
            cursor.execute(f"ALTER TABLE {name} SET SCHEMA {ARCHIVE_SCHEMA}")
            archived = f"{ARCHIVE_SCHEMA}.{name}"
            cursor.execute(
                "SELECT 1 FROM pg_trigger WHERE tgrelid = %s::regclass AND tgname = %s",
                [archived, f"{TABLE}_append_only"],
            )
            if cursor.fetchone() is None:
                forward = immutable_trigger_sql(TABLE)[0]
                trigger = forward[forward.index("CREATE TRIGGER") :]
                cursor.execute(trigger.replace(f" ON {TABLE}\n", f" ON {archived}\n"))
            cursor.execute(f"SELECT count(*) FROM {archived}")  # noqa: S608
            rows = cursor.fetchone()[0]
            if archive_dir is not None:
                path = Path(archive_dir) / f"{name}.tsv.gz"
                path.parent.mkdir(parents=True, exist_ok=True)
                with gzip.open(path, "wb") as out:
                    sql = f"COPY {archived} TO STDOUT (FORMAT text, HEADER)"
                    with cursor.copy(sql) as copy:
                        for chunk in copy:
                            out.write(chunk)
        done.append(Archived(name, partition.month, rows, None if path is None else str(path)))
    return done


# -- converting the table (migration usage 0010) ---------------------------------------------


def _occupied_months(cursor, table: str) -> list[dt.date]:
    cursor.execute(
        f"SELECT DISTINCT date_trunc('month', occurred_at AT TIME ZONE 'UTC')::date "  # noqa: S608
        f"FROM {table}"
    )
    return sorted(r[0] for r in cursor.fetchall())


def table_rebuild(schema_editor, *, partitioned: bool) -> None:
    """Rebuild usage_usagerecord, rows included, as a partitioned table (monthly
    partitions for the default window and every month that has rows, plus DEFAULT;
    primary key (id, occurred_at)) or back as a plain one (primary key id). Columns,
    defaults, check constraints, foreign keys, indexes (as declared now, trigram ones
    included), the id sequence and the append-only trigger are carried over."""
    old = f"{TABLE}_old"
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        cursor.execute(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary",
            [TABLE],
        )
        indexes = [r[0] for r in cursor.fetchall()]
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        foreign_keys = cursor.fetchall()
        cursor.execute(f"SELECT COALESCE(max(id), 0) FROM {TABLE}")  # noqa: S608
        last_id = cursor.fetchone()[0]
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {old}")
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [old],
        )
        for (pkey,) in cursor.fetchall():  # its name is free for the new table's key
            cursor.execute(f"ALTER TABLE {old} RENAME CONSTRAINT {pkey} TO {old}_pkey")
        cursor.execute(f"DROP TRIGGER IF EXISTS {TABLE}_append_only ON {old}")
        # Columns, NOT NULL and check constraints; the id's default (its sequence) is
        # set below, once the old table and its sequence are gone.
        like = f"LIKE {old} INCLUDING CONSTRAINTS"
        if partitioned:
            cursor.execute(
                f"CREATE TABLE {TABLE} ({like}, "
                f"CONSTRAINT {TABLE}_pkey PRIMARY KEY (id, occurred_at)) "
                "PARTITION BY RANGE (occurred_at)"
            )
            cursor.execute(f"CREATE TABLE {DEFAULT} PARTITION OF {TABLE} DEFAULT")
            start, end = default_window()
            months = set(_months(start, end)) | set(_occupied_months(cursor, old))
            for month in sorted(months):
                _create(cursor, month)
        else:
            cursor.execute(
                f"CREATE TABLE {TABLE} ({like}, CONSTRAINT {TABLE}_pkey PRIMARY KEY (id))"
            )
        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {old}")  # noqa: S608
        # The column defaults copied by LIKE would point at the old table's sequence.
        cursor.execute(f"DROP TABLE {old}")
        cursor.execute(f"DROP SEQUENCE IF EXISTS {TABLE}_id_seq")
        cursor.execute(f"CREATE SEQUENCE {TABLE}_id_seq OWNED BY {TABLE}.id")
        cursor.execute(f"ALTER TABLE {TABLE} ALTER COLUMN id SET DEFAULT nextval('{TABLE}_id_seq')")
        if last_id:
            cursor.execute(f"SELECT setval('{TABLE}_id_seq', %s)", [last_id])
        for definition in indexes:
            cursor.execute(definition.replace(f" ON public.{old} ", f" ON public.{TABLE} "))
        for name, definition in foreign_keys:
            cursor.execute(f"ALTER TABLE {TABLE} ADD CONSTRAINT {name} {definition}")
        cursor.execute(f"ANALYZE {TABLE}")
    schema_editor.execute(immutable_trigger_sql(TABLE)[0])  # its %% are for params
