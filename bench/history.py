"""Pages at scale: usage history (issue 6 §3) and balances (§4).

Server time is measured in-process with django.test.Client (no network), queries with
CaptureQueriesContext; each URL is fetched once to warm up, then N times; p50/p95 are
reported. The baseline is the page's main query in raw SQL (psycopg), timed the same way.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import time

from bench.common import Result, bench_admin_user, percentile, raw_connect
from bench.dataset import dataset_ensure, scale_dataset_ensure

MAX_QUERIES = 12
P95_MS = 100.0
PER_PAGE = 25  # the raw baseline's page size


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _client(user):
    from django.conf import settings
    from django.test import Client

    if "testserver" not in settings.ALLOWED_HOSTS:
        settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def measure_get(client, url: str, repeats: int, **headers) -> dict:
    """Warm up once, then time `repeats` GETs; p50/p95 ms, max query count, status."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    response = client.get(url, **headers)
    times, queries = [], []
    for _ in range(repeats):
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            response = client.get(url, **headers)
            if getattr(response, "streaming", False):
                for _chunk in response.streaming_content:
                    pass
            times.append((time.perf_counter() - started) * 1000)
        queries.append(len(captured))
    return {
        "status": response.status_code,
        "p50": percentile(times, 50),
        "p95": percentile(times, 95),
        "queries": max(queries),
        "slowest_sql": sorted(captured.captured_queries, key=lambda q: -float(q["time"]))[:1],
        "reads_usage_records": any(
            "usage_usagerecord" in q["sql"] for q in captured.captured_queries
        ),
    }


def measure_sql(sql: str, params: list, repeats: int) -> float:
    """p95 ms of one raw query (fetching all its rows)."""
    times = []
    with raw_connect(autocommit=True) as conn:
        conn.execute(sql, params).fetchall()
        for _ in range(repeats):
            started = time.perf_counter()
            conn.execute(sql, params).fetchall()
            times.append((time.perf_counter() - started) * 1000)
    return percentile(times, 95)


def _page_result(name: str, got: dict, baseline: float | None) -> Result:
    ok_status = got["status"] == 200
    passed = ok_status and got["p95"] <= P95_MS and got["queries"] <= MAX_QUERIES
    note = ""
    if not ok_status:
        note = f"HTTP {got['status']}: page not available or refused"
    elif not passed:
        slow = got["slowest_sql"][0] if got["slowest_sql"] else {}
        note = (
            f"{got['queries']} queries; slowest {slow.get('time', '?')} s: "
            + (slow.get("sql", "")[:160])
        )
    return Result(
        name,
        got["p95"] if ok_status else None,
        "ms p95",
        baseline,
        target=f"≤ {P95_MS:.0f} ms, ≤ {MAX_QUERIES} queries",
        passed=passed,
        details={k: v for k, v in got.items() if k != "slowest_sql"},
        note=note,
    )


# Raw equivalent of the history page's main query: one page, newest first, with names.
HISTORY_SQL = """
    SELECT u.id, u.occurred_at, u.external_id, u.quantity, u.cost, u.allowance_part,
           u.pool_part, u.wallet_part, u.ai_part, u.uncovered, u.user_label, u.phone_number,
           o.name, s.name
    FROM usage_usagerecord u
    JOIN offices_office o ON o.id = u.office_id
    JOIN usage_service s ON s.id = u.service_id
    WHERE u.company_id = %s {where}
    ORDER BY u.occurred_at DESC, u.id DESC
    LIMIT {limit} OFFSET {offset}
"""


def _scenarios(company_id: int) -> tuple[list, dict]:
    """(name, query string, extra SQL, SQL params, page) for each history measurement."""
    with raw_connect() as conn:
        office_id = conn.execute(
            "SELECT id FROM offices_office WHERE company_id = %s AND slug = 'o003'", [company_id]
        ).fetchone()[0]
        service_id = conn.execute("SELECT id FROM usage_service WHERE code = 'fax'").fetchone()[0]
        last = conn.execute(
            "SELECT max(occurred_at) FROM usage_usagerecord WHERE company_id = %s", [company_id]
        ).fetchone()[0]
    # The previous calendar month up to the latest record: about 1/6 of a year of history.
    month_ago = (last.date().replace(day=1) - dt.timedelta(days=1)).replace(day=1)
    date_from, date_to = month_ago.isoformat(), (last.date()).isoformat()
    who = "Dara Quinn"
    filters = {
        "office": ("office=o003", "AND u.office_id = %s", [office_id]),
        "service": (f"service={service_id}", "AND u.service_id = %s", [service_id]),
        "credit kind": ("credit_kind=ai_agent", "AND u.credit_kind = %s", ["ai_agent"]),
        "funded_by": ("funded_by=pool", "AND u.pool_part > 0", []),
        "date range": (
            f"date_from={date_from}&date_to={date_to}",
            "AND u.occurred_at >= %s AND u.occurred_at < (%s::date + 1)",
            [date_from, date_to],
        ),
        "q search": (
            f"q={who.replace(' ', '+')}",
            "AND (u.external_id ILIKE %s OR u.user_label ILIKE %s OR u.phone_number ILIKE %s)",
            [f"%{who}%"] * 3,
        ),
        "min_cost": ("min_cost=5", "AND u.cost >= %s", [5]),
    }
    # Filters that match nothing make "newest first" look at every row unless an index
    # answers them: the worst case a user can cause with one click.
    rare = {
        "funded_by (no match)": ("funded_by=wallet", "AND u.wallet_part > 0", []),
        "min_cost (no match)": ("min_cost=100", "AND u.cost >= %s", [100]),
        # One number of the company (the generator gives its record n the number
        # "+1555" + n), typed with spaces: found through the phone trigram index.
        "q phone number (rare)": (
            "q=555+012+3456",
            "AND u.phone_number ILIKE %s",
            ["%5550123456%"],
        ),
    }
    combined = (
        "&".join(f[0] for f in filters.values()),
        " ".join(f[1] for f in filters.values()),
        [p for f in filters.values() for p in f[2]],
    )
    return {**filters, **rare}, combined


def history_benchmarks(config: dict) -> list[Result]:
    from offices.models import Company

    dataset = history_dataset(config)
    records = dataset.records
    print(f"usage history: {records:,} records, {dataset.offices} offices"
          + (f", {dataset.total_records:,} records of {dataset.companies} companies in the "
             "table" if dataset.companies > 1 else ""), flush=True)  # fmt: skip
    company = Company.objects.get(pk=dataset.company_id)
    client = _client(bench_admin_user(company))
    repeats = config["page_repeats"]
    results = []
    filters, combined = _scenarios(company.pk)
    deep_page = max(2, records // PER_PAGE // 40)  # e.g. page 1000 of 40,000
    cases = [
        ("first page", "", "", [], 0),
        (f"page {deep_page}", f"page={deep_page}", "", [], (deep_page - 1) * PER_PAGE),
        *[(f"filter {n}", qs, where, params, 0) for n, (qs, where, params) in filters.items()],
        ("all filters combined", *combined, 0),
    ]
    for name, qs, where, params, offset in cases:
        got = measure_get(client, f"/usage/?{qs}" if qs else "/usage/", repeats)
        baseline = measure_sql(
            HISTORY_SQL.format(where=where, limit=PER_PAGE + 1, offset=offset),
            [company.pk, *params],
            repeats,
        )
        result = _page_result(f"/usage/ {name}", got, baseline)
        print(f"  {result.name}: {_ms(result.measured)} p95, {got['queries']} queries, "
              f"raw {baseline:.1f} ms", flush=True)  # fmt: skip
        results.append(result)
    results.append(export_benchmark(client, company.pk, records))
    return results


def history_dataset(config: dict):
    """The company the history pages are read for: the 1M (or quick) company, or at
    `--size 10m` the 2M-record company of the 10M dataset."""
    log = lambda m: print(m, flush=True)  # noqa: E731
    if config.get("size") == "10m":
        return scale_dataset_ensure(processes=config.get("dataset_processes", 2), log=log)
    records = config["history_records"]
    return dataset_ensure(
        name="history" if records == 1_000_000 else f"history-{records}",
        offices=config["history_offices"],
        records=records,
        log=log,
    )


def _ms(value) -> str:
    return "—" if value is None else f"{value:.1f} ms"


EXPORT_SQL = """
    SELECT u.occurred_at, o.slug, s.code, u.external_id, u.quantity, u.rate, u.cost,
           u.allowance_part, u.pool_part, u.wallet_part, u.ai_part, u.uncovered,
           u.user_label, u.phone_number
    FROM usage_usagerecord u
    JOIN offices_office o ON o.id = u.office_id
    JOIN usage_service s ON s.id = u.service_id
    WHERE u.company_id = %s
    ORDER BY u.occurred_at DESC, u.id DESC
"""


FLAT_MB = 20.0  # RSS may grow this much between 10 % and 100 % of the export's rows


def export_benchmark(client, company_id: int, records: int) -> Result:
    """The CSV export of every record: rows/s, and memory while streaming: the process's
    RSS at every tenth of the rows. Flat: from 10 % to the end it grows ≤ FLAT_MB."""
    name = "/usage/export.csv all rows"
    target = f"≥ 50,000 rows/s, ≤ 100 MB growth, flat (10 %→100 % ≤ {FLAT_MB:.0f} MB)"
    # Baseline: the same rows through a server-side cursor into csv.writer.
    started = time.perf_counter()
    with raw_connect() as conn, conn.cursor(name="export") as cur:
        cur.itersize = 2000
        cur.execute(EXPORT_SQL, [company_id])
        sink = io.StringIO()
        writer = csv.writer(sink)
        baseline_rows = 0
        for row in cur:
            writer.writerow(row)
            baseline_rows += 1
            if baseline_rows % 10_000 == 0:
                sink.seek(0)
                sink.truncate()
    baseline = baseline_rows / (time.perf_counter() - started)

    rss_before = peak = _rss_mb()
    deciles: list[float] = []  # RSS (MB) when 10 %, 20 %, … of the rows had arrived
    started = time.perf_counter()
    response = client.get("/usage/export.csv")
    lines = 0
    if response.status_code == 200:
        chunks = response.streaming_content if response.streaming else [response.content]
        for n, chunk in enumerate(chunks):
            lines += chunk.count(b"\n")
            if n % 200 == 0:
                peak = max(peak, _rss_mb())
            while len(deciles) < 10 and lines - 1 >= records * (len(deciles) + 1) // 10:
                deciles.append(_rss_mb())
                peak = max(peak, deciles[-1])
    seconds = time.perf_counter() - started
    peak = max(peak, _rss_mb())
    growth = peak - rss_before
    rows = max(lines - 1, 0)  # minus the header line
    if response.status_code != 200:
        return Result(name, None, "rows/s", baseline, target=target, passed=False,
                      note=f"HTTP {response.status_code}: export not available")  # fmt: skip
    rate = rows / seconds
    late = max(deciles[1:], default=0.0) - deciles[0] if deciles else None
    flat = late is not None and late <= FLAT_MB
    passed = rate >= 50_000 and growth <= 100 and rows >= records and flat
    profile = "/".join(f"{mb - rss_before:.0f}" for mb in deciles)
    note = (f"{rows:,} rows in {seconds:.1f} s, peak growth {growth:.0f} MB; RSS growth at "
            f"10 %…100 % of the rows: {profile} MB")  # fmt: skip
    if not getattr(response, "streaming", False):
        note += "; NOT streamed (whole file built in memory)"
    print(f"  export: {rate:,.0f} rows/s ({note}); raw {baseline:,.0f} rows/s", flush=True)
    return Result(
        name, rate, "rows/s", baseline, target=target, passed=passed,
        details={"rows": rows, "seconds": seconds, "memory_growth_mb": growth,
                 "rss_deciles_mb": [round(mb - rss_before, 1) for mb in deciles],
                 "growth_10_to_100_mb": late,
                 "streaming": bool(getattr(response, "streaming", False))},
        note=note,
    )  # fmt: skip


BALANCE_SQL = """
    SELECT a.id, a.kind, a.office_id, a.balance FROM credits_account a
    WHERE a.company_id = %s ORDER BY a.kind, a.office_id;
"""
ALLOWANCE_SQL = """
    SELECT o.name, al.kind, al.included, al.used, al.cost_total, al.pool_drawn,
           al.wallet_drawn, al.ai_drawn, al.uncovered, al.events
    FROM credits_allowance al JOIN offices_office o ON o.id = al.office_id
    WHERE al.company_id = %s AND al.period = %s ORDER BY o.name, al.kind
"""


def balance_benchmarks(config: dict) -> list[Result]:
    from django.utils import timezone

    from bench.ingest import api_key_for
    from offices.models import Company

    offices, records = config["balance_offices"], config["balance_records"]
    print(f"balances: {offices} offices, a year of history ({records:,} records)", flush=True)
    dataset = dataset_ensure(
        name=f"balance-{records}", offices=offices, records=records,
        log=lambda m: print(m, flush=True),
    )  # fmt: skip
    company = Company.objects.get(pk=dataset.company_id)
    repeats = config["page_repeats"]
    period = timezone.now().date().replace(day=1)
    times_raw = []
    with raw_connect(autocommit=True) as conn:
        for _ in range(repeats + 1):
            started = time.perf_counter()
            conn.execute(BALANCE_SQL, [company.pk]).fetchall()
            conn.execute(ALLOWANCE_SQL, [company.pk, period]).fetchall()
            times_raw.append((time.perf_counter() - started) * 1000)
    baseline = percentile(times_raw[1:], 95)

    results = []
    client = _client(bench_admin_user(company))
    got = measure_get(client, "/balance/", repeats)
    results.append(_page_result("/balance/ (200 offices)", got, baseline))
    try:
        key = api_key_for(company.slug)
        got = measure_get(_client(None), "/api/v1/balance", repeats,
                          HTTP_AUTHORIZATION=f"Bearer {key}")  # fmt: skip
        results.append(_page_result("/api/v1/balance (200 offices)", got, baseline))
    except Exception as exc:  # noqa: BLE001 - an unavailable API is reported, not fatal
        results.append(
            Result(
                "/api/v1/balance (200 offices)",
                None,
                "ms p95",
                baseline,
                target=f"≤ {P95_MS:.0f} ms, ≤ {MAX_QUERIES} queries",
                passed=False,
                note=f"not measured: {exc!r}"[:300],
            )  # fmt: skip
        )
    if config.get("size") == "10m":
        for r in results:
            _unchanged_at_scale(r)
    for r in results:
        print(f"  {r.name}: {_ms(r.measured)} p95, {r.details.get('queries')} queries, "
              f"raw {baseline:.1f} ms", flush=True)  # fmt: skip
    return results


def _unchanged_at_scale(result: Result) -> None:
    """`/balance/` unchanged at 10M records: within its target, and none of its queries
    reads the usage records (so its cost does not grow with them); the latest 1M run's
    figure from bench/results is shown beside it (another run: a reference, not a test)."""
    import json
    from pathlib import Path

    if result.measured is None:
        return
    reads = result.details.get("reads_usage_records")
    result.passed = bool(result.passed) and not reads
    result.target += ", reads no usage records"
    reference = None
    for path in sorted((Path(__file__).resolve().parent / "results").glob("*.json"))[::-1]:
        data = json.loads(path.read_text())
        if data.get("config", {}).get("size", "1m") != "1m" or data.get("mode") != "full":
            continue
        found = [r for r in data["results"] if r["name"] == result.name and r["measured"]]
        if found:
            reference = (data["when"], found[0]["measured"], found[0]["details"].get("queries"))
            break
    notes = ["reads usage records" if reads else "reads no usage records"]
    if reference:
        when, p95, queries = reference
        notes.append(f"1M run {when}: {p95:.1f} ms p95, {queries} queries")
        result.details["reference_1m"] = {"when": when, "p95": p95, "queries": queries}
    result.note = "; ".join(filter(None, [result.note, *notes]))
