"""`manage.py check_ledger`: each app's checks of SPEC §6 on the live database.

Every check is one set-based query that returns only the rows breaking a rule, so the
run stays fast with millions of usage records: Python only formats what SQL found.
Equalities are written as `ABS(a - b) > 0.00005`: exact on PostgreSQL's numeric, and on
SQLite (which stores decimals as floats) still exact for 4-place amounts.

Each app that owns tables keeps its checks in its own `checks.py`, as a `Checks` class
(a `Checker`); `ledger_check` runs them all, in the order of INSTALLED_APPS."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from importlib import import_module
from importlib.util import find_spec

from django.apps import apps
from django.db import connection

from core.money import q

LISTED_PER_CHECK = 20  # a broken chain can break many rows; list the first ones


def _ne(a: str, b: str) -> str:
    return f"ABS(({a}) - ({b})) > 0.00005"


def _amount(value) -> Decimal:
    return q(Decimal(str(value if value is not None else 0)))


def _amount(value) -> Decimal:
    return q(Decimal(str(value if value is not None else 0)))


@dataclass
class LedgerReport:
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


class Checker:
    """The checks of one app: `counts` says what it looked at, `checks` what it runs."""

    counts: dict[str, str] = {}  # label → table
    append_only: list[str] = []  # tables whose append-only trigger must be in place
    checks: tuple[str, ...] = ()  # method names, run in order

    def __init__(self, company_ids, report: LedgerReport):
        self.company_ids = None if company_ids is None else sorted(set(company_ids))
        self.report = report

    # -- helpers ---------------------------------------------------------------------
    def scope(self, column: str) -> tuple[str, list]:
        """`AND column IN (...)` restricting a query to the companies asked for."""
        if self.company_ids is None:
            return "", []
        if not self.company_ids:
            return " AND 1 = 0", []
        marks = ", ".join(["%s"] * len(self.company_ids))
        return f" AND {column} IN ({marks})", list(self.company_ids)

    def rows(self, sql: str, params: list) -> list[tuple]:
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            return cursor.fetchall()

    def violations(self, sql: str, params: list, describe) -> None:
        """Run a query returning offending rows; list the first ones, count the rest."""
        found = self.rows(f"{sql} LIMIT {LISTED_PER_CHECK + 1}", params)
        for row in found[:LISTED_PER_CHECK]:
            self.report.violations.append(describe(*row))
        if len(found) > LISTED_PER_CHECK:
            self.report.violations.append(
                f"… and more rows breaking the same rule as: {self.report.violations[-1]}"
            )

    def count(self, table: str, company_column: str = "company_id") -> int:
        where, params = self.scope(company_column)
        return self.rows(f"SELECT COUNT(*) FROM {table} WHERE 1 = 1{where}", params)[0][0]  # noqa: S608

    # -- §6.8 append-only triggers ---------------------------------------------------------
    def triggers(self) -> None:
        if connection.vendor != "postgresql" or not self.append_only:
            return
        found = dict(
            self.rows(
                """
                SELECT c.relname, t.tgenabled FROM pg_trigger t
                JOIN pg_class c ON c.oid = t.tgrelid
                WHERE c.oid = ANY(%s::text[]::regclass[])
                  AND t.tgname = c.relname || '_append_only'
                  AND t.tgtype & 8 = 8 AND t.tgtype & 16 = 16  -- fires on DELETE and UPDATE
                """,
                [self.append_only],
            )
        )
        for table in self.append_only:
            state = found.get(table)
            if state is None:
                self.report.violations.append(
                    f"§6.8 table {table}: the append-only trigger is missing"
                )
            elif state not in ("O", "A"):
                self.report.violations.append(
                    f"§6.8 table {table}: the append-only trigger is disabled"
                )

    def run(self) -> None:
        for label, (table, column) in self.counts.items():
            self.report.counts[label] = self.count(table, column)
        for name in self.checks:
            getattr(self, name)()
        self.triggers()


def app_checkers() -> list[type[Checker]]:
    """Each installed app's `checks.Checks`, in the order of INSTALLED_APPS."""
    found = []
    for config in apps.get_app_configs():
        name = f"{config.name}.checks"
        if find_spec(name) is not None:
            checks = getattr(import_module(name), "Checks", None)
            if checks is not None:
                found.append(checks)
    return found


def ledger_check(company_ids=None) -> LedgerReport:
    """Counts of what was checked and every breach of SPEC §6 found (all companies when
    `company_ids` is None)."""
    report = LedgerReport()
    for checks in app_checkers():
        checks(company_ids, report).run()
    return report


def ledger_violations(company_ids=None) -> list[str]:
    """Every breach of the SPEC §6 invariants, one line each; empty when all hold."""
    return ledger_check(company_ids).violations
