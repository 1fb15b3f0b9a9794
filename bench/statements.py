"""Statements and the what-if replay at scale (issue 14): one company with 1,000,000
usage records in one month (the current one, to date).

* the statement page and its PDF: p95 in-process (django.test.Client), beside the raw
  SQL of the statement's own reads (allowance rows, ledger sums, day rollups);
* the what-if replay: records/s and the process's peak memory growth (RSS sampled
  while it runs), beside a plain SQL read of the same records through a server-side
  cursor in the same run.
"""

from __future__ import annotations

import threading
import time

from bench.common import Result, bench_admin_user, percentile, raw_connect
from bench.dataset import dataset_ensure
from bench.history import _client, _ms, _rss_mb, measure_get

PAGE_P95_MS = 300.0
PDF_P95_MS = 1000.0
REPLAY_RATE = 200_000
REPLAY_GROWTH_MB = 100

STATEMENT_SQL = [
    """SELECT office_id, kind, included, used, cost_total, pool_drawn, wallet_drawn,
              ai_drawn, uncovered, events
       FROM credits_allowance WHERE company_id = %(c)s AND period = %(p)s""",
    """SELECT account_id, entry_type, SUM(amount), COUNT(*) FROM credits_ledgerentry
       WHERE company_id = %(c)s AND created_at >= %(s)s AND created_at < %(e)s
       GROUP BY 1, 2""",
    """SELECT office_id, credit_kind, SUM(events), SUM(cost), SUM(allowance_part),
              SUM(pool_part), SUM(wallet_part), SUM(ai_part), SUM(uncovered)
       FROM usage_usageday WHERE company_id = %(c)s AND day >= %(p)s AND day < %(n)s
       GROUP BY 1, 2""",
]
# The replay's records, read plainly: the same rows and columns, charge order.
REPLAY_SQL = """
    SELECT id, office_id, cost, allowance_part, uncovered, funding_balance_after, created_at
    FROM usage_usagerecord
    WHERE company_id = %s AND credit_kind = 'standard' AND created_at >= %s AND created_at < %s
    ORDER BY id
"""


class PeakRss:
    """The process's peak resident memory while the block runs (sampled every 20 ms)."""

    def __enter__(self):
        self.before = self.peak = _rss_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_mb())

    @property
    def growth(self) -> float:
        return self.peak - self.before


def statement_benchmarks(config: dict) -> list[Result]:
    from offices.models import Company
    from usage.statements import period_bounds
    from usage.whatif import whatif_replay

    records, offices = config["statement_records"], config["statement_offices"]
    print(f"statements: {records:,} records in one month, {offices} offices", flush=True)
    dataset = dataset_ensure(
        name="statements" if records == 1_000_000 else f"statements-{records}",
        offices=offices,
        records=records,
        months=1,
        log=lambda m: print(m, flush=True),
    )
    company = Company.objects.get(pk=dataset.company_id)
    with raw_connect() as conn:
        period = conn.execute(
            "SELECT max(period) FROM usage_usagerecord WHERE company_id = %s", [company.pk]
        ).fetchone()[0]
    starts_at, ends_at = period_bounds(period, company.tz)
    params = {"c": company.pk, "p": period, "s": starts_at, "e": ends_at,
              "n": ends_at.date()}  # fmt: skip
    repeats = config["page_repeats"]
    times = []
    with raw_connect(autocommit=True) as conn:
        for _ in range(repeats + 1):
            started = time.perf_counter()
            for sql in STATEMENT_SQL:
                conn.execute(sql, params).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    baseline = percentile(times[1:], 95)

    client = _client(bench_admin_user(company))
    results = []
    url = f"/statements/{period:%Y-%m}/"
    for name, path, target_ms, n in (
        ("statement page", url, PAGE_P95_MS, repeats),
        ("statement PDF", url + "statement.pdf", PDF_P95_MS, max(5, repeats // 4)),
        ("statement CSV", url + "statement.csv", PAGE_P95_MS, repeats),
    ):
        got = measure_get(client, path, n)
        ok = got["status"] == 200
        passed = ok and got["p95"] <= target_ms
        results.append(
            Result(
                f"{path} ({records:,} records)",
                got["p95"] if ok else None,
                "ms p95",
                baseline,
                target=f"≤ {target_ms:.0f} ms",
                passed=passed,
                details={k: v for k, v in got.items() if k != "slowest_sql"},
                note="" if ok else f"HTTP {got['status']}",
            )
        )
        print(f"  {name}: {_ms(got['p95'])} p95, {got['queries']} queries, "
              f"raw reads {baseline:.1f} ms", flush=True)  # fmt: skip

    # Baseline: the same records read plainly through a server-side cursor.
    started = time.perf_counter()
    rows = 0
    with raw_connect() as conn, conn.cursor(name="replay-baseline") as cur:
        cur.itersize = 20_000
        cur.execute(REPLAY_SQL, [company.pk, starts_at, ends_at])
        for _row in cur:
            rows += 1
    raw_rate = rows / (time.perf_counter() - started)
    # ... and the replay's own query (integers only), read plainly: what the replay adds.
    from usage.whatif import REPLAY_SQL as REPLAY_INT_SQL

    started = time.perf_counter()
    with raw_connect() as conn, conn.cursor(name="replay-int-baseline") as cur:
        cur.itersize = 20_000
        cur.execute(REPLAY_INT_SQL, [company.pk, "standard", starts_at, ends_at])
        int_rows = sum(1 for _row in cur)
    int_rate = int_rows / (time.perf_counter() - started)

    from django.db import transaction

    with PeakRss() as memory, transaction.atomic():  # a server-side cursor needs one
        started = time.perf_counter()
        whatif = whatif_replay(company, period=period)
        seconds = time.perf_counter() - started
    rate = whatif.records / seconds
    passed = rate >= REPLAY_RATE and memory.growth <= REPLAY_GROWTH_MB and whatif.records >= rows
    note = (
        f"{whatif.records:,} standard records in {seconds:.2f} s, memory growth "
        f"{memory.growth:.0f} MB; plain read {rows:,} rows at {raw_rate:,.0f} rows/s "
        f"(numeric columns), {int_rate:,.0f} rows/s (the replay's integer query); "
        f"replay matches actual: {whatif.replay_matches_actual}"
    )
    print(f"  what-if replay: {rate:,.0f} records/s ({note})", flush=True)
    results.append(
        Result(
            f"what-if replay ({records:,} records)",
            rate,
            "records/s",
            raw_rate,
            target=f"≥ {REPLAY_RATE:,} records/s, ≤ {REPLAY_GROWTH_MB} MB growth",
            passed=passed,
            details={
                "records": whatif.records,
                "seconds": seconds,
                "memory_growth_mb": memory.growth,
                "raw_rows": rows,
                "matches_actual": whatif.replay_matches_actual,
            },
            note=note,
        )  # fmt: skip
    )
    return results
