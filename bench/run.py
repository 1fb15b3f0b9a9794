"""The one entry point: `python -m bench [--quick | --size 10m] [--only SECTIONS]`,
sections among ingest,single,history,balance,statements.

`--size 10m` (or BENCH_SIZE=10m) first makes sure the 10M-record dataset is stored
(bench/dataset.py SCALE_10M), then runs ingest,history,balance by default with the
targets of issue 15: the history pages and export read its 2M-record company, batch
ingestion runs with the 10M records stored and must reach 20,000 events/s over HTTP.

Needs DATABASE_URL (PostgreSQL; the database is created and migrated if missing). Prints
benchmark | measured | baseline | ratio | target | PASS/FAIL and writes the same as JSON
to bench/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import sys
import time
import warnings
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SECTIONS = ("ingest", "single", "history", "balance", "statements")

FULL = {
    "batch_events": 200_000,
    "batch_size": 1000,
    "batch_offices": 20,
    "single_seconds": 20.0,
    "single_clients": 8,
    "history_records": 1_000_000,
    "history_offices": 50,
    "page_repeats": 20,
    "balance_offices": 200,
    "balance_records": 240_000,
    "statement_records": 1_000_000,
    "statement_offices": 50,
}
QUICK = {
    "batch_events": 20_000,
    "batch_size": 1000,
    "batch_offices": 20,
    "single_seconds": 5.0,
    "single_clients": 8,
    "history_records": 100_000,
    "history_offices": 50,
    "page_repeats": 10,
    "balance_offices": 200,
    "balance_records": 24_000,
    "statement_records": 50_000,
    "statement_offices": 50,
}

SIZES = ("1m", "10m")
SECTIONS_10M = ("ingest", "history", "balance")
SIZE_10M = {**FULL, "http_target": 20_000, "dataset_processes": 2}


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")
    # Measure the production code path: no DEBUG query log, no debug pages.
    os.environ["DEBUG"] = "False"
    if "DATABASE_URL" not in os.environ or not os.environ["DATABASE_URL"].startswith("postgres"):
        sys.exit("Set DATABASE_URL to a PostgreSQL database, e.g. postgres://…/ucp_bench")
    _create_database()
    import django

    django.setup()
    # 404s of pages not (yet) present are reported in the table, not logged per request.
    logging.getLogger("django.request").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No directory at")
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _create_database() -> None:
    import psycopg

    url = os.environ["DATABASE_URL"].replace("postgres://", "postgresql://", 1)
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = info.get("dbname")
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def _fmt(value, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value >= 1000:
        text = f"{value:,.0f}"
    elif isinstance(value, float):
        text = f"{value:.1f}" if value >= 10 else f"{value:.2f}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def print_table(results) -> None:
    rows = [("benchmark", "measured", "baseline", "ratio", "target", "result")]
    for r in results:
        verdict = {True: "PASS", False: "FAIL", None: "info"}[r.passed]
        if r.measured is None and r.passed is False:
            verdict = "NOT RUN"  # counted as a miss: the target was not shown to be met
        rows.append(
            (
                r.name,
                _fmt(r.measured, r.unit),
                _fmt(r.baseline, r.unit),
                "—" if r.ratio is None else f"{r.ratio:.0%}",
                r.target or "—",
                verdict,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for i, row in enumerate(rows):
        print(" | ".join(cell.ljust(widths[j]) for j, cell in enumerate(row)))
        if i == 0:
            print("-+-".join("-" * w for w in widths))
    notes = [r for r in results if r.note]
    if notes:
        print()
        for r in notes:
            print(f"* {r.name}: {r.note}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    parser.add_argument(
        "--size",
        choices=SIZES,
        default=os.environ.get("BENCH_SIZE", "1m"),
        help="stored usage records: 1m (default) or 10m (issue 15 targets); env BENCH_SIZE",
    )
    parser.add_argument("--only", default=None, help="comma-separated sections")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn measurements")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    if args.size not in SIZES:
        parser.error(f"unknown size {args.size!r} (BENCH_SIZE): one of {', '.join(SIZES)}")
    if args.quick and args.size != "1m":
        parser.error("--quick is the small smoke run: not with --size 10m")
    default = SECTIONS_10M if args.size == "10m" else SECTIONS
    sections = [s.strip() for s in (args.only or ",".join(default)).split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    config = dict(QUICK if args.quick else SIZE_10M if args.size == "10m" else FULL)
    config["size"] = args.size
    config["http"] = not args.no_http
    config["workers"] = args.workers or (2 * (os.cpu_count() or 1))

    started = time.perf_counter()
    _setup_django()
    from bench import history, ingest, statements

    print(
        f"bench: {'quick' if args.quick else 'full'} run, {args.size} records, sections "
        f"{', '.join(sections)}, {os.cpu_count()} cores, "
        f"database {os.environ['DATABASE_URL'].rsplit('/', 1)[-1]}",
        flush=True,
    )
    results = []
    if args.size == "10m":
        results.append(_dataset_result(history.history_dataset(config)))
    if "ingest" in sections:
        results += ingest.batch_benchmarks(config)
        results += ingest.controls_benchmarks(config)
    if "single" in sections:
        results += ingest.single_benchmarks(config)
    if "history" in sections:
        results += history.history_benchmarks(config)
    if "balance" in sections:
        results += history.balance_benchmarks(config)
    if "statements" in sections:
        results += statements.statement_benchmarks(config)
    elapsed = time.perf_counter() - started

    print()
    print_table(results)
    failed = [r.name for r in results if r.passed is False]
    print(f"\n{len(results)} measurements, {len(failed)} below target, {elapsed / 60:.1f} min")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(
        json.dumps(
            {
                "when": stamp,
                "mode": "quick" if args.quick else "full",
                "size": args.size,
                "machine": {"cores": os.cpu_count(), "python": platform.python_version()},
                "config": config,
                "seconds": round(elapsed, 1),
                "results": [r.as_dict() for r in results],
            },
            indent=2,
            default=str,
        )
    )
    print(f"written {path}")
    return 1 if (args.strict and failed) else 0


def _dataset_result(dataset):
    """The 10M dataset as a line of the table: records stored, generation time, disk."""
    from bench.common import Result, raw_connect

    with raw_connect() as conn:
        size = conn.execute(
            "SELECT pg_database_size(current_database()), "
            "COALESCE((SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
            "LEFT JOIN pg_inherits i ON i.inhrelid = c.oid "
            "WHERE c.relkind IN ('r', 'p') AND (c.relname = 'usage_usagerecord' "
            "OR i.inhparent = 'usage_usagerecord'::regclass)), 0)"
        ).fetchone()
    gib = 1024**3
    how = "reused" if dataset.reused else f"generated in {dataset.seconds / 60:.1f} min"
    note = (f"{dataset.companies} companies, {how}; usage table {size[1] / gib:.1f} GiB with "
            f"indexes, database {size[0] / gib:.1f} GiB")  # fmt: skip
    print(f"  dataset: {dataset.total_records:,} records, {note}", flush=True)
    return Result(
        "dataset (10M usage records)", float(dataset.total_records), "records",
        target="10,000,000 records, check_ledger clean", passed=dataset.total_records >= 10**7,
        details={"seconds": dataset.seconds, "reused": dataset.reused,
                 "timings": dataset.timings, "database_bytes": size[0],
                 "usage_table_bytes": size[1]},
        note=note,
    )  # fmt: skip
