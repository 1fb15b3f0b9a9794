"""Where one batch's time goes, and how long it holds the company's pool:
`python -m bench.locked [--batches N]` (DATABASE_URL: the bench database; with the 10M
dataset in it, the rows go into a table of that size).

One client charges N batches of 1000 events into a fresh company with pooling on and no
included allowance (every event draws on the pool), as the batch benchmark does. Per batch
it prints the median wall time of `usage_ingest`, the median time from the pool's
`SELECT … FOR UPDATE` to the return (the section every other batch of the company waits
for, plus the records handed back after the commit), and each statement's mean time per
batch. COPY runs outside the cursor's execute and is not listed: it is the rest of the
locked section. While pooling is on, one company's batch rate is at most 1000 events per
locked section (docs/scaling.md, "The single hot pool row").
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections import defaultdict

from bench.run import _setup_django

PREFIX = "bench-locked"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.locked")
    parser.add_argument("--batches", type=int, default=30)
    args = parser.parse_args(argv)
    _setup_django()
    from django.db import connection

    from bench.common import company_build, company_drop
    from bench.ingest import POOL_CREDITS, chunks, make_events, to_service_events
    from usage.services import usage_ingest

    company_drop(PREFIX)
    company = company_build(
        slug=PREFIX, offices=20, pooling=True, pool_credits=POOL_CREDITS, included=False
    )
    events = make_events(args.batches * 1000, 20, tag="l")
    batches = [to_service_events(b) for b in chunks(events, 1000)]
    state: dict = {}

    def timed(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            if "lock" not in state and "FOR UPDATE" in sql and "credits_account" in sql:
                state["lock"] = started
            key = " ".join(sql.split())[:70]
            state["statements"].append((key, time.perf_counter() - started))

    warm_up = 3
    totals, locked, statements = [], [], defaultdict(float)
    try:
        for n, batch in enumerate(batches):
            state.clear()
            state["statements"] = []
            with connection.execute_wrapper(timed):
                started = time.perf_counter()
                usage_ingest(company=company, events=batch)
                ended = time.perf_counter()
            if n < warm_up:
                continue
            totals.append(ended - started)
            locked.append(ended - state.get("lock", ended))
            for key, seconds in state["statements"]:
                statements[key] += seconds
    finally:
        company_drop(PREFIX)
    measured = len(totals)
    print(
        f"{measured} batches of 1000: usage_ingest {statistics.median(totals) * 1000:.1f} ms "
        f"median, from the pool's lock to the return {statistics.median(locked) * 1000:.1f} ms"
    )
    for key, seconds in sorted(statements.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds / measured * 1000:7.2f} ms  {key}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
