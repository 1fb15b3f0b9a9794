"""Usage's checks of SPEC §6 (run by `manage.py check_ledger`, core/checks.py): each
record's split (§6.2, §6.6, §6.7), the usage ledger entries it adds up to, the allowance
rollups (§6.3) and day rollups, ids charged once (§6.4), append-only records (§6.8)."""

from __future__ import annotations

import uuid

from django.db import connection

from core.checks import Checker, _amount, _ne
from credits.checks import T as CREDITS_TABLES
from usage.models import UsageDay, UsageKey, UsageRecord
from usage.partitions import record_source
from usage.rollups import SUMMED, funded_sql

T = {
    **CREDITS_TABLES,
    "record": UsageRecord._meta.db_table,
    "day": UsageDay._meta.db_table,
    "key": UsageKey._meta.db_table,
}


class Checks(Checker):
    counts = {"usage records": (T["record"], "company_id")}
    append_only = [T["record"]]
    checks = ("records", "usage_entries", "allowances", "usage_days", "external_ids", "keys")

    def run(self) -> None:
        # Every record, live or archived by `usage_retention` (usage/partitions.py): the
        # ledger, allowance and day rollups of archived months still add up to them.
        self.R = record_source()
        if T["record"] != self.R:
            self.counts = {"usage records": (f"{self.R} AS every_record", "company_id")}
        super().run()

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
            FROM {self.R} r
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
                FROM {self.R} r
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
                FROM {self.R} r WHERE 1 = 1{rwhere}
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
            # The companies whose rollups all count days in their current time zone, found
            # first, once per company (the index on company and zone answers each), and
            # passed as a list. As a NOT EXISTS beside each record it was evaluated per
            # record whenever the planner did not move it to the company side (statistics
            # older than the rows: minutes, docs/scaling.md); a CTE instead would keep the
            # comparison from running in parallel (46 s against 35 s at 10M).
            cwhere, cparams = self.scope("c.id")
            zoned = [
                pk
                for (pk,) in self.rows(
                    f"""SELECT c.id FROM {T["company"]} c
                        WHERE NOT EXISTS (SELECT 1 FROM {T["day"]} x WHERE x.company_id = c.id
                                          AND x.tz <> c.billing_timezone){cwhere}
                        ORDER BY c.id""",  # noqa: S608
                    cparams,
                )
            ]
            if not zoned:
                return
            same_zone = f" AND c.id IN ({', '.join(['%s'] * len(zoned))})"
            r_when = "(r.occurred_at AT TIME ZONE c.billing_timezone)::date"
            d_when = "d.day"
            r_from = f"{self.R} r JOIN {T['company']} c ON c.id = r.company_id"
            d_from = f"{T['day']} d JOIN {T['company']} c ON c.id = d.company_id"
            r_only, d_only = same_zone, same_zone
            rparams, dparams = rparams + zoned, dparams + zoned
            what = "day"
        else:
            r_when = "r.period"
            if connection.vendor == "postgresql":
                d_when = "CAST(date_trunc('month', d.day) AS date)"
            else:
                d_when = "DATE(d.day, 'start of month')"
            r_from, d_from = f"{self.R} r", f"{T['day']} d"
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
            SELECT r.company_id, r.external_id, COUNT(*) FROM {self.R} r
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

    def keys(self) -> None:
        """The guard of §6.4 (UsageKey) holds exactly one row per record: same company,
        id, record and moment. A full outer join, so the plan is a hash or merge join
        whatever the statistics say (a nested loop over fresh, unanalysed rows took
        minutes)."""
        rwhere, rparams = self.scope("r.company_id")
        kwhere, kparams = self.scope("k.company_id")
        sql = f"""
            SELECT COALESCE(r.company_id, k.company_id), COALESCE(r.external_id, k.external_id),
                   COALESCE(r.id, k.record_id),
                   CASE WHEN k.record_id IS NULL THEN 'has no guard row' ELSE 'has no record' END
            FROM (SELECT r.company_id, r.external_id, r.id, r.occurred_at
                  FROM {self.R} r WHERE 1 = 1{rwhere}) r
            FULL OUTER JOIN (SELECT k.company_id, k.external_id, k.record_id, k.occurred_at
                             FROM {T["key"]} k WHERE 1 = 1{kwhere}) k
                 ON k.company_id = r.company_id AND k.external_id = r.external_id
                    AND k.record_id = r.id AND k.occurred_at = r.occurred_at
            WHERE r.id IS NULL OR k.record_id IS NULL
            ORDER BY 1, 2
        """  # noqa: S608
        self.violations(
            sql,
            rparams + kparams,
            lambda company_id, ext, pk, what: (
                f"§6.4 company {company_id}: the guard row of event id {ext!r} (record {pk}) {what}"
            ),
        )
