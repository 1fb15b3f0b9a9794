"""The database's cost of writing 1000 usage records, on two databases holding the same
dataset (e.g. a copy made with CREATE DATABASE … TEMPLATE before a schema change, and the
copy migrated):

    python scripts/write_cost_compare.py BEFORE_DB AFTER_DB [ROUNDS]

The same 1000 rows of company 1 (the bench's history dataset) are INSERTed, with new ids,
as happening an hour ago, alternating between the two databases, each batch in a
transaction that is rolled back; foreign keys are checked in the statement (SET
CONSTRAINTS ALL IMMEDIATE). Where a database has the guard table usage_usagekey, its rows
are written in the same statement. Prints the median milliseconds per batch."""

import statistics
import sys
import time
import uuid

import psycopg

COLS = (
    "company_id, office_id, service_id, external_id, credit_kind, quantity, rate, cost, "
    "occurred_at, period, allowance_part, pool_part, wallet_part, ai_part, uncovered, "
    "pooling_on, funding_account_id, funding_balance_after, user_label, phone_number, "
    "metadata, batch, created_by_id, created_at"
)
SELECT = (
    COLS.replace("external_id", "'mb-' || %(n)s || '-' || id")
    .replace("occurred_at", "now() - interval '1 hour'")
    .replace("created_at", "now()")
    .replace("batch", "%(batch)s::uuid")
)
PLAIN = f"INSERT INTO usage_usagerecord ({COLS}) SELECT {SELECT} FROM src"  # noqa: S608
GUARDED = (
    f"WITH new AS (INSERT INTO usage_usagerecord ({COLS}) SELECT {SELECT} FROM src "  # noqa: S608
    "RETURNING company_id, external_id, id, occurred_at) "
    "INSERT INTO usage_usagekey (company_id, external_id, record_id, occurred_at) "
    "SELECT * FROM new"
)


def connect(db: str):
    c = psycopg.connect(f"postgresql://postgres@127.0.0.1:5432/{db}", autocommit=True)
    c.execute(
        "CREATE TEMP TABLE src AS SELECT * FROM usage_usagerecord WHERE company_id = 1 "
        "ORDER BY id DESC LIMIT 1000"
    )
    guard = c.execute("SELECT to_regclass('usage_usagekey') IS NOT NULL").fetchone()[0]
    return c, GUARDED if guard else PLAIN


dbs = {"before": connect(sys.argv[1]), "after": connect(sys.argv[2])}
times = {k: [] for k in dbs}
rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 30
for n in range(rounds):
    for name in ("before", "after") if n % 2 else ("after", "before"):
        c, sql = dbs[name]
        with c.transaction(force_rollback=True):
            # Django's foreign keys are DEFERRABLE INITIALLY DEFERRED: checked at commit,
            # which a rolled-back batch never reaches; check them in the statement.
            c.execute("SET CONSTRAINTS ALL IMMEDIATE")
            t = time.perf_counter()
            c.execute(sql, {"n": n, "batch": str(uuid.uuid4())})
            times[name].append((time.perf_counter() - t) * 1000)
medians = {name: statistics.median(ts) for name, ts in times.items()}
for name, ts in times.items():
    print(f"{name}: median {medians[name]:.1f} ms per 1000 rows, min {min(ts):.1f}, n={len(ts)}")
print(f"after/before (median): {medians['after'] / medians['before']:.2f}")
