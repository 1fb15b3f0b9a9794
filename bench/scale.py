"""Issue 26 items 6, 7 and issue 22 item 2 at scale: `python -m bench.scale [--only
checks,fragment,spendable] [--repeats N] [--baseline-timeout S]` (DATABASE_URL: the
bench database; `checks` and `fragment` need the 10M dataset `scale10m`, made first if
missing, `spendable` the 1M-record company of 200 offices `spendable-1m`).

* `checks`: check_ledger's per-local-day comparison of the day rollups
  (usage/checks.py, `_usage_days_compare(by_day=True)`) over the whole database, against
  the form before (main at 7930aab: "all of this company's rollups are in its current
  zone" as a `NOT EXISTS` beside every record, which PostgreSQL 15 ran once per record).
  The form before is this very statement with that one difference put back, so the two
  differ in nothing else. It gets `--baseline-timeout` seconds on the whole database
  (reported as "more than" when stopped); both also run on one 100,000-record company,
  where the form before finishes, for a ratio. Both must find the same (no) violations.
* `fragment`: `/usage/?q=` with a number fragment whose records all lie in one month.
* `spendable`: `GET /api/v1/offices/{slug}/spendable` p95 (in-process, API key) against
  its three reads in raw SQL.

Prints the same table as `python -m bench` and writes bench/results/scale-<stamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import statistics
import time

from bench.common import Result, percentile, raw_connect
from bench.run import RESULTS_DIR, _setup_django, print_table

SECTIONS = ("checks", "fragment", "spendable")


# ---------------------------------------------------------------------------- checks


def _by_day_statement(company_ids) -> tuple[str, list]:
    """The statement (and parameters) check_ledger runs for the per-day comparison."""
    from core.checks import LedgerReport
    from usage.checks import Checks

    captured = []
    checker = Checks(company_ids, LedgerReport())
    checker.R = "usage_usagerecord"
    checker.violations = lambda sql, params, describe: captured.append((sql, params))
    started = time.perf_counter()
    checker._usage_days_compare(by_day=True)  # noqa: SLF001 - the check itself
    (found,) = captured
    return (*found, time.perf_counter() - started)


ZONED = re.compile(r" AND c\.id IN \((?:%s, )*%s\)")
SAME_ZONE = (
    " AND NOT EXISTS (SELECT 1 FROM usage_usageday x WHERE x.company_id = c.id"
    " AND x.tz <> c.billing_timezone)"
)


def before_form(sql: str, params: list, company_ids) -> tuple[str, list]:
    """The same statement as main had it at 7930aab: the company's zone test beside each
    record and rollup instead of a list of the companies found to pass it."""
    old, n = ZONED.subn(SAME_ZONE, sql)
    assert n == 2, "the per-day statement changed: update bench/scale.py"  # noqa: S101
    scope = list(company_ids or [])
    return old, scope + scope


def _timed(sql: str, params: list, timeout_s: float | None) -> tuple[float | None, int]:
    """Seconds to run `sql` to its end (None: stopped at the timeout), rows found."""
    with raw_connect(autocommit=True) as conn:
        if timeout_s:
            conn.execute(f"SET statement_timeout = {int(timeout_s * 1000)}")
        started = time.perf_counter()
        try:
            rows = conn.execute(sql, params).fetchall()
        except Exception as exc:  # noqa: BLE001 - only the timeout is expected
            if "statement timeout" not in str(exc):
                raise
            return None, 0
        return time.perf_counter() - started, len(rows)


def check_benchmarks(args) -> list[Result]:
    from bench.dataset import scale_dataset_ensure, steady_state

    dataset = scale_dataset_ensure(log=lambda m: print(m, flush=True))
    steady_state()
    with raw_connect() as conn:
        small = conn.execute(
            "SELECT d.id FROM offices_company d WHERE d.slug LIKE 'bench-ds-scale10m-%%' "
            "ORDER BY d.slug DESC LIMIT 1"
        ).fetchone()[0]
    results = []
    for label, ids, timeout in (
        (f"{dataset.total_records:,} records, {dataset.companies} companies", None,
         args.baseline_timeout),
        ("one company of 100,000 records", [small], None),
    ):  # fmt: skip
        new_runs, old_runs, new_rows, old_rows = [], [], 0, 0
        for turn in range(args.rounds * 2):  # alternating: new, before, before, new, …
            if turn % 4 in (0, 3):
                sql, params, zone_s = _by_day_statement(ids)  # zone_s: finding the companies
                seconds, new_rows = _timed(sql, params, None)
                new_runs.append(seconds + zone_s)
            else:
                old_sql, old_params = before_form(*_by_day_statement(ids)[:2], ids)
                seconds, old_rows = _timed(old_sql, old_params, timeout)
                old_runs.append(seconds)
        new_s = statistics.median(new_runs)
        stopped = None in old_runs
        old_s = None if stopped else statistics.median(old_runs)
        before = f"> {timeout:.0f}" if stopped else f"{old_s:.1f}"
        print(f"  per-day rollup check, {label}: {new_s:.1f} s ({new_rows} violations; runs "
              f"{[round(x, 1) for x in new_runs]}); before: {before} s ({old_rows} violations;"
              f" runs {old_runs})", flush=True)  # fmt: skip
        whole = ids is None
        same = stopped or new_rows == old_rows == 0
        results.append(
            Result(
                f"check_ledger per-day rollups, {label}",
                new_s,
                "s",
                old_s,
                target="≤ 60 s at 10M, no violations" if whole else "no violations",
                passed=(new_s <= 60 or not whole) and new_rows == 0 and same,
                details={
                    "new_runs": new_runs,
                    "old_runs": old_runs,
                    "new_rows": new_rows,
                    "old_rows": old_rows,
                },
                note=f"the form before stopped after {timeout:.0f} s" if stopped else "",
            )  # fmt: skip
        )
    return results


# ---------------------------------------------------------------------------- spendable


SPENDABLE_SQL = (
    (
        "SELECT o.id, p.included_standard FROM offices_office o "
        "JOIN offices_plan p ON p.id = o.plan_id WHERE o.company_id = %s AND o.slug = %s",
        2,
    ),
    (
        "SELECT included, used, pool_cap, pool_drawn FROM credits_allowance "
        "WHERE office_id = (SELECT id FROM offices_office WHERE company_id = %s AND slug = %s) "
        "AND kind = 'standard' AND period = %s",
        3,
    ),
    ("SELECT balance FROM credits_account WHERE company_id = %s AND kind = 'pool'", 1),
)


def spendable_benchmarks(args) -> list[Result]:
    from bench.dataset import dataset_ensure
    from bench.history import _client, measure_get
    from bench.ingest import api_key_for
    from credits.periods import billing_period
    from offices.models import Company

    dataset = dataset_ensure(
        name="spendable-1m", offices=200, records=1_000_000, log=lambda m: print(m, flush=True)
    )
    company = Company.objects.get(pk=dataset.company_id)
    period = billing_period(company).start
    key = api_key_for(company.slug)
    client = _client(None)
    results = []
    slugs = ["o000", "o117", "o199"]
    for kind in ("standard", "ai_agent"):
        times, queries, status = [], 0, 200
        for slug in slugs:
            got = measure_get(
                client, f"/api/v1/offices/{slug}/spendable?credit_kind={kind}", args.repeats,
                HTTP_AUTHORIZATION=f"Bearer {key}",
            )  # fmt: skip
            times.append(got["p95"])
            queries = max(queries, got["queries"])
            status = got["status"] if got["status"] != 200 else status
        raw = []
        with raw_connect(autocommit=True) as conn:
            for i in range(args.repeats + 1):
                slug = slugs[i % len(slugs)]
                started = time.perf_counter()
                for sql, n in SPENDABLE_SQL:
                    conn.execute(sql, [company.pk, slug, period][:n]).fetchall()
                raw.append((time.perf_counter() - started) * 1000)
        p95 = max(times)
        baseline = percentile(raw[1:], 95)
        print(f"  spendable {kind}: {p95:.2f} ms p95 (worst of {len(slugs)} offices), "
              f"{queries} queries; raw {baseline:.2f} ms", flush=True)  # fmt: skip
        results.append(
            Result(
                f"GET spendable ({kind}), 200 offices, 1M records",
                p95,
                "ms p95",
                baseline,
                target="≤ 10 ms p95",
                passed=status == 200 and p95 <= 10,
                details={"queries": queries},
                note="" if status == 200 else f"HTTP {status}",
            )  # fmt: skip
        )
    return results


# ---------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__)
    parser.add_argument("--only", default=",".join(SECTIONS))
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--baseline-timeout", type=float, default=600.0)
    parser.add_argument("--rounds", type=int, default=2, help="checks: pairs of each form")
    args = parser.parse_args(argv)
    sections = [s for s in args.only.split(",") if s]
    if set(sections) - set(SECTIONS):
        parser.error(f"sections among {', '.join(SECTIONS)}")
    _setup_django()
    results = []
    if "spendable" in sections:
        results += spendable_benchmarks(args)
    if "fragment" in sections:
        from bench.fragment import fragment_benchmarks

        results += fragment_benchmarks(args)
    if "checks" in sections:
        results += check_benchmarks(args)
    print()
    print_table(results)
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"scale-{stamp}.json"
    path.write_text(
        json.dumps(
            {"when": stamp, "results": [r.as_dict() for r in results]}, indent=2, default=str
        )  # fmt: skip
    )
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
