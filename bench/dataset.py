"""Large, internally consistent datasets written with COPY, and reused while unchanged.

A dataset is one company (made through the services, pooling on) whose usage history is
generated here: events in time order, each charged by the SPEC §3 rule (allowance of its
office/kind/month first, then the pool or the AI agent account, the rest uncovered), one
usage ledger entry per account per batch of 1000, monthly purchases, and the allowance
rows with their rollups. `manage.py check_ledger` invariants hold for it.

Datasets are keyed by name, size and a version (bumped when the generator changes, and
including the usage table's columns), recorded in the table `bench_dataset`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import random
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

from bench.common import CATALOG, PLAN_INCLUDED, company_build, company_drop, raw_connect

GENERATOR_VERSION = 4
UNIT = 10_000  # amounts are handled as integers of 1/10000 credit
MONTHS = 12  # a year of history, ending with the current (partial) month


def _window(months: int = MONTHS) -> tuple[dt.datetime, dt.datetime]:
    """From the first day of the month `months - 1` months ago to the start of this hour."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    index = now.year * 12 + now.month - 1 - (months - 1)
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC), now


MONTHLY_PURCHASE = 60_000 * UNIT  # standard credits bought into the pool each month
MONTHLY_AI_PURCHASE = 3_000 * UNIT
BATCH = 1000

USAGE_COLUMNS = (
    "company_id, office_id, service_id, external_id, credit_kind, quantity, rate, cost, "
    "occurred_at, period, allowance_part, pool_part, wallet_part, ai_part, uncovered, "
    "pooling_on, funding_account_id, funding_balance_after, user_label, phone_number, "
    "metadata, batch, created_by_id, created_at"
)
# Relative frequency and quantity range (units) of each service in generated traffic.
TRAFFIC = {
    "call_domestic": (30, 1, 30),
    "call_international": (10, 1, 20),
    "toll_free_inbound": (10, 1, 15),
    "sms": (35, 1, 3),
    "mms": (5, 1, 2),
    "fax": (3, 1, 10),
    "ai_agent": (7, 1, 2),
}
NAMES = [f"{first} {last}" for first in ("Ana", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus",
         "Hana", "Ivo", "Jo") for last in ("Ng", "Ortiz", "Patel", "Quinn", "Rossi")]  # fmt: skip


@dataclass
class Dataset:
    name: str
    company_id: int
    slug: str
    offices: int
    records: int
    reused: bool
    seconds: float


def _fmt(units: int) -> str:
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // UNIT}.{units % UNIT:04d}"


def _schema_key(cur) -> str:
    cur.execute(
        "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) "
        "FROM information_schema.columns WHERE table_name = 'usage_usagerecord'"
    )
    return hashlib.sha1(cur.fetchone()[0].encode()).hexdigest()[:12]  # noqa: S324


def _registry(cur) -> None:
    cur.execute(
        """CREATE TABLE IF NOT EXISTS bench_dataset (
            name text PRIMARY KEY, version text NOT NULL, company_id bigint NOT NULL,
            records bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"""
    )


def dataset_ensure(
    *, name: str, offices: int, records: int, months: int = MONTHS, log=print
) -> Dataset:
    """The dataset `name` with `offices` offices and `records` usage records spread over
    `months` months (the last one being the current month, to date), generated unless an
    identical one (same version, size, window and schema) already exists."""
    started = time.perf_counter()
    slug = f"bench-ds-{name}"
    with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
        _registry(cur)
        start, end = _window(months)
        version = f"v{GENERATOR_VERSION}-{offices}-{records}-{start:%Y%m}-{_schema_key(cur)}"
        cur.execute(
            "SELECT d.company_id FROM bench_dataset d JOIN offices_company c "
            "ON c.id = d.company_id WHERE d.name = %s AND d.version = %s",
            [name, version],
        )
        row = cur.fetchone()
        if row:
            steady_state()
            return Dataset(name, row[0], slug, offices, records, True, 0.0)
        cur.execute("DELETE FROM bench_dataset WHERE name = %s", [name])
    company_drop(slug)
    log(f"  generating dataset {name!r}: {offices} offices, {records:,} usage records …")
    company = company_build(slug=slug, offices=offices, pooling=True, pool_credits=None)
    _generate(company, offices=offices, records=records, start=start, end=end, months=months)
    from usage.rollups import usage_days_rebuild

    usage_days_rebuild([company.pk])  # the day rollups the allocation service would keep
    steady_state()
    with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO bench_dataset (name, version, company_id, records) VALUES (%s,%s,%s,%s)",
            [name, version, company.pk, records],
        )
    seconds = time.perf_counter() - started
    log(f"  dataset {name!r} ready in {seconds:.1f} s")
    return Dataset(name, company.pk, slug, offices, records, False, seconds)


def steady_state() -> None:
    """What autovacuum does to long-lived tables: statistics, the visibility map (index-only
    scans) and no dead rows, so pages are measured in their steady state, not right after
    the ingestion benchmarks dropped their companies (cheap when there is nothing to do)."""
    tables = ("usage_usagerecord", "usage_usageday", "credits_allowance", "credits_ledgerentry")
    with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
        for table in tables:
            cur.execute(f"VACUUM ANALYZE {table}")


def _month_start(moment: dt.datetime) -> dt.date:
    return moment.date().replace(day=1)


def _generate(company, *, offices: int, records: int, start, end, months: int = MONTHS) -> None:
    rnd = random.Random(f"{company.slug}-{records}")  # noqa: S311 - reproducible test data
    with raw_connect() as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT id, slug FROM offices_office WHERE company_id = %s ORDER BY slug", [company.pk]
        )
        office_ids = [r[0] for r in cur.fetchall()]
        cur.execute("SELECT code, id, rate, credit_kind FROM usage_service")
        services = {code: (pk, rate, kind) for code, pk, rate, kind in cur.fetchall()}
        cur.execute(
            "SELECT kind, id FROM credits_account WHERE company_id = %s AND kind <> 'wallet'",
            [company.pk],
        )
        accounts = dict(cur.fetchall())
        pool_id, ai_id = accounts["pool"], accounts["ai_agent"]

        codes = [c for c, *_ in CATALOG]
        weights = [TRAFFIC[c][0] for c in codes]
        rate_units = {c: int(services[c][1] * UNIT) for c in codes}
        span = (end - start).total_seconds()
        # Offices are not equally busy: a few large ones, many small ones.
        office_weights = [1.0 / (1 + i % 10) for i in range(len(office_ids))]
        times = sorted(rnd.random() * span for _ in range(records))
        chosen_services = rnd.choices(codes, weights=weights, k=records)
        chosen_offices = rnd.choices(office_ids, weights=office_weights, k=records)

        included = {k: int(v * UNIT) for k, v in PLAN_INCLUDED.items()}
        allowance = defaultdict(lambda: [0, 0, 0, 0, 0, 0])  # used, cost, pool, ai, unc, n
        balance = {pool_id: 0, ai_id: 0}
        ledger = io.StringIO()
        usage = io.StringIO()
        current_month = None
        batch_id = uuid.uuid4()
        batch_drawn = defaultdict(int)
        batch_last = start

        def ledger_row(account, amount, kind, when, reference, batch_uuid=None, memo=""):
            ledger.write(
                f"{account}\t{company.pk}\t{kind}\t{_fmt(amount)}\t{_fmt(balance[account])}\t"
                f"{reference}\t\t{batch_uuid or chr(92) + 'N'}\t{memo}\t{when.isoformat()}\n"
            )

        def close_batch():
            nonlocal batch_id
            for account, drawn in batch_drawn.items():
                if drawn:
                    ledger_row(
                        account,
                        -drawn,
                        "usage",
                        batch_last,
                        f"usage-batch:{batch_id}",
                        batch_id,
                        "Usage (generated)",
                    )
            batch_drawn.clear()
            batch_id = uuid.uuid4()

        for n in range(records):
            moment = start + dt.timedelta(seconds=times[n])
            month = _month_start(moment)
            if month != current_month:
                current_month = month
                first = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC)
                for account, amount in ((pool_id, MONTHLY_PURCHASE), (ai_id, MONTHLY_AI_PURCHASE)):
                    balance[account] += amount
                    ledger_row(account, amount, "purchase", first, "bench-monthly-purchase")
            code = chosen_services[n]
            service_id, _, kind = services[code]
            office = chosen_offices[n]
            low, high = TRAFFIC[code][1], TRAFFIC[code][2]
            quantity = rnd.randint(low, high) * UNIT
            cost = (quantity * rate_units[code] + UNIT // 2) // UNIT
            row = allowance[(office, kind, month)]
            from_allowance = min(cost, included[kind] - row[0])
            account = ai_id if kind == "ai_agent" else pool_id
            funded = min(cost - from_allowance, balance[account])
            uncovered = cost - from_allowance - funded
            balance[account] -= funded
            batch_drawn[account] += funded
            row[0] += from_allowance
            row[1] += cost
            row[2 if account == pool_id else 3] += funded
            row[4] += uncovered
            row[5] += 1
            pool_part = funded if account == pool_id else 0
            ai_part = funded if account == ai_id else 0
            created = moment + dt.timedelta(seconds=2)
            batch_last = created
            usage.write(
                f"{company.pk}\t{office}\t{service_id}\th-{n:08d}\t{kind}\t{_fmt(quantity)}\t"
                f"{_fmt(rate_units[code])}\t{_fmt(cost)}\t{moment.isoformat()}\t{month}\t"
                f"{_fmt(from_allowance)}\t{_fmt(pool_part)}\t0.0000\t{_fmt(ai_part)}\t"
                f"{_fmt(uncovered)}\tt\t{account}\t{_fmt(balance[account])}\t"
                f"{NAMES[n % len(NAMES)]}\t+1555{n % 10_000_000:07d}\t{{}}\t{batch_id}\t\\N\t"
                f"{created.isoformat()}\n"
            )
            if (n + 1) % BATCH == 0:
                close_batch()
        close_batch()

        with cur.copy(f"COPY usage_usagerecord ({USAGE_COLUMNS}) FROM STDIN") as copy:
            copy.write(usage.getvalue())
        # The guard of "an id is charged once per company" (usage.UsageKey), when the
        # schema has it: one row per record.
        cur.execute("SELECT to_regclass('usage_usagekey') IS NOT NULL")
        if cur.fetchone()[0]:
            cur.execute(
                "INSERT INTO usage_usagekey (company_id, external_id, record_id, occurred_at) "
                "SELECT company_id, external_id, id, occurred_at FROM usage_usagerecord "
                "WHERE company_id = %s",
                [company.pk],
            )
        with cur.copy(
            "COPY credits_ledgerentry (account_id, company_id, entry_type, amount, "
            "balance_after, reference, idempotency_key, usage_batch, memo, created_at) "
            "FROM STDIN"
        ) as copy:
            copy.write(ledger.getvalue())
        # Every office has both allowance rows in every month, used or not.
        with cur.copy(
            "COPY credits_allowance (office_id, company_id, kind, period, included, used, "
            "cost_total, pool_drawn, wallet_drawn, ai_drawn, uncovered, events) FROM STDIN"
        ) as copy:
            for m in range(months):
                month = dt.date(start.year + (start.month - 1 + m) // 12,
                                (start.month - 1 + m) % 12 + 1, 1)  # fmt: skip
                for office in office_ids:
                    for kind in ("standard", "ai_agent"):
                        used, cost, pool, ai, unc, events = allowance[(office, kind, month)]
                        copy.write(
                            f"{office}\t{company.pk}\t{kind}\t{month}\t{_fmt(included[kind])}\t"
                            f"{_fmt(used)}\t{_fmt(cost)}\t{_fmt(pool)}\t0.0000\t{_fmt(ai)}\t"
                            f"{_fmt(unc)}\t{events}\n"
                        )
        for account, units in balance.items():
            cur.execute(
                "UPDATE credits_account SET balance = %s, updated_at = now() WHERE id = %s",
                [_fmt(units), account],
            )
