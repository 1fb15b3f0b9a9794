"""The one entry point: `python -m bench [--quick] [--only SECTIONS]`, sections among
ingest,single,history,balance,statements.

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
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers")
    parser.add_argument("--no-http", action="store_true", help="skip the gunicorn measurements")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 1 when a target is missed"
    )
    args = parser.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown sections: {', '.join(sorted(unknown))}")
    config = dict(QUICK if args.quick else FULL)
    config["http"] = not args.no_http
    config["workers"] = args.workers or (2 * (os.cpu_count() or 1))

    started = time.perf_counter()
    _setup_django()
    from bench import history, ingest, statements

    print(
        f"bench: {'quick' if args.quick else 'full'} run, sections {', '.join(sections)}, "
        f"{os.cpu_count()} cores, database {os.environ['DATABASE_URL'].rsplit('/', 1)[-1]}",
        flush=True,
    )
    results = []
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
