"""Large, internally consistent datasets written with COPY, and reused while unchanged.

A dataset is one or more companies (made through the services, pooling on) whose usage
history is generated here: events in time order, each charged by the SPEC §3 rule
(allowance of its office/kind/month first, then the pool or the AI agent account, the
rest uncovered), one usage ledger entry per account per batch of 1000 (a batch never
spans a month), a purchase at the start of every month, the allowance rows with their
rollups and the day rollups. `manage.py check_ledger` holds for it: its checks are run
on every freshly generated dataset (day rollups per period: `ledger_violations`), which
is registered only when they find nothing.

Record ids are assigned here (the sequence is moved past them), so each record's guard
row can be written beside it once the table `usage_usagekey` exists (issue 15), and the
monthly partitions are made first when `usage.partitions` exists: `_schema_extras`.

Several companies are generated in parallel processes (one COPY stream each, records
of a month interleaved across the process's companies in time order, as ingestion would
leave them). Above `REINDEX_FROM` records the table's secondary indexes are dropped
before the COPY and rebuilt after it (their definitions are kept in `bench_index` until
then, so an interrupted run restores them next time).

Datasets are keyed by name, sizes and a version (bumped when the generator changes, and
including the usage table's shape), recorded in the table `bench_dataset`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

from bench.common import CATALOG, PLAN_INCLUDED, company_build, company_drop, raw_connect

GENERATOR_VERSION = 5
UNIT = 10_000  # amounts are handled as integers of 1/10000 credit
MONTHS = 12  # a year of history, ending with the current (partial) month
REINDEX_FROM = 2_000_000  # drop + rebuild the secondary indexes around larger COPYs
COPY_CHUNK = 5_000  # lines per COPY write


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
GUARD_COLUMNS = "company_id, external_id, record_id, occurred_at"
LEDGER_COLUMNS = (
    "account_id, company_id, entry_type, amount, balance_after, reference, "
    "idempotency_key, usage_batch, memo, created_at"
)
ALLOWANCE_COLUMNS = (
    "office_id, company_id, kind, period, included, used, cost_total, pool_drawn, "
    "wallet_drawn, ai_drawn, uncovered, events"
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

# The 10M dataset (`python -m bench --size 10m`): one company of 2M records and 50 offices
# (the one the history bench reads: twice the 1M company, sharing the table with 8M
# records of others), two of 1M and sixty small ones of 100k with 10 offices each.
SCALE_10M = [(50, 2_000_000), (50, 1_000_000), (50, 1_000_000)] + [(10, 100_000)] * 60


@dataclass
class Dataset:
    name: str
    company_id: int  # the first company (the one benchmarks read)
    slug: str
    offices: int
    records: int  # of the first company
    reused: bool
    seconds: float
    total_records: int = 0
    companies: int = 1
    timings: dict = field(default_factory=dict)


def _fmt(units: int) -> str:
    sign = "-" if units < 0 else ""
    units = abs(units)
    return f"{sign}{units // UNIT}.{units % UNIT:04d}"


def _schema_key(cur) -> str:
    """The usage table's columns and shape (plain or partitioned, with or without guard
    table): a dataset made for another schema is generated again."""
    cur.execute(
        "SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY column_name) "
        "FROM information_schema.columns WHERE table_name = 'usage_usagerecord'"
    )
    columns = cur.fetchone()[0]
    cur.execute(
        "SELECT relkind::text, to_regclass('usage_usagekey') IS NOT NULL FROM pg_class "
        "WHERE oid = 'usage_usagerecord'::regclass"
    )
    shape = cur.fetchone()
    return hashlib.sha1(f"{columns}|{shape}".encode()).hexdigest()[:12]  # noqa: S324


def _registry(cur) -> None:
    cur.execute(
        """CREATE TABLE IF NOT EXISTS bench_dataset (
            name text PRIMARY KEY, version text NOT NULL, company_id bigint NOT NULL,
            records bigint NOT NULL, created_at timestamptz NOT NULL DEFAULT now())"""
    )


def dataset_ensure(
    *, name: str, offices: int, records: int, months: int = MONTHS, log=print
) -> Dataset:
    """The dataset `name`: one company with `offices` offices and `records` usage records
    spread over `months` months (the last one being the current month, to date),
    generated unless an identical one (same version, size, window and schema) exists."""
    return datasets_ensure(
        name=name, companies=[(offices, records)], months=months, processes=1, log=log
    )


def scale_dataset_ensure(*, processes: int = 2, log=print) -> Dataset:
    """The 10M-record dataset `scale10m` (SCALE_10M), generated in `processes` processes."""
    return datasets_ensure(name="scale10m", companies=SCALE_10M, processes=processes, log=log)


def datasets_ensure(
    *,
    name: str,
    companies: list[tuple[int, int]],
    months: int = MONTHS,
    processes: int = 2,
    log=print,
) -> Dataset:
    """One dataset of several companies, `companies` = [(offices, records), …]; a single
    company is named `bench-ds-<name>`, several `bench-ds-<name>-000`, `-001`, …"""
    started = time.perf_counter()
    single = len(companies) == 1
    slug = f"bench-ds-{name}" if single else f"bench-ds-{name}-000"
    first_offices, first_records = companies[0]
    total = sum(r for _, r in companies)
    with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
        _registry(cur)
        _indexes_restore(cur, log)
        start, end = _window(months)
        sizes = (
            f"{first_offices}-{first_records}"
            if single
            else hashlib.sha1(repr(companies).encode()).hexdigest()[:8]  # noqa: S324
        )
        version = f"v{GENERATOR_VERSION}-{sizes}-{start:%Y%m}-{_schema_key(cur)}"
        cur.execute(
            "SELECT d.company_id FROM bench_dataset d JOIN offices_company c "
            "ON c.id = d.company_id WHERE d.name = %s AND d.version = %s",
            [name, version],
        )
        row = cur.fetchone()
        if row:
            steady_state()
            return Dataset(name, row[0], slug, first_offices, first_records, True, 0.0,
                           total, len(companies))  # fmt: skip
        cur.execute("DELETE FROM bench_dataset WHERE name = %s", [name])
    timings = {}
    clock = time.perf_counter()
    company_drop(slug if single else f"bench-ds-{name}-")
    log(f"  generating dataset {name!r}: {len(companies)} companies, {total:,} usage records"
        f" ({first_records:,} in the first, {first_offices} offices), "
        f"{processes} process(es) …")  # fmt: skip
    built = []
    for i, (offices, _) in enumerate(companies):
        company_slug = slug if single else f"bench-ds-{name}-{i:03d}"
        built.append(company_build(slug=company_slug, offices=offices, pooling=True,
                                   pool_credits=None))  # fmt: skip
    timings["companies"] = time.perf_counter() - clock
    specs = [
        (company.pk, company.slug, records)
        for company, (_, records) in zip(built, companies, strict=True)
    ]
    _generate(specs, start=start, end=end, months=months, processes=processes,
              timings=timings, log=log)  # fmt: skip
    from usage.rollups import usage_days_rebuild

    clock = time.perf_counter()
    usage_days_rebuild([c.pk for c in built])  # the day rollups the allocation service keeps
    timings["day rollups"] = time.perf_counter() - clock
    clock = time.perf_counter()
    steady_state()
    timings["vacuum analyze"] = time.perf_counter() - clock
    seconds = time.perf_counter() - started
    clock = time.perf_counter()
    violations = ledger_violations([c.pk for c in built], per_day=False)
    timings["check_ledger"] = time.perf_counter() - clock
    if violations:
        raise RuntimeError(f"dataset {name!r} breaks check_ledger: {violations[:5]}")
    with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(
            "INSERT INTO bench_dataset (name, version, company_id, records) VALUES (%s,%s,%s,%s)",
            [name, version, built[0].pk, total],
        )
    log(f"  dataset {name!r} ready in {seconds:.1f} s ("
        + ", ".join(f"{k} {v:.1f} s" for k, v in timings.items())
        + "); check_ledger clean (day rollups per period)")  # fmt: skip
    return Dataset(name, built[0].pk, slug, first_offices, first_records, False, seconds,
                   total, len(companies), timings)  # fmt: skip


def ledger_violations(company_ids: list[int], *, per_day: bool = True) -> list[str]:
    """`manage.py check_ledger --company …` for these companies: its violations.

    `per_day=False` compares the day rollups with the records per period only: the
    per-local-day comparison costs (records × day rollups) per company on PostgreSQL 15
    (its "same time zone" test becomes a hash anti-join filtered row by row), ~5 min for
    a 500k-record company, hours at 10M; the rollups of a generated dataset are made by
    `usage_days_rebuild`, per local day, and checked per period."""
    from core.checks import LedgerReport, app_checkers, ledger_check

    if per_day:
        return ledger_check(company_ids).violations
    report = LedgerReport()
    for checks in app_checkers():
        checker = checks(company_ids, report)
        if "usage_days" in checker.checks:
            compare = checker._usage_days_compare  # noqa: SLF001 - the same check, per period
            checker.usage_days = lambda compare=compare: compare(by_day=False)
        checker.run()
    return report.violations


def steady_state() -> None:
    """What autovacuum does to long-lived tables: statistics, the visibility map (index-only
    scans) and no dead rows, so pages are measured in their steady state, not right after
    the ingestion benchmarks dropped their companies (cheap when there is nothing to do)."""
    tables = ["usage_usagerecord", "usage_usageday", "credits_allowance", "credits_ledgerentry"]
    with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
        if _guard_table(cur):
            tables.append("usage_usagekey")
        for table in tables:
            cur.execute(f"VACUUM ANALYZE {table}")


# ------------------------------------------------------------------ schema of issue 15


def _guard_table(cur) -> bool:
    cur.execute("SELECT to_regclass('usage_usagekey') IS NOT NULL")
    return cur.fetchone()[0]


def _schema_extras(cur, start: dt.datetime, end: dt.datetime) -> bool:
    """Before and after the partitioned schema (issue 15): make the monthly partitions of
    [start, end] when `usage.partitions` exists; say whether the guard table
    `usage_usagekey` exists (then each record gets its guard row)."""
    try:
        from usage.partitions import partitions_ensure
    except ImportError:
        pass
    else:
        partitions_ensure(start.date(), end.date() + dt.timedelta(days=1))
    return _guard_table(cur)


def _indexes_drop(cur, log) -> None:
    """Drop the usage table's secondary indexes (not those of its constraints), keeping
    their definitions in `bench_index` until `_indexes_restore` builds them again."""
    cur.execute("CREATE TABLE IF NOT EXISTS bench_index (name text PRIMARY KEY, def text)")
    cur.execute(
        """SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i
           JOIN pg_class c ON c.oid = i.indexrelid
           WHERE i.indrelid = 'usage_usagerecord'::regclass
             AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)"""
    )
    found = cur.fetchall()
    for index, definition in found:
        # A partitioned table's index reads `ON ONLY`: rebuild it on every partition.
        definition = definition.replace(" ON ONLY ", " ON ", 1)
        cur.execute(
            "INSERT INTO bench_index (name, def) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            [index, definition],
        )
        cur.execute(f'DROP INDEX "{index}"')
    log(f"  dropped {len(found)} secondary indexes of usage_usagerecord for the COPY")


def _indexes_restore(cur, log) -> None:
    """Build the indexes `_indexes_drop` removed, two at a time (one per core)."""
    cur.execute("SELECT to_regclass('bench_index') IS NOT NULL")
    if not cur.fetchone()[0]:
        return
    cur.execute("SELECT name, def FROM bench_index ORDER BY name")
    todo = cur.fetchall()
    if not todo:
        return
    started = time.perf_counter()
    lock = threading.Lock()
    errors = []

    def builder():
        with raw_connect(autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            conn.execute("SET max_parallel_maintenance_workers = 0")
            while True:
                with lock:
                    if not todo:
                        return
                    index, definition = todo.pop()
                try:
                    if not conn.execute("SELECT to_regclass(%s)", [index]).fetchone()[0]:
                        conn.execute(definition)
                    conn.execute("DELETE FROM bench_index WHERE name = %s", [index])
                except Exception as exc:  # noqa: BLE001 - reported below
                    errors.append(f"{index}: {exc!r}")

    threads = [threading.Thread(target=builder) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise RuntimeError(f"rebuilding usage indexes failed: {errors}")
    log(f"  rebuilt the secondary indexes of usage_usagerecord in "
        f"{time.perf_counter() - started:.1f} s")  # fmt: skip


# ------------------------------------------------------------------ generation


def _months(start: dt.datetime, end: dt.datetime, months: int) -> list[tuple]:
    """(first day, start second, end second) of each month of the window (epoch seconds)."""
    out = []
    for m in range(months):
        index = start.year * 12 + start.month - 1 + m
        first = dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)
        following = dt.datetime((index + 1) // 12, (index + 1) % 12 + 1, 1, tzinfo=dt.UTC)
        out.append((first.date(), first.timestamp(), min(following, end).timestamp()))
    return out


def _month_counts(records: int, months: list[tuple]) -> list[int]:
    """Records per month, in proportion to the month's time in the window (exact sum)."""
    span = months[-1][2] - months[0][1]
    counts, before, elapsed = [], 0, 0.0
    for _, lo, hi in months:
        elapsed += hi - lo
        upto = round(records * elapsed / span)
        counts.append(upto - before)
        before = upto
    return counts


def _generate(specs, *, start, end, months, processes, timings, log) -> None:
    """specs: [(company id, slug, records)]. Splits the companies over `processes`
    (largest first, to the least loaded), reserves the record ids, then each process
    COPYs its companies' records month by month with ids in month order."""
    window = _months(start, end, months)
    counts = {cid: _month_counts(records, window) for cid, _, records in specs}
    processes = max(1, min(processes, len(specs)))
    shares = [[] for _ in range(processes)]
    for spec in sorted(specs, key=lambda s: -s[2]):
        min(shares, key=lambda share: sum(s[2] for s in share)).append(spec)
    total = sum(s[2] for s in specs)
    clock = time.perf_counter()
    with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
        guard = _schema_extras(cur, start, end)
        # Reserve ids [first, first + total) from the table's sequence.
        cur.execute("SELECT pg_get_serial_sequence('usage_usagerecord', 'id')")
        sequence = cur.fetchone()[0]
        cur.execute(f"SELECT nextval('{sequence}')")
        first = cur.fetchone()[0]
        cur.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM usage_usagerecord")
        first = max(first, cur.fetchone()[0])
        cur.execute("SELECT setval(%s, %s)", [sequence, first + total - 1])
        if total >= REINDEX_FROM:
            _indexes_drop(cur, log)
    # Ids in month order, within a month one block per process.
    blocks, next_id = [{} for _ in range(processes)], first
    for m in range(len(window)):
        for p, share in enumerate(shares):
            blocks[p][m] = next_id
            next_id += sum(counts[cid][m] for cid, _, _ in share)
    jobs = [(share, window, counts, blocks[p], guard) for p, share in enumerate(shares)]
    if processes == 1:
        _generate_share(*jobs[0])
    else:
        _run_forked(jobs)
    timings["records COPY"] = time.perf_counter() - clock
    if total >= REINDEX_FROM:
        clock = time.perf_counter()
        with raw_connect(autocommit=True) as conn, conn.cursor() as cur:
            _indexes_restore(cur, log)
        timings["indexes"] = time.perf_counter() - clock


def _run_forked(jobs) -> None:
    import multiprocessing

    from django.db import connections

    connections.close_all()  # the children use their own psycopg connections
    ctx = multiprocessing.get_context("fork")
    errors = ctx.Queue()

    def child(job):
        try:
            _generate_share(*job)
        except BaseException as exc:  # noqa: BLE001 - reported to the parent
            errors.put(repr(exc)[:1000])
            raise

    children = [ctx.Process(target=child, args=(job,)) for job in jobs]
    for c in children:
        c.start()
    for c in children:
        c.join()
    failed = [c.exitcode for c in children if c.exitcode]
    if failed:
        problems = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
        raise RuntimeError(f"dataset generation failed in {len(failed)} process(es): {problems}")


class _CompanyHistory:
    """One company's charging state; `month()` gives that month's records in time order."""

    def __init__(self, cur, company_id: int, slug: str, records: int, services):
        self.cid = company_id
        self.rnd = random.Random(f"{slug}-{records}")  # noqa: S311 - reproducible test data
        cur.execute(
            "SELECT id FROM offices_office WHERE company_id = %s ORDER BY slug", [company_id]
        )
        self.offices = [r[0] for r in cur.fetchall()]
        # Offices are not equally busy: a few large ones, many small ones.
        self.office_weights = [1.0 / (1 + i % 10) for i in range(len(self.offices))]
        cur.execute(
            "SELECT kind, id FROM credits_account WHERE company_id = %s AND kind <> 'wallet'",
            [company_id],
        )
        accounts = dict(cur.fetchall())
        self.pool, self.ai = accounts["pool"], accounts["ai_agent"]
        self.services = services
        self.balance = {self.pool: 0, self.ai: 0}
        self.allowance = defaultdict(lambda: [0, 0, 0, 0, 0, 0])  # used, cost, pool, ai, unc, n
        self.ledger: list[str] = []
        self.n = 0
        self.batch = uuid.uuid4()
        self.in_batch = 0
        self.drawn = defaultdict(int)
        self.batch_last = ""

    def _ledger(self, account, amount, kind, when: str, reference, batch=None, memo=""):
        self.ledger.append(
            f"{account}\t{self.cid}\t{kind}\t{_fmt(amount)}\t{_fmt(self.balance[account])}\t"
            f"{reference}\t\t{batch or chr(92) + 'N'}\t{memo}\t{when}\n"
        )

    def _close_batch(self):
        for account, drawn in self.drawn.items():
            if drawn:
                reference = f"usage-batch:{self.batch}"
                self._ledger(
                    account, -drawn, "usage", self.batch_last, reference, self.batch,
                    "Usage (generated)",
                )  # fmt: skip
        self.drawn.clear()
        self.batch = uuid.uuid4()
        self.in_batch = 0

    def month(self, month: dt.date, lo: float, hi: float, count: int, out: list) -> None:
        """Append (epoch seconds, external id, occurred_at, COPY line without the id)."""
        rnd, cid = self.rnd, self.cid
        first = dt.datetime(month.year, month.month, 1, tzinfo=dt.UTC).isoformat()
        for account, amount in ((self.pool, MONTHLY_PURCHASE), (self.ai, MONTHLY_AI_PURCHASE)):
            self.balance[account] += amount
            self._ledger(account, amount, "purchase", first, "bench-monthly-purchase")
        if not count:
            return
        services = self.services
        codes = list(services)
        times = sorted(lo + rnd.random() * (hi - lo) for _ in range(count))
        chosen = rnd.choices(codes, weights=[TRAFFIC[c][0] for c in codes], k=count)
        offices = rnd.choices(self.offices, weights=self.office_weights, k=count)
        balance, allowance, drawn = self.balance, self.allowance, self.drawn
        pool, ai = self.pool, self.ai
        fromts, utc = dt.datetime.fromtimestamp, dt.UTC
        period = month.isoformat()
        batch_text = str(self.batch)
        for t, code, office in zip(times, chosen, offices, strict=True):
            service_id, kind, included, low, high, priced = services[code]
            quantity_text, cost = priced[rnd.randint(low, high)]
            row = allowance[(office, kind, month)]
            from_allowance = min(cost, included - row[0])
            account = ai if kind == "ai_agent" else pool
            funded = min(cost - from_allowance, balance[account])
            uncovered = cost - from_allowance - funded
            balance[account] -= funded
            drawn[account] += funded
            row[0] += from_allowance
            row[1] += cost
            row[2 if account == pool else 3] += funded
            row[4] += uncovered
            row[5] += 1
            n = self.n
            self.n += 1
            moment = fromts(t, utc).isoformat()
            created = fromts(t + 2, utc).isoformat()
            external = f"h-{n:08d}"
            out.append((t, cid, external, moment,
                f"{cid}\t{office}\t{service_id}\t{external}\t{kind}\t{quantity_text}\t"
                f"{moment}\t{period}\t{_fmt(from_allowance)}\t"
                f"{_fmt(funded) if account == pool else '0.0000'}\t0.0000\t"
                f"{_fmt(funded) if account == ai else '0.0000'}\t{_fmt(uncovered)}\tt\t"
                f"{account}\t{_fmt(balance[account])}\t{NAMES[n % len(NAMES)]}\t"
                f"+1555{n % 10_000_000:07d}\t{{}}\t{batch_text}\t\\N\t{created}\n"))  # fmt: skip
            self.batch_last = created
            self.in_batch += 1
            if self.in_batch == BATCH:
                self._close_batch()
                batch_text = str(self.batch)
        self._close_batch()  # a batch never spans a month (its ledger entry precedes the purchase)

    def allowance_lines(self, window) -> list[str]:
        """Every office has both allowance rows in every month, used or not."""
        lines = []
        for month, _, _ in window:
            for office in self.offices:
                for kind in ("standard", "ai_agent"):
                    used, cost, pool, ai, unc, events = self.allowance[(office, kind, month)]
                    lines.append(
                        f"{office}\t{self.cid}\t{kind}\t{month}\t"
                        f"{_fmt(int(PLAN_INCLUDED[kind] * UNIT))}\t{_fmt(used)}\t{_fmt(cost)}\t"
                        f"{_fmt(pool)}\t0.0000\t{_fmt(ai)}\t{_fmt(unc)}\t{events}\n"
                    )
        return lines


def _copy(cur, sql: str, lines) -> None:
    with cur.copy(sql) as copy:
        for i in range(0, len(lines), COPY_CHUNK):
            copy.write("".join(lines[i : i + COPY_CHUNK]))


def _generate_share(share, window, counts, first_ids, guard: bool) -> None:
    """COPY the records of the companies `share` month by month: each month's records of
    all of them in time order, ids from first_ids[month]; then ledger, allowances and
    balances. Foreign keys are not re-checked row by row (`session_replication_role`):
    the rows are built from the ids just read."""
    with raw_connect() as conn, conn.cursor() as cur:
        cur.execute("SET synchronous_commit = off")
        cur.execute("SELECT code, id, rate, credit_kind FROM usage_service")
        found = {code: (pk, rate, kind) for code, pk, rate, kind in cur.fetchall()}
        services = {}
        for code, *_ in CATALOG:
            pk, rate, kind = found[code]
            rate_units = int(rate * UNIT)
            _, low, high = TRAFFIC[code]
            priced = {  # quantity → (COPY text of quantity, rate and cost; cost in units)
                q: (f"{_fmt(q * UNIT)}\t{_fmt(rate_units)}\t{_fmt(q * rate_units)}", q * rate_units)
                for q in range(low, high + 1)
            }
            services[code] = (pk, kind, int(PLAN_INCLUDED[kind] * UNIT), low, high, priced)
        histories = [_CompanyHistory(cur, cid, slug, records, services)
                     for cid, slug, records in share]  # fmt: skip
        conn.commit()
        cur.execute("SET session_replication_role = replica")
        for m, (month, lo, hi) in enumerate(window):
            rows: list = []
            for history in histories:
                history.month(month, lo, hi, counts[history.cid][m], rows)
            rows.sort(key=lambda r: r[0])
            first = first_ids[m]
            _copy(cur, f"COPY usage_usagerecord (id, {USAGE_COLUMNS}) FROM STDIN",
                  [f"{first + i}\t{r[4]}" for i, r in enumerate(rows)])  # fmt: skip
            if guard:
                keys = [f"{r[1]}\t{r[2]}\t{first + i}\t{r[3]}\n" for i, r in enumerate(rows)]
                _copy(cur, f"COPY usage_usagekey ({GUARD_COLUMNS}) FROM STDIN", keys)
            conn.commit()
        _copy(cur, f"COPY credits_ledgerentry ({LEDGER_COLUMNS}) FROM STDIN",
              [line for h in histories for line in h.ledger])  # fmt: skip
        _copy(cur, f"COPY credits_allowance ({ALLOWANCE_COLUMNS}) FROM STDIN",
              [line for h in histories for line in h.allowance_lines(window)])  # fmt: skip
        cur.execute("SET session_replication_role = origin")
        for h in histories:
            for account, units in h.balance.items():
                cur.execute(
                    "UPDATE credits_account SET balance = %s, updated_at = now() WHERE id = %s",
                    [_fmt(units), account],
                )
        conn.commit()
