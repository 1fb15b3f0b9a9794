"""Credits' checks of SPEC §6 (run by `manage.py check_ledger`, core/checks.py):
balances and their ledger (§6.1), pooling transfers (§6.5) and state (§6.7), and the
append-only ledger and pooling audit (§6.8), and the money controls: pool caps (§6.9),
auto-recharge limits (§6.10) and low-balance alerts (§6.11)."""

from __future__ import annotations

import re
from collections import defaultdict

from core.checks import Checker, _amount, _ne
from credits.models import (
    Account,
    Alert,
    Allowance,
    CompanyControls,
    ControlChange,
    LedgerEntry,
    PoolingChange,
    RechargeRule,
)
from offices.models import Company, Office

T = {
    "company": Company._meta.db_table,
    "office": Office._meta.db_table,
    "account": Account._meta.db_table,
    "entry": LedgerEntry._meta.db_table,
    "allowance": Allowance._meta.db_table,
    "change": PoolingChange._meta.db_table,
    "alert": Alert._meta.db_table,
    "controls": CompanyControls._meta.db_table,
    "rule": RechargeRule._meta.db_table,
}
RECHARGE_REFERENCE = re.compile(r"recharge-rule:(\d+):(\d{4}-\d{2}):(\d+)/(\d+)\Z")


class Checks(Checker):
    counts = {
        "companies": (T["company"], "id"),
        "accounts": (T["account"], "company_id"),
        "ledger entries": (T["entry"], "company_id"),
        "allowances": (T["allowance"], "company_id"),
        "pooling changes": (T["change"], "company_id"),
        "alerts": (T["alert"], "company_id"),
        "recharge rules": (T["rule"], "company_id"),
    }
    append_only = [T["entry"], T["change"], ControlChange._meta.db_table]
    checks = (
        "accounts",
        "entry_chains",
        "pooling_transfers",
        "pooling_state",
        "pool_caps",
        "pool_cap_alerts",
        "recharges",
        "alerts",
    )

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

    # -- §6.9 pool caps ------------------------------------------------------------------
    def pool_caps(self) -> None:
        where, params = self.scope("al.company_id")
        # The cap in force was set when the office had drawn pool_drawn_at_cap: draws
        # after it stop at the cap (a cap set below earlier draws stops them all).
        sql = f"""
            SELECT c.slug, o.slug, al.period, al.pool_drawn, al.pool_cap, al.pool_drawn_at_cap
            FROM {T["allowance"]} al
            JOIN {T["company"]} c ON c.id = al.company_id
            JOIN {T["office"]} o ON o.id = al.office_id
            WHERE al.pool_cap IS NOT NULL
              AND al.pool_drawn - (CASE WHEN al.pool_cap > al.pool_drawn_at_cap
                                        THEN al.pool_cap ELSE al.pool_drawn_at_cap END)
                  > 0.00005{where}
            ORDER BY c.slug, o.slug, al.period
        """  # noqa: S608
        self.violations(
            sql,
            params,
            lambda company, office, period, drawn, cap, before: (
                f"§6.9 {company} {office} {str(period)[:7]}: drew {_amount(drawn)} from the "
                f"pool, over its cap {_amount(cap)} (drawn before the cap: {_amount(before)})"
            ),
        )

    def pool_cap_alerts(self) -> None:
        """§8.3's alert: an office's standard row of a period says its pool-cap alert is
        open only while it has no cap room under pooling, and then (unless the period is
        over: the pool was drawn for a later one) exactly one pool-cap alert of that office
        and period is open; no other is. The pool counts its open ones."""
        where, params = self.scope("al.company_id")
        sql = f"""
            SELECT c.slug, o.slug, al.period, al.pool_cap_alert, al.pool_cap, al.pool_drawn,
                   c.pooling_enabled, p.latest_period, COALESCE(n.open_alerts, 0)
            FROM {T["allowance"]} al
            JOIN {T["company"]} c ON c.id = al.company_id
            JOIN {T["office"]} o ON o.id = al.office_id
            LEFT JOIN {T["account"]} p ON p.company_id = al.company_id AND p.kind = 'pool'
            LEFT JOIN (SELECT office_id, period, COUNT(*) AS open_alerts FROM {T["alert"]}
                       WHERE resolved_at IS NULL AND kind = 'pool_cap'
                       GROUP BY office_id, period) n
                   ON n.office_id = al.office_id AND n.period = al.period
            WHERE al.kind = 'standard' AND (
                (al.pool_cap_alert AND NOT (c.pooling_enabled AND al.pool_cap IS NOT NULL
                                            AND al.pool_drawn >= al.pool_cap))
                OR (NOT al.pool_cap_alert AND COALESCE(n.open_alerts, 0) > 0)
                OR (al.pool_cap_alert AND COALESCE(n.open_alerts, 0)
                    <> CASE WHEN p.latest_period IS NULL OR al.period >= p.latest_period
                            THEN 1 ELSE 0 END)
            ){where}
            ORDER BY c.slug, o.slug, al.period
        """  # noqa: S608

        def describe(company, office, period, flag, cap, drawn, pooling, latest, open_alerts):
            label = f"§6.9 {company} {office} {str(period)[:7]}"
            if flag and not pooling:
                return f"{label}: capped out while pooling is off"
            if flag and (cap is None or _amount(drawn) < _amount(cap)):
                room = "no cap" if cap is None else f"room {_amount(cap) - _amount(drawn)}"
                return f"{label}: flagged capped out, yet has {room}"
            if not flag:
                return f"{label}: {open_alerts} open pool-cap alerts, its row says none"
            over = latest is not None and period < latest
            return f"{label}: {open_alerts} open pool-cap alerts, not {0 if over else 1}" + (
                " (its period is over)" if over else ""
            )

        self.violations(sql, params, describe)
        where, params = self.scope("a.company_id")
        sql = f"""
            SELECT a.id, c.slug, a.kind, a.pool_cap_alerts, COALESCE(n.open_alerts, 0)
            FROM {T["account"]} a
            JOIN {T["company"]} c ON c.id = a.company_id
            LEFT JOIN (SELECT account_id, COUNT(*) AS open_alerts FROM {T["alert"]}
                       WHERE resolved_at IS NULL AND kind = 'pool_cap'
                       GROUP BY account_id) n ON n.account_id = a.id
            WHERE (a.pool_cap_alerts <> COALESCE(n.open_alerts, 0)
                   OR (a.kind <> 'pool' AND COALESCE(n.open_alerts, 0) > 0)){where}
            ORDER BY a.id
        """  # noqa: S608
        self.violations(
            sql,
            params,
            lambda pk, company, kind, counted, open_alerts: (
                f"§6.9 account {pk} ({company} {kind}): counts {counted} open pool-cap "
                f"alerts, has {open_alerts}" + ("" if kind == "pool" else " (not the pool)")
            ),
        )

    # -- §6.10 auto-recharges --------------------------------------------------------------
    def recharges(self) -> None:
        where, params = self.scope("e.company_id")
        sql = f"""
            SELECT e.id, e.account_id, e.amount, e.reference FROM {T["entry"]} e
            WHERE e.entry_type = 'auto_recharge'{where} ORDER BY e.id
        """  # noqa: S608
        seen: dict[tuple, list[int]] = defaultdict(list)
        problems = []
        for pk, account_id, amount, reference in self.rows(sql, params):
            match = RECHARGE_REFERENCE.match(reference or "")
            if match is None:
                problems.append(f"§6.10 ledger entry {pk}: an auto-recharge naming no rule")
                continue
            rule, period, n, limit = match.groups()
            if _amount(amount) <= 0:
                problems.append(f"§6.10 ledger entry {pk}: an auto-recharge of {amount}")
            if not 1 <= int(n) <= int(limit):
                problems.append(
                    f"§6.10 ledger entry {pk}: recharge {n} of rule {rule} in {period} is "
                    f"over its monthly limit {limit}"
                )
            seen[rule, account_id, period].append(int(n))
        for (rule, account_id, period), numbers in seen.items():
            if len(numbers) != len(set(numbers)):
                problems.append(
                    f"§6.10 rule {rule} (account {account_id}) in {period}: recharges "
                    f"{sorted(numbers)} count some recharge twice"
                )
        self.report.violations.extend(problems[:20])
        # The charging session reads an account's rule only when the account says it has
        # one: a flag out of step would skip (or invent) recharges.
        where, params = self.scope("a.company_id")
        sql = f"""
            SELECT a.id, c.slug, a.kind, a.has_recharge_rule FROM {T["account"]} a
            JOIN {T["company"]} c ON c.id = a.company_id
            LEFT JOIN {T["rule"]} r ON r.account_id = a.id
            WHERE a.has_recharge_rule <> (r.id IS NOT NULL){where}
            ORDER BY a.id
        """  # noqa: S608
        self.violations(
            sql,
            params,
            lambda pk, company, kind, flag: (
                f"§6.10 account {pk} ({company} {kind}): says it has "
                f"{'a' if flag else 'no'} recharge rule, but has {'none' if flag else 'one'}"
            ),
        )

    # -- §6.11 low-balance alerts ----------------------------------------------------------
    def alerts(self) -> None:
        where, params = self.scope("a.company_id")
        funds = (
            "(a.kind = 'ai_agent' OR (a.kind = 'pool' AND c.pooling_enabled) "
            "OR (a.kind = 'wallet' AND NOT c.pooling_enabled))"
        )
        in_force = f"CASE WHEN {funds} THEN COALESCE(a.threshold_override, ctl.alert_threshold) END"
        sql = f"""
            SELECT a.id, c.slug, a.kind, o.slug, a.balance, a.alert_threshold,
                   {in_force}, COALESCE(n.open_alerts, 0),
                   a.low_balance_alert, COALESCE(u.open_alerts, 0), a.uncovered_alert
            FROM {T["account"]} a
            JOIN {T["company"]} c ON c.id = a.company_id
            LEFT JOIN {T["office"]} o ON o.id = a.office_id
            LEFT JOIN {T["controls"]} ctl ON ctl.company_id = a.company_id
            LEFT JOIN (SELECT account_id, COUNT(*) AS open_alerts FROM {T["alert"]}
                       WHERE resolved_at IS NULL AND kind = 'low_balance'
                       GROUP BY account_id) n ON n.account_id = a.id
            LEFT JOIN (SELECT account_id, COUNT(*) AS open_alerts FROM {T["alert"]}
                       WHERE resolved_at IS NULL AND kind = 'uncovered'
                       GROUP BY account_id) u ON u.account_id = a.id
            WHERE (
                (a.alert_threshold IS NULL) <> ({in_force} IS NULL)
                OR (a.alert_threshold IS NOT NULL AND {_ne("a.alert_threshold", in_force)})
                OR (CASE WHEN a.alert_threshold IS NOT NULL AND a.balance < a.alert_threshold
                         THEN 1 ELSE 0 END) <> COALESCE(n.open_alerts, 0)
                OR (CASE WHEN a.low_balance_alert THEN 1 ELSE 0 END)
                   <> COALESCE(n.open_alerts, 0)
                OR (CASE WHEN a.uncovered_alert THEN 1 ELSE 0 END)
                   <> COALESCE(u.open_alerts, 0)
            ){where}
            ORDER BY a.id
        """  # noqa: S608

        def describe(
            pk,
            company,
            kind,
            office,
            balance,
            threshold,
            wanted,
            open_low,
            flag,
            open_uncovered,
            uncovered_flag,
        ):
            label = f"account {pk} ({company} {kind}{' ' + office if office else ''})"
            problems = []
            threshold = None if threshold is None else _amount(threshold)
            wanted = None if wanted is None else _amount(wanted)
            if threshold != wanted:
                problems.append(f"its threshold in force is {threshold}, settings say {wanted}")
            low = threshold is not None and _amount(balance) < threshold
            if low and open_low != 1:
                problems.append(
                    f"balance {_amount(balance)} is below {threshold} with {open_low} open "
                    "low-balance alerts, not 1"
                )
            if not low and open_low:
                problems.append(f"balance {_amount(balance)} is not low, yet has an open alert")
            if bool(flag) != bool(open_low) or bool(uncovered_flag) != bool(open_uncovered):
                problems.append("its open-alert flags disagree with its open alerts")
            return f"§6.11 {label}: " + "; ".join(problems or ["alerts out of step"])

        self.violations(sql, params, describe)
