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
from operator import attrgetter
from typing import Any

from django.db import connection
from django.db.models.base import ModelState
from django.utils import timezone

from core.db import POSTGRESQL
from credits.charging import PARTS, Draw
from offices.models import Office
from usage.events import UsageEvent
from usage.models import Service, UsageKey, UsageRecord
from usage.rollups import usage_days_add, usage_days_add_sql

PREPARED, DRAWN = "prepared", "drawn"


@dataclass(frozen=True, slots=True)
class Batch:
    """What every record of one batch shares."""

    company_id: int
    pooling_on: bool
    batch: uuid.UUID
    created_by_id: int | None
    created_at: dt.datetime


@dataclass(slots=True)
class Charge:
    """One event on its way to becoming a usage record: the row the columns read."""

    event: UsageEvent
    office: Office
    service: Service
    quantity: Decimal
    cost: Decimal
    period: dt.date
    batch: Batch | None = None
    pk: int | None = None  # drawn from the sequence up front on PostgreSQL
    draw: Draw | None = None


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


@dataclass(frozen=True, slots=True)
class Column:
    """One usage record column: its attname, where a Charge holds its value (a dotted
    path), how COPY writes it when str() would not do, and whether it is known before
    the balances are locked."""

    name: str
    source: str
    copy: Callable[[Any], str] | None = None  # None: str(value)
    stage: str = PREPARED
    sql_cast: str = ""


COLUMNS: tuple[Column, ...] = (
    Column("id", "pk"),
    Column("company_id", "batch.company_id"),
    Column("office_id", "office.id"),
    Column("service_id", "service.id"),
    Column("external_id", "event.external_id", _copy_text),
    Column("credit_kind", "service.credit_kind"),
    Column("quantity", "quantity"),
    Column("rate", "service.rate"),
    Column("cost", "cost"),
    Column("occurred_at", "event.occurred_at"),  # str(): ISO 8601 with a space
    Column("period", "period"),
    Column("pooling_on", "batch.pooling_on"),  # str(): True / False
    Column("user_label", "event.user_label", _copy_text),
    Column("phone_number", "event.phone_number", _copy_text),
    Column("metadata", "event.metadata", _copy_json, sql_cast="::jsonb"),
    Column("batch", "batch.batch"),
    Column("created_by_id", "batch.created_by_id", _copy_optional),
    Column("created_at", "batch.created_at"),
    *(Column(part, f"draw.{part}", stage=DRAWN) for part in PARTS),
    Column("funding_account_id", "draw.account.id", stage=DRAWN),
    Column("funding_balance_after", "draw.balance_after", stage=DRAWN),
)
NAMES = tuple(c.name for c in COLUMNS)
PREPARED_COLUMNS = tuple(c for c in COLUMNS if c.stage == PREPARED)
DRAWN_COLUMNS = tuple(c for c in COLUMNS if c.stage == DRAWN)
# Every prepared column comes before every drawn one: a COPY line is a prefix + a tail.
assert COLUMNS == PREPARED_COLUMNS + DRAWN_COLUMNS


class _Shape:
    """How a run of columns is read from a Charge (one C-level attrgetter call) and
    written as COPY text or INSERT parameters."""

    def __init__(self, columns: tuple[Column, ...]):
        self.columns = columns
        self.values = attrgetter(*(c.source for c in columns))
        self.copy_special = [(i, c.copy) for i, c in enumerate(columns) if c.copy]
        self.json = [i for i, c in enumerate(columns) if c.sql_cast == "::jsonb"]

    def copy_text(self, charge: Charge) -> str:
        values = self.values(charge)
        cells = list(map(str, values))
        for i, fmt in self.copy_special:
            cells[i] = fmt(values[i])
        return "\t".join(cells)

    def copy_maker(self, batch: Batch) -> Callable[[Charge], str]:
        """`copy_text` for the charges of one batch, faster: the columns every record of
        the batch shares are written once into a template, the rest formatted by it."""
        shared = [c.source.startswith("batch.") for c in self.columns]
        own = [c for c, common in zip(self.columns, shared, strict=True) if not common]
        parts = []
        for column, common in zip(self.columns, shared, strict=True):
            if common:
                value = attrgetter(column.source.removeprefix("batch."))(batch)
                text = (column.copy or str)(value)
                parts.append(text.replace("{", "{{").replace("}", "}}"))
            else:
                parts.append("{}")
        template = "\t".join(parts).format
        assert len(own) > 1, "attrgetter of one path returns the value, not a tuple"
        values = attrgetter(*(c.source for c in own))
        special = [(i, c.copy) for i, c in enumerate(own) if c.copy]

        def line(charge: Charge) -> str:
            cells = values(charge)
            if special:
                cells = list(cells)
                for i, fmt in special:
                    cells[i] = fmt(cells[i])
            return template(*cells)  # format() writes str() of each cell

        return line

    def sql_params(self, charge: Charge) -> list:
        params = list(self.values(charge))
        for i in self.json:
            params[i] = json.dumps(params[i])
        return params


ALL, PREPARED_SHAPE, DRAWN_SHAPE = _Shape(COLUMNS), _Shape(PREPARED_COLUMNS), _Shape(DRAWN_COLUMNS)


def _related(writer, charge: Charge) -> dict:
    return {
        "company": writer.company, "office": charge.office, "service": charge.service,
        "funding_account": charge.draw.account, "created_by": writer.actor,
    }  # fmt: skip


class _Writer:
    """What both writers share: the batch, its charges and the records handed back."""

    def __init__(self, *, batch: Batch, charges: list[Charge], company, actor):
        self.batch, self.charges, self.company, self.actor = batch, charges, company, actor
        for c in charges:
            c.batch = batch

    def records(self) -> dict[str, UsageRecord]:
        """The saved records as model instances, built from the column spec (as Django
        unpickles them: no __init__, related objects attached)."""
        alias = connection.alias
        records = {}
        for c in self.charges:
            state = ModelState()
            state.adding, state.db = False, alias
            state.fields_cache = _related(self, c)
            values = dict(zip(NAMES, ALL.values(c), strict=True))
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
            values = dict(zip(NAMES, ALL.values(c), strict=True))
            del values["id"]  # the database gives it
            record = UsageRecord(**values)
            # The related objects the caller already holds: no query per record later.
            record._state.fields_cache.update(_related(self, c))
            self.built.append(record)
        UsageRecord.objects.bulk_create(self.built)
        for c, record in zip(self.charges, self.built, strict=True):
            c.pk = record.pk
        # The guard of §6.4: a racing batch with one of these ids fails here.
        UsageKey.objects.bulk_create(
            UsageKey(
                company_id=r.company_id,
                external_id=r.external_id,
                record_id=r.pk,
                occurred_at=r.occurred_at,
            )
            for r in self.built
        )
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
            for c, row in zip(self.charges, cursor.fetchall(), strict=True):
                c.pk = row[0]
        self.copy = len(self.charges) >= COPY_MIN_ROWS
        prepared = PREPARED_SHAPE
        shape = prepared.copy_maker(self.batch) if self.copy else prepared.sql_params
        self.prepared = [shape(c) for c in self.charges]
        if self.copy:
            self._keys_write()

    def _keys_write(self) -> None:
        """A batch's guard rows (UsageKey), written before the balances are locked: they
        need only the ids drawn above, and every statement run before the locks shortens
        the time other batches of the company wait for its pool. A racing batch with one
        of these ids makes this COPY wait for it, then fail on the unique key (and the
        retry finds the id charged). Sorted by id, so two batches with several ids in
        common meet them in one order and cannot deadlock."""
        company = self.batch.company_id
        lines = sorted(
            (c.event.external_id, f"{company}\t{_copy_text(c.event.external_id)}\t{c.pk}\t"
             f"{c.event.occurred_at}\n")
            for c in self.charges
        )  # fmt: skip
        sql = f"COPY {UsageKey._meta.db_table} ({KEY_NAMES}) FROM STDIN"
        with (
            connection.cursor() as cursor,
            connection.wrap_database_errors,
            cursor.copy(sql) as copy,
        ):
            copy.write("".join(line for _, line in lines))

    def write(self) -> None:
        table = UsageRecord._meta.db_table
        columns = ", ".join(NAMES)
        tz = str(self.company.tz)
        if not self.copy:
            row = "({})".format(", ".join(f"%s{c.sql_cast}" for c in COLUMNS))
            params = []
            for prepared, c in zip(self.prepared, self.charges, strict=True):
                params += prepared
                params += DRAWN_SHAPE.sql_params(c)
            # The records, their guard rows and day rollups in one statement.
            sql = (
                f"WITH new AS (INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
                + ", ".join([row] * len(self.prepared))
                + f" RETURNING *), {_KEYS_SQL} "
                + _days_sql("FROM new r")
            )
            with connection.cursor() as cursor:
                cursor.execute(sql, [*params, tz, tz])
            return
        tail = DRAWN_SHAPE.copy_maker(self.batch)
        lines = [
            f"{prepared}\t{tail(c)}\n"
            for prepared, c in zip(self.prepared, self.charges, strict=True)
        ]
        # Errors wrapped like the ORM's, so a unique-key race is retried (retry_on_conflict).
        with connection.cursor() as cursor, connection.wrap_database_errors:
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                copy.write("".join(lines))
            # The batch's day rollups, from its rows (found by the batch's index in the
            # months the batch spans).
            moments = [c.event.occurred_at for c in self.charges]
            sql = (
                f"WITH new AS (SELECT * FROM {table} WHERE batch = %s "  # noqa: S608
                "AND occurred_at BETWEEN %s AND %s) " + _days_sql("FROM new r")
            )
            cursor.execute(sql, [self.batch.batch, min(moments), max(moments), tz, tz])


# The guard rows (UsageKey) of the records of CTE `new` (a few events: one statement);
# a racing batch with one of these ids fails on its unique key (and the retry finds the
# id charged).
KEY_NAMES = "company_id, external_id, record_id, occurred_at"
_KEYS_SQL = (
    f"keys AS (INSERT INTO {UsageKey._meta.db_table} ({KEY_NAMES}) "  # noqa: S608
    "SELECT company_id, external_id, id, occurred_at FROM new)"
)


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
