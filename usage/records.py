"""Writing usage records: one column spec, two writers.

`COLUMNS` lists every column a charged event fills, once, with where its value comes
from. The ORM writer (any database) builds model instances from it; the PostgreSQL
writer builds COPY lines (large batches) or INSERT rows (small ones) from it; the
records handed back after the transaction are built from it too. `writer_for` is the
one place that picks a writer (core.db.dialect); the parity tests run both.

Each record is prepared before the balances are locked (its id drawn from the table's
sequence up front on PostgreSQL, so nothing is read back) and completed with its split
under the locks (the columns of stage DRAWN)."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import connection
from django.db.models.base import ModelState
from django.utils import timezone

from core.db import POSTGRESQL
from credits.charging import Draw
from offices.models import Office
from usage.events import UsageEvent
from usage.models import Service, UsageRecord
from usage.rollups import usage_days_add, usage_days_add_sql

PREPARED, DRAWN = "prepared", "drawn"


@dataclass(slots=True)
class Charge:
    """One event on its way to becoming a usage record."""

    event: UsageEvent
    office: Office
    service: Service
    quantity: Decimal
    cost: Decimal
    period: dt.date
    draw: Draw | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """What every record of one batch shares."""

    company_id: int
    pooling_on: bool
    batch: uuid.UUID
    created_by_id: int | None
    created_at: dt.datetime


# COPY text format: backslash, tab, newline and carriage return are escaped; NUL cannot
# occur (validation refuses it).
COPY_NULL = "\\N"
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: str) -> str:
    return value.translate(COPY_ESCAPES)


def _copy_json(value) -> str:
    return json.dumps(value).translate(COPY_ESCAPES) if value else "{}"


def _copy_optional(value) -> str:
    return COPY_NULL if value is None else str(value)


def _copy_bool(value: bool) -> str:
    return "t" if value else "f"


def _copy_moment(value) -> str:
    return value.isoformat()


@dataclass(frozen=True, slots=True)
class Column:
    """One usage record column: its attname, its value for (charge, batch, pk), how COPY
    writes it, and whether it is known before the balances are locked."""

    name: str
    value: Callable[[Charge, Batch, int | None], Any]
    copy: Callable[[Any], str] = str
    stage: str = PREPARED
    sql_cast: str = ""


def _part(name: str) -> Column:
    return Column(name, lambda c, b, pk: c.draw.parts()[name], stage=DRAWN)


COLUMNS: tuple[Column, ...] = (
    Column("id", lambda c, b, pk: pk),
    Column("company_id", lambda c, b, pk: b.company_id),
    Column("office_id", lambda c, b, pk: c.office.id),
    Column("service_id", lambda c, b, pk: c.service.id),
    Column("external_id", lambda c, b, pk: c.event.external_id, _copy_text),
    Column("credit_kind", lambda c, b, pk: c.service.credit_kind),
    Column("quantity", lambda c, b, pk: c.quantity),
    Column("rate", lambda c, b, pk: c.service.rate),
    Column("cost", lambda c, b, pk: c.cost),
    Column("occurred_at", lambda c, b, pk: c.event.occurred_at, _copy_moment),
    Column("period", lambda c, b, pk: c.period, _copy_moment),
    Column("pooling_on", lambda c, b, pk: b.pooling_on, _copy_bool),
    Column("user_label", lambda c, b, pk: c.event.user_label, _copy_text),
    Column("phone_number", lambda c, b, pk: c.event.phone_number, _copy_text),
    Column("metadata", lambda c, b, pk: c.event.metadata, _copy_json, sql_cast="::jsonb"),
    Column("batch", lambda c, b, pk: b.batch),
    Column("created_by_id", lambda c, b, pk: b.created_by_id, _copy_optional),
    Column("created_at", lambda c, b, pk: b.created_at, _copy_moment),
    _part("allowance_part"),
    _part("pool_part"),
    _part("wallet_part"),
    _part("ai_part"),
    _part("uncovered"),
    Column("funding_account_id", lambda c, b, pk: c.draw.account.id, stage=DRAWN),
    Column("funding_balance_after", lambda c, b, pk: c.draw.balance_after, stage=DRAWN),
)
NAMES = tuple(c.name for c in COLUMNS)
PREPARED_COLUMNS = tuple(c for c in COLUMNS if c.stage == PREPARED)
DRAWN_COLUMNS = tuple(c for c in COLUMNS if c.stage == DRAWN)
# Every prepared column comes before every drawn one: a COPY line is a prefix + a tail.
assert COLUMNS == PREPARED_COLUMNS + DRAWN_COLUMNS


def _values(columns, charge: Charge, batch: Batch, pk) -> list:
    return [column.value(charge, batch, pk) for column in columns]


def _copy_text_of(columns, charge: Charge, batch: Batch, pk) -> str:
    """`columns` of one record as (part of) a line of COPY text."""
    return "\t".join([c.copy(c.value(charge, batch, pk)) for c in columns])


def _sql_params_of(columns, charge: Charge, batch: Batch, pk) -> list:
    """`columns` of one record as INSERT parameters (JSON as text, cast in the SQL)."""
    values = _values(columns, charge, batch, pk)
    return [
        json.dumps(v) if c.sql_cast == "::jsonb" else v
        for c, v in zip(columns, values, strict=True)
    ]


def _related(writer, charge: Charge) -> dict:
    return {
        "company": writer.company, "office": charge.office, "service": charge.service,
        "funding_account": charge.draw.account, "created_by": writer.actor,
    }  # fmt: skip


class _Writer:
    """What both writers share: the batch, its charges and the records handed back."""

    def __init__(self, *, batch: Batch, charges: list[Charge], company, actor):
        self.batch, self.charges, self.company, self.actor = batch, charges, company, actor
        self.ids: list[int | None] = [None] * len(charges)

    def records(self) -> dict[str, UsageRecord]:
        """The saved records as model instances, built from the column spec (as Django
        unpickles them: no __init__, related objects attached)."""
        alias = connection.alias
        records = {}
        for pk, c in zip(self.ids, self.charges, strict=True):
            state = ModelState()
            state.adding, state.db = False, alias
            state.fields_cache = _related(self, c)
            values = dict(zip(NAMES, _values(COLUMNS, c, self.batch, pk), strict=True))
            values["_state"] = state
            record = UsageRecord.__new__(UsageRecord)
            record.__dict__ = values
            records[c.event.external_id] = record
        return records


class OrmWriter(_Writer):
    """Records written through the ORM, day rollups summed in Python."""

    def write(self) -> None:
        self.built = []
        for c in self.charges:
            values = dict(zip(NAMES[1:], _values(COLUMNS[1:], c, self.batch, None), strict=True))
            record = UsageRecord(**values)
            # The related objects the caller already holds: no query per record later.
            record._state.fields_cache.update(_related(self, c))
            self.built.append(record)
        UsageRecord.objects.bulk_create(self.built)
        self.ids = [r.pk for r in self.built]
        usage_days_add(self.built, self.company.tz)

    def records(self) -> dict[str, UsageRecord]:
        # The saved instances themselves: created_at was set by the database write.
        return {r.external_id: r for r in self.built}


COPY_MIN_ROWS = 50


class SqlWriter(_Writer):
    """Records written with hand-written SQL on PostgreSQL: COPY for a batch, one INSERT
    (with the day rollups in the same statement) for a few events. Model instances cost
    more to build than the rows cost to write (docs/scaling.md)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        table = UsageRecord._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(s) FROM pg_get_serial_sequence(%s, 'id') AS s, "
                "generate_series(1, %s)",
                [table, len(self.charges)],
            )
            self.ids = [row[0] for row in cursor.fetchall()]
        self.copy = len(self.charges) >= COPY_MIN_ROWS
        shape = _copy_text_of if self.copy else _sql_params_of
        self.prepared = [
            shape(PREPARED_COLUMNS, c, self.batch, pk)
            for pk, c in zip(self.ids, self.charges, strict=True)
        ]

    def write(self) -> None:
        table = UsageRecord._meta.db_table
        columns = ", ".join(NAMES)
        tz = str(self.company.tz)
        batch = self.batch
        if not self.copy:
            row = "({})".format(", ".join(f"%s{c.sql_cast}" for c in COLUMNS))
            params = []
            for prepared, c in zip(self.prepared, self.charges, strict=True):
                params += prepared
                params += _sql_params_of(DRAWN_COLUMNS, c, batch, None)
            # The records and their day rollups in one statement.
            sql = (
                f"WITH new AS (INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
                + ", ".join([row] * len(self.prepared))
                + " RETURNING *) "
                + _days_sql("FROM new r")
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [*params, tz, tz])
            return
        lines = [
            f"{prepared}\t{_copy_text_of(DRAWN_COLUMNS, c, batch, None)}\n"
            for prepared, c in zip(self.prepared, self.charges, strict=True)
        ]
        # Errors wrapped like the ORM's, so a unique-key race is retried (retry_on_conflict).
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write("".join(lines))
            cursor.execute(_days_sql(f"FROM {table} r WHERE r.batch = %s"), [tz, tz, batch.batch])


def _days_sql(source: str) -> str:
    """The day rollups of the records `source` (over alias r): parameters tz, tz, then
    those of `source`."""
    return usage_days_add_sql(
        day="(r.occurred_at AT TIME ZONE %s::text)::date", tz="%s::text", source=source
    )


WRITERS = {POSTGRESQL: SqlWriter}


def writer_for(name: str) -> type[_Writer]:
    """The records writer of a charging writer name (core.db.dialect)."""
    return WRITERS.get(name, OrmWriter)


def batch_for(*, company, batch: uuid.UUID, actor) -> Batch:
    return Batch(
        company_id=company.pk,
        pooling_on=company.pooling_enabled,
        batch=batch,
        created_by_id=None if actor is None else actor.pk,
        created_at=timezone.now(),
    )
