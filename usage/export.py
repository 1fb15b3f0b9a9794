"""CSV export of a filtered usage history: every row, streamed, never held in memory.

Two ways to the same bytes. On PostgreSQL the server writes the CSV itself
(COPY (SELECT …) TO STDOUT, FORMAT csv): the filtered, scoped query of the history with
every cell already formatted in SQL, streamed row by row. Elsewhere (SQLite) the rows are
formatted here, in Python. tests/portal/test_export_paths.py proves both give the same
bytes for the same data and filters.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from contextlib import nullcontext

from django.core.exceptions import EmptyResultSet
from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.csv import FORMULA_STARTS, neutralise
from usage.models import UsageRecord

CHUNK_SIZE = 2000
COPY_ROWS_PER_CHUNK = 1000  # about 150 kB per chunk of the response
ORDER = ("-occurred_at", "-id")  # the history's order: newest first
HEADER = [
    "time",
    "office",
    "service",
    "credit_kind",
    "user",
    "number",
    "quantity",
    "unit",
    "rate",
    "cost",
    "allowance",
    "pool",
    "wallet",
    "ai_credits",
    "uncovered",
    "pooling",
    "event_id",
    "balance_after",  # of the balance that funded the event, right after it
]


class _Echo:
    """A file-like object whose write() hands the line back to the csv writer's caller."""

    def write(self, value: str) -> str:
        return value


def usage_csv_rows(queryset: QuerySet[UsageRecord], tz) -> Iterator[str | bytes]:
    """The header and every row of `queryset` as CSV lines (str) or chunks of them (bytes)."""
    alias = queryset.db  # chosen while streaming, as a query would choose it
    if connections[alias].vendor == "postgresql" and getattr(tz, "key", None):
        yield from usage_csv_copy(queryset, tz, alias)
    else:
        yield from usage_csv_python(queryset, tz)


def usage_csv_python(queryset: QuerySet[UsageRecord], tz) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    rows = (
        queryset.select_related("office", "service")
        .order_by(*ORDER)
        .iterator(chunk_size=CHUNK_SIZE)
    )
    for r in rows:
        yield writer.writerow(
            [
                timezone.localtime(r.occurred_at, tz).isoformat(),
                neutralise(r.office.name),
                neutralise(r.service.code),
                r.credit_kind,
                neutralise(r.user_label),
                neutralise(r.phone_number),
                r.quantity,
                r.service.unit,
                r.rate,
                r.cost,
                r.allowance_part,
                r.pool_part,
                r.wallet_part,
                r.ai_part,
                r.uncovered,
                "on" if r.pooling_on else "off",
                neutralise(r.external_id),
                r.funding_balance_after,
            ]
        )


# --- PostgreSQL: the server formats and writes the CSV --------------------------------

# The columns the filtered queryset selects, named u.<name> in the COPY query below.
COPY_SOURCE = {
    "id": "id",
    "occurred_at": "occurred_at",
    "office": "office__name",
    "service": "service__code",
    "credit_kind": "credit_kind",
    "user_label": "user_label",
    "phone_number": "phone_number",
    "quantity": "quantity",
    "unit": "service__unit",
    "rate": "rate",
    "cost": "cost",
    "allowance_part": "allowance_part",
    "pool_part": "pool_part",
    "wallet_part": "wallet_part",
    "ai_part": "ai_part",
    "uncovered": "uncovered",
    "pooling_on": "pooling_on",
    "external_id": "external_id",
    "funding_balance_after": "funding_balance_after",
}


def _text_sql(column: str) -> str:
    # COPY writes an empty string as "" (to tell it from NULL); csv.writer writes nothing.
    return f"NULLIF({column}, '')"


FORMULA_CODE_POINTS = ", ".join(str(ord(char)) for char in FORMULA_STARTS)


def _safe_sql(column: str) -> str:
    """core.csv.neutralise() in SQL: a leading ' before a first character of FORMULA_STARTS."""
    return (
        f"CASE WHEN ascii({column}) IN ({FORMULA_CODE_POINTS})"
        f" THEN '''' || {column} ELSE {_text_sql(column)} END"
    )


# datetime.isoformat() of the time in the company's zone (the session's TimeZone while
# the COPY runs): microseconds only when there are any, the UTC offset as ±HH:MM. Zones
# have had whole-minute offsets since 1972, and ingestion takes no times before 2000.
ISO_TIME_SQL = (
    "replace(to_char(u.occurred_at, 'YYYY-MM-DD\"T\"HH24:MI:SS.USTZH:TZM'), '.000000', '')"
)

CELLS_SQL = [
    ISO_TIME_SQL,
    _safe_sql("u.office"),
    _safe_sql("u.service"),
    _text_sql("u.credit_kind"),
    _safe_sql("u.user_label"),
    _safe_sql("u.phone_number"),
    "u.quantity::text",
    _text_sql("u.unit"),
    "u.rate::text",
    "u.cost::text",
    "u.allowance_part::text",
    "u.pool_part::text",
    "u.wallet_part::text",
    "u.ai_part::text",
    "u.uncovered::text",
    "CASE WHEN u.pooling_on THEN 'on' ELSE 'off' END",
    _safe_sql("u.external_id"),
    "u.funding_balance_after::text",
]

COPY_SQL = (
    "COPY (SELECT {cells} FROM ({source}) AS u({names})"
    " ORDER BY u.occurred_at DESC, u.id DESC) TO STDOUT WITH (FORMAT csv)"
)
SET_ZONE_SQL = "SELECT set_config('TimeZone', %s, true)"  # until the transaction ends


def usage_csv_copy_sql(queryset: QuerySet[UsageRecord], alias: str) -> tuple[str, list]:
    """The COPY statement and its parameters; raises EmptyResultSet for a set that
    cannot have rows."""
    source = queryset.order_by().values_list(*COPY_SOURCE.values())
    sql, params = source.query.get_compiler(using=alias).as_sql()
    statement = COPY_SQL.format(
        cells=", ".join(CELLS_SQL), source=sql, names=", ".join(COPY_SOURCE)
    )
    return statement, list(params)


def usage_csv_copy(queryset: QuerySet[UsageRecord], tz, alias: str) -> Iterator[bytes]:
    """The CSV written by PostgreSQL, in chunks of rows. Runs while the response streams,
    on this thread's connection, in a transaction of its own that holds only the COPY
    (read-only; committed at the end, rolled back when the client goes away, which also
    cancels the COPY). The company's time zone is the session's for that transaction
    only (set_config local: safe behind a transaction-mode connection pooler)."""
    header = csv.writer(_Echo()).writerow(HEADER).encode()
    try:
        statement, params = usage_csv_copy_sql(queryset, alias)
    except EmptyResultSet:
        yield header
        return
    connection = connections[alias]
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        session_zone = cursor.connection.info.parameter_status("TimeZone") or "UTC"
        cursor.execute(SET_ZONE_SQL, [tz.key])
        logged = cursor.debug_sql(statement, params) if connection.queries_logged else None
        with (
            logged or nullcontext(),
            connection.wrap_database_errors,
            cursor.cursor.copy(statement, params) as copy,
        ):
            yield header
            # libpq hands over one row per read, ending in \n; csv.writer ends rows
            # with \r\n. A newline inside a cell is quoted, and left as it is.
            rows = []
            for row in copy:
                rows.append(row[:-1])
                if len(rows) == COPY_ROWS_PER_CHUNK:
                    rows.append(b"")
                    yield b"\r\n".join(rows)
                    rows = []
            if rows:
                rows.append(b"")
                yield b"\r\n".join(rows)
        # Within an enclosing transaction the setting would outlive this one: put it back.
        cursor.execute(SET_ZONE_SQL, [session_zone])
