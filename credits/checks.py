"""Verify the invariants of SPEC §6 on the live database (`manage.py check_ledger`).

Every check is one set-based query that returns only the rows breaking a rule, so the
run stays fast with millions of usage records: Python only formats what SQL found.
Equalities are written as `ABS(a - b) > 0.00005`: exact on PostgreSQL's numeric, and on
SQLite (which stores decimals as floats) still exact for 4-place amounts.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection

from core.money import q
from credits.models import Account, Allowance, LedgerEntry, PoolingChange
from offices.models import Company, Office
from usage.models import UsageDay, UsageRecord
from usage.rollups import SUMMED, funded_sql

APPEND_ONLY_TABLES = [
    LedgerEntry._meta.db_table,
    PoolingChange._meta.db_table,
    UsageRecord._meta.db_table,
]
LISTED_PER_CHECK = 20  # a broken chain can break many rows; list the first ones

T = {
    "company": Company._meta.db_table,
    "office": Office._meta.db_table,
    "account": Account._meta.db_table,
    "entry": LedgerEntry._meta.db_table,
    "allowance": Allowance._meta.db_table,
    "change": PoolingChange._meta.db_table,
    "record": UsageRecord._meta.db_table,
    "day": UsageDay._meta.db_table,
}


def _ne(a: str, b: str) -> str:
    return f"ABS(({a}) - ({b})) > 0.00005"


def _amount(value) -> Decimal:
    return q(Decimal(str(value if value is not None else 0)))


@dataclass
class LedgerReport:
    counts: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)


class _Checker:
    def __init__(self, company_ids):
        self.company_ids = None if company_ids is None else sorted(set(company_ids))
        self.report = LedgerReport()

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

    # -- §6.1 balances -----------------------------------------------------------------
    def accounts(self) -> None:
        where, params = self.scope("a.company_id")
        sql = f"""
            SELECT a.id, c.slug, a.kind, o.slug, a.balance, s.total, s.entries, le.balance_after
            FROM {T["account"]} a
            JOIN {T["company"]} c ON c.id = a.company_id
            LEFT JOIN {T["office"]} o ON o.id = a.office_id
            LEFT JOIN (
                SELECT account_id, SUM(amount) AS total, COUNT(*) AS entries, MAX(id) AS last_id
                FROM {T["entry"]} GROUP BY account_id
            ) s ON s.account_id = a.id
            LEFT JOIN {T["entry"]} le ON le.id = s.last_id
            WHERE (a.balance < 0
                   OR {_ne("a.balance", "COALESCE(s.total, 0)")}
                   OR (le.id IS NOT NULL AND {_ne("le.balance_after", "a.balance")}))
                  {where}
            ORDER BY a.id
        """  # noqa: S608

        def describe(pk, company, kind, office, balance, total, entries, last_after):
            label = f"account {pk} ({company} {kind}{' ' + office if office else ''})"
            balance = _amount(balance)
            problems = []
            if balance < 0:
                problems.append(f"balance {balance} is negative")
            if balance != _amount(total):
                problems.append(
                    f"balance {balance} ≠ sum of its {entries or 0} ledger entries {_amount(total)}"
                )
            if last_after is not None and _amount(last_after) != balance:
                problems.append(f"last entry's balance_after {_amount(last_after)} ≠ balance")
            return f"§6.1 {label}: " + "; ".join(problems)

        self.violations(sql, params, describe)

    def entry_chains(self) -> None:
        where, params = self.scope("e.company_id")
        # Entries of one account are written under that account's row lock, so id order is
        # the order in which the balance changed.
        sql = f"""
            SELECT t.id, t.account_id, t.balance_after, t.running, t.wrong_company FROM (
                SELECT e.id, e.account_id, e.balance_after,
                       SUM(e.amount) OVER (
                           PARTITION BY e.account_id ORDER BY e.id
                           ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
                       ) AS running,
                       CASE WHEN a.company_id <> e.company_id THEN 1 ELSE 0 END AS wrong_company
                FROM {T["entry"]} e JOIN {T["account"]} a ON a.id = e.account_id
                WHERE 1 = 1{where}
            ) t
            WHERE t.balance_after < 0 OR {_ne("t.balance_after", "t.running")}
                  OR t.wrong_company = 1
            ORDER BY t.id
        """  # noqa: S608

        def describe(pk, account_id, balance_after, running, wrong_company):
            if wrong_company:
                return f"§6.1 ledger entry {pk}: its company is not its account's company"
            return (
                f"§6.1 ledger entry {pk} of account {account_id}: balance_after "
                f"{_amount(balance_after)} ≠ running sum of the account's entries "
                f"{_amount(running)}"
            )

        self.violations(sql, params, describe)

    # -- §6.2, §6.6, §6.7 per usage record -------------------------------------------------
    def records(self) -> None:
        where, params = self.scope("r.company_id")
        parts = "r.allowance_part + r.pool_part + r.wallet_part + r.ai_part + r.uncovered"
        if connection.vendor == "postgresql":
            # numeric ROUND rounds half away from zero, i.e. half-up for these amounts.
            misrated = "ROUND(r.quantity * r.rate, 4) <> r.cost"
        else:
            # SQLite holds floats: redo the half-up rounding exactly on ten-thousandths.
            misrated = (
                "(CAST(ROUND(r.quantity * 10000) AS INTEGER) * CAST(ROUND(r.rate * 10000) AS"
                " INTEGER) + 5000) / 10000 <> CAST(ROUND(r.cost * 10000) AS INTEGER)"
            )
        rules = [  # (invariant, what is wrong, SQL condition)
            ("§6.2", "its parts do not add up to its cost", _ne("r.cost", parts)),
            (
                "§6.2",
                "a part is negative",
                "r.allowance_part < 0 OR r.pool_part < 0 OR r.wallet_part < 0"
                " OR r.ai_part < 0 OR r.uncovered < 0 OR r.cost < 0 OR r.quantity <= 0",
            ),
            ("§6.2", "cost ≠ quantity × rate rounded half-up to 4 places", misrated),
            (
                "§6.6",
                "AI agent usage drew the pool or a wallet, or is not funded by the AI account",
                "r.credit_kind = 'ai_agent' AND (r.pool_part <> 0 OR r.wallet_part <> 0"
                " OR COALESCE(fa.kind, '') <> 'ai_agent')",
            ),
            (
                "§6.6",
                "standard usage drew AI agent credits",
                "r.credit_kind = 'standard' AND (r.ai_part <> 0 OR fa.kind = 'ai_agent')",
            ),
            (
                "§6.7",
                "charged with pooling on but drew a wallet or is not funded by the pool",
                "r.credit_kind = 'standard' AND r.pooling_on"
                " AND (r.wallet_part <> 0 OR COALESCE(fa.kind, '') <> 'pool')",
            ),
            (
                "§6.7",
                "charged with pooling off but drew the pool or another office's wallet",
                "r.credit_kind = 'standard' AND NOT r.pooling_on AND (r.pool_part <> 0"
                " OR COALESCE(fa.kind, '') <> 'wallet' OR fa.office_id <> r.office_id)",
            ),
            (
                "§6.2",
                "its office or funding account belongs to another company",
                "o.company_id <> r.company_id OR fa.company_id <> r.company_id",
            ),
        ]
        flags = ", ".join(f"CASE WHEN {cond} THEN 1 ELSE 0 END" for _, _, cond in rules)
        any_rule = " OR ".join(f"({cond})" for _, _, cond in rules)
        sql = f"""
            SELECT r.id, c.slug, r.external_id, {flags}
            FROM {T["record"]} r
            JOIN {T["company"]} c ON c.id = r.company_id
            JOIN {T["office"]} o ON o.id = r.office_id
            LEFT JOIN {T["account"]} fa ON fa.id = r.funding_account_id
            WHERE ({any_rule}){where}
            ORDER BY r.id
        """  # noqa: S608

        def describe(pk, company, external_id, *hits):
            broken = [rule for rule, hit in zip(rules, hits, strict=True) if hit]
            tags = ",".join(dict.fromkeys(tag for tag, _, _ in broken))
            what = "; ".join(text for _, text, _ in broken)
            return f"{tags} usage record {pk} ({company} {external_id!r}): {what}"

        self.violations(sql, params, describe)

    def usage_entries(self) -> None:
        """Each usage entry = − the parts its batch's records drew from that account."""
        rwhere, rparams = self.scope("r.company_id")
        ewhere, eparams = self.scope("e.company_id")
        sql = f"""
            WITH drawn AS (
                SELECT r.batch, r.funding_account_id AS account_id,
                       SUM(r.pool_part + r.wallet_part + r.ai_part) AS drawn
                FROM {T["record"]} r
                WHERE r.funding_account_id IS NOT NULL{rwhere}
                GROUP BY r.batch, r.funding_account_id
            ), posted AS (
                SELECT e.usage_batch AS batch, e.account_id, SUM(e.amount) AS amount
                FROM {T["entry"]} e
                WHERE e.entry_type = 'usage'{ewhere}
                GROUP BY e.usage_batch, e.account_id
            )
            SELECT COALESCE(d.batch, p.batch), COALESCE(d.account_id, p.account_id),
                   d.drawn, p.amount
            FROM drawn d FULL OUTER JOIN posted p
                 ON p.batch = d.batch AND p.account_id = d.account_id
            WHERE {_ne("COALESCE(d.drawn, 0)", "-COALESCE(p.amount, 0)")}
            ORDER BY 1, 2
        """  # noqa: S608

        def describe(batch, account_id, drawn, amount):
            batch = uuid.UUID(str(batch)) if batch else None  # SQLite keeps bare hex
            return (
                f"§6.2 usage batch {batch}, account {account_id}: records drew "
                f"{_amount(drawn)} but the usage ledger entries say {_amount(amount)}"
            )

        self.violations(sql, rparams + eparams, describe)

    # -- §6.3 allowances -----------------------------------------------------------------
    def allowances(self) -> None:
        rwhere, rparams = self.scope("r.company_id")
        awhere, aparams = self.scope("al.company_id")
        columns = [  # (allowance column, record aggregate, what the aggregate is)
            ("used", "SUM(r.allowance_part)", "sum of its records' allowance parts"),
            ("cost_total", "SUM(r.cost)", "sum of its records' costs"),
            ("pool_drawn", "SUM(r.pool_part)", "sum of its records' pool parts"),
            ("wallet_drawn", "SUM(r.wallet_part)", "sum of its records' wallet parts"),
            ("ai_drawn", "SUM(r.ai_part)", "sum of its records' AI parts"),
            ("uncovered", "SUM(r.uncovered)", "sum of its records' uncovered parts"),
            ("events", "COUNT(*)", "number of its records"),
        ]
        aggregates = ", ".join(f"{agg} AS {col}" for col, agg, _ in columns)
        pairs = ", ".join(f"a.{col}, s.{col}" for col, _, _ in columns)
        differs = " OR ".join(
            _ne(f"COALESCE(a.{c}, 0)", f"COALESCE(s.{c}, 0)") for c, _, _ in columns
        )
        sql = f"""
            WITH sums AS (
                SELECT r.office_id, r.credit_kind AS kind, r.period, {aggregates}
                FROM {T["record"]} r WHERE 1 = 1{rwhere}
                GROUP BY r.office_id, r.credit_kind, r.period
            ), a AS (
                SELECT al.* FROM {T["allowance"]} al WHERE 1 = 1{awhere}
            )
            SELECT a.id, COALESCE(a.office_id, s.office_id), COALESCE(a.kind, s.kind),
                   COALESCE(a.period, s.period), a.included,
                   CASE WHEN a.company_id <> o.company_id THEN 1 ELSE 0 END, {pairs}
            FROM a FULL OUTER JOIN sums s
                 ON s.office_id = a.office_id AND s.kind = a.kind AND s.period = a.period
            LEFT JOIN {T["office"]} o ON o.id = a.office_id
            WHERE a.id IS NULL OR a.used < 0 OR a.used > a.included + 0.00005
                  OR a.company_id <> o.company_id OR {differs}
            ORDER BY 2, 3, 4
        """  # noqa: S608

        def describe(pk, office_id, kind, period, included, wrong_company, *values):
            label = f"allowance of office {office_id} {kind} {str(period)[:7]}"
            if pk is None:
                return f"§6.3 {label}: usage records exist but the allowance row is missing"
            problems = []
            if wrong_company:
                problems.append("its company is not its office's company")
            used = _amount(values[0])
            if used > _amount(included) or used < 0:
                problems.append(f"used {used} is outside 0…included {_amount(included)}")
            for i, (col, _, what) in enumerate(columns):
                stored, actual = _amount(values[2 * i]), _amount(values[2 * i + 1])
                if col == "events":
                    stored, actual = int(stored), int(actual)
                if stored != actual:
                    problems.append(f"{col} {stored} ≠ {what} {actual}")
            return f"§6.3 {label} (id {pk}): " + "; ".join(problems)

        self.violations(sql, rparams + aparams, describe)

    # -- usage history totals: the day rollups ---------------------------------------------
    def usage_days(self) -> None:
        """Each day rollup = the sums of its records. Everywhere per office, service,
        kind, funding split and billing period (a day lies in one period, and the period
        is stored on the records); on PostgreSQL also per local day, for companies whose
        rollups all count days in the company's current time zone."""
        self._usage_days_compare(by_day=False)
        if connection.vendor == "postgresql":
            self._usage_days_compare(by_day=True)

    def _usage_days_compare(self, *, by_day: bool) -> None:
        rwhere, rparams = self.scope("r.company_id")
        dwhere, dparams = self.scope("d.company_id")
        columns = ["events", *SUMMED]
        record_sums = ", ".join(["COUNT(*) AS events", *[f"SUM(r.{c}) AS {c}" for c in SUMMED]])
        day_sums = ", ".join(f"SUM(d.{c}) AS {c}" for c in columns)
        if by_day:
            # Companies whose rollups all count days in their current time zone.
            zones = f"SELECT 1 FROM {T['day']} x WHERE x.company_id = c.id"  # noqa: S608
            same_zone = f"NOT EXISTS ({zones} AND x.tz <> c.billing_timezone)"
            r_when = "(r.occurred_at AT TIME ZONE c.billing_timezone)::date"
            d_when = "d.day"
            r_from = f"{T['record']} r JOIN {T['company']} c ON c.id = r.company_id"
            d_from = f"{T['day']} d JOIN {T['company']} c ON c.id = d.company_id"
            r_only, d_only = f" AND {same_zone}", f" AND {same_zone}"
            what = "day"
        else:
            r_when = "r.period"
            if connection.vendor == "postgresql":
                d_when = "CAST(date_trunc('month', d.day) AS date)"
            else:
                d_when = "DATE(d.day, 'start of month')"
            r_from, d_from = f"{T['record']} r", f"{T['day']} d"
            r_only = d_only = ""
            what = "period"
        keys = "office_id, service_id, credit_kind, moment, funded"
        pairs = ", ".join(f"d.{c}, s.{c}" for c in columns)
        differs = " OR ".join(_ne(f"COALESCE(d.{c}, 0)", f"COALESCE(s.{c}, 0)") for c in columns)
        sql = f"""
            WITH s AS (
                SELECT r.office_id, r.service_id, r.credit_kind, {r_when} AS moment,
                       {funded_sql("r")} AS funded, {record_sums}
                FROM {r_from} WHERE 1 = 1{rwhere}{r_only}
                GROUP BY 1, 2, 3, 4, 5
            ), d AS (
                SELECT d.office_id, d.service_id, d.credit_kind, {d_when} AS moment,
                       d.funded, {day_sums}
                FROM {d_from} WHERE 1 = 1{dwhere}{d_only}
                GROUP BY 1, 2, 3, 4, 5
            )
            SELECT COALESCE(d.office_id, s.office_id), COALESCE(d.service_id, s.service_id),
                   COALESCE(d.credit_kind, s.credit_kind), COALESCE(d.moment, s.moment),
                   COALESCE(d.funded, s.funded), {pairs}
            FROM d FULL OUTER JOIN s USING ({keys})
            WHERE {differs}
            ORDER BY 1, 2, 3, 4, 5
        """  # noqa: S608

        def describe(office_id, service_id, kind, moment, funded, *values):
            problems = []
            for i, col in enumerate(columns):
                stored, actual = _amount(values[2 * i]), _amount(values[2 * i + 1])
                if col == "events":
                    stored, actual = int(stored), int(actual)
                if stored != actual:
                    problems.append(f"{col} {stored} ≠ its records' {actual}")
            return (
                f"usage day rollups of office {office_id}, service {service_id}, {kind}, "
                f"{what} {str(moment)[:10]}, funded bits {funded}: " + "; ".join(problems)
            )

        self.violations(sql, rparams + dparams, describe)

    # -- §6.4 external ids ---------------------------------------------------------------
    def external_ids(self) -> None:
        where, params = self.scope("r.company_id")
        sql = f"""
            SELECT r.company_id, r.external_id, COUNT(*) FROM {T["record"]} r
            WHERE 1 = 1{where}
            GROUP BY r.company_id, r.external_id HAVING COUNT(*) > 1
            ORDER BY 1, 2
        """  # noqa: S608
        self.violations(
            sql,
            params,
            lambda company_id, ext, n: (
                f"§6.4 company {company_id}: event id {ext!r} was charged {n} times"
            ),
        )

    # -- §6.5 pooling transfers conserve credits ------------------------------------------
    def pooling_transfers(self) -> None:
        where, params = self.scope("pc.company_id")
        sql = f"""
            SELECT pc.id, c.slug, pc.amount_moved, SUM(e.amount),
                   SUM(CASE WHEN e.amount > 0 THEN e.amount ELSE 0 END),
                   SUM(CASE WHEN e.entry_type <> 'pooling_transfer' OR a.kind = 'ai_agent'
                            THEN 1 ELSE 0 END)
            FROM {T["change"]} pc
            JOIN {T["company"]} c ON c.id = pc.company_id
            LEFT JOIN {T["entry"]} e ON e.pooling_change_id = pc.id
            LEFT JOIN {T["account"]} a ON a.id = e.account_id
            WHERE 1 = 1{where}
            GROUP BY pc.id, c.slug, pc.amount_moved
            HAVING {_ne("COALESCE(SUM(e.amount), 0)", "0")}
                OR {_ne("SUM(CASE WHEN e.amount > 0 THEN e.amount ELSE 0 END)", "pc.amount_moved")}
                OR SUM(CASE WHEN e.entry_type <> 'pooling_transfer' OR a.kind = 'ai_agent'
                            THEN 1 ELSE 0 END) > 0
            ORDER BY pc.id
        """  # noqa: S608

        def describe(pk, company, moved, total, credited, strays):
            problems = []
            if _amount(total) != 0:
                problems.append(f"its transfer entries sum to {_amount(total)}, not 0")
            if _amount(credited) != _amount(moved):
                problems.append(
                    f"it records {_amount(moved)} moved but its entries credit {_amount(credited)}"
                )
            if strays:
                problems.append(f"{strays} of its entries are not pool/wallet transfers")
            return f"§6.5 pooling change {pk} ({company}): " + "; ".join(problems)

        self.violations(sql, params, describe)

        where, params = self.scope("e.company_id")
        sql = f"""
            SELECT e.id FROM {T["entry"]} e
            WHERE e.entry_type = 'pooling_transfer' AND e.pooling_change_id IS NULL{where}
            ORDER BY e.id
        """  # noqa: S608
        self.violations(
            sql, params, lambda pk: f"§6.5 ledger entry {pk}: a pooling transfer without a change"
        )

        where, params = self.scope("c.id")
        sql = f"""
            SELECT c.slug, b.total, n.total FROM {T["company"]} c
            LEFT JOIN (SELECT company_id, SUM(balance) AS total FROM {T["account"]}
                       GROUP BY company_id) b ON b.company_id = c.id
            LEFT JOIN (SELECT company_id, SUM(amount) AS total FROM {T["entry"]}
                       WHERE entry_type <> 'pooling_transfer' GROUP BY company_id) n
                 ON n.company_id = c.id
            WHERE {_ne("COALESCE(b.total, 0)", "COALESCE(n.total, 0)")}{where}
            ORDER BY c.slug
        """  # noqa: S608
        self.violations(
            sql,
            params,
            lambda slug, balances, added: (
                f"§6.5 company {slug}: its balances total {_amount(balances)} but purchases, "
                f"grants, adjustments and usage total {_amount(added)}"
            ),
        )

    # -- §6.7 pooling state ----------------------------------------------------------------
    def pooling_state(self) -> None:
        where, params = self.scope("c.id")
        sql = f"""
            SELECT c.slug, o.slug, a.balance FROM {T["account"]} a
            JOIN {T["company"]} c ON c.id = a.company_id
            JOIN {T["office"]} o ON o.id = a.office_id
            WHERE c.pooling_enabled AND a.kind = 'wallet' AND a.balance <> 0{where}
            ORDER BY c.slug, o.slug
        """  # noqa: S608
        self.violations(
            sql,
            params,
            lambda company, office, balance: (
                f"§6.7 company {company}: pooling is on but the {office} wallet holds "
                f"{_amount(balance)}"
            ),
        )
        # The flag must be what the latest audited toggle set (off when never toggled).
        sql = f"""
            SELECT c.slug, c.pooling_enabled FROM {T["company"]} c
            LEFT JOIN {T["change"]} pc ON pc.id = (
                SELECT MAX(p2.id) FROM {T["change"]} p2 WHERE p2.company_id = c.id)
            WHERE (CASE WHEN c.pooling_enabled THEN 1 ELSE 0 END)
                  <> (CASE WHEN pc.enabled THEN 1 ELSE 0 END){where}
            ORDER BY c.slug
        """  # noqa: S608
        self.violations(
            sql,
            params,
            lambda company, enabled: (
                f"§4 company {company}: pooling is {'on' if enabled else 'off'} but its "
                "latest pooling change record says otherwise"
            ),
        )

    # -- §6.8 append-only triggers ---------------------------------------------------------
    def triggers(self) -> None:
        if connection.vendor != "postgresql":
            return
        found = dict(
            self.rows(
                """
                SELECT c.relname, t.tgenabled FROM pg_trigger t
                JOIN pg_class c ON c.oid = t.tgrelid
                WHERE c.oid = ANY(ARRAY[%s, %s, %s]::regclass[])
                  AND t.tgname = c.relname || '_append_only'
                  AND t.tgtype & 8 = 8 AND t.tgtype & 16 = 16  -- fires on DELETE and UPDATE
                """,
                APPEND_ONLY_TABLES,
            )
        )
        for table in APPEND_ONLY_TABLES:
            state = found.get(table)
            if state is None:
                self.report.violations.append(
                    f"§6.8 table {table}: the append-only trigger is missing"
                )
            elif state not in ("O", "A"):
                self.report.violations.append(
                    f"§6.8 table {table}: the append-only trigger is disabled"
                )

    def run(self) -> LedgerReport:
        self.report.counts = {
            "companies": self.count(T["company"], "id"),
            "accounts": self.count(T["account"]),
            "ledger entries": self.count(T["entry"]),
            "allowances": self.count(T["allowance"]),
            "usage records": self.count(T["record"]),
            "pooling changes": self.count(T["change"]),
        }
        for check in (
            self.accounts,
            self.entry_chains,
            self.records,
            self.usage_entries,
            self.allowances,
            self.usage_days,
            self.external_ids,
            self.pooling_transfers,
            self.pooling_state,
            self.triggers,
        ):
            check()
        return self.report


def ledger_check(company_ids=None) -> LedgerReport:
    """Counts of what was checked and every breach of SPEC §6 found (all companies when
    `company_ids` is None)."""
    return _Checker(company_ids).run()


def ledger_violations(company_ids=None) -> list[str]:
    """Every breach of the SPEC §6 invariants, one line each; empty when all hold."""
    return ledger_check(company_ids).violations
