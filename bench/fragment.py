"""`/usage/?q=` with a number fragment whose records all lie in one month (issue 26 item
7), on the 2M-record company of the 10M dataset: `python -m bench.scale --only fragment`.

The generator gives a company's record n the number "+1555" + n (7 digits), in time
order, so "555012" is on records 120,000–129,999 (and a few others containing it): all in
the company's first month. Measured: the page (in-process, 20 GETs, p50/p95) and its
slowest query; the baseline is the page's main query in raw SQL (as `bench.history`)."""

from __future__ import annotations

from bench.common import Result, bench_admin_user
from bench.history import HISTORY_SQL, PER_PAGE, _client, measure_get, measure_sql

FRAGMENT = "555012"
UNFORMATTED = (
    "replace(replace(replace(replace(replace(replace(u.phone_number, ' ', ''), '-', ''), "
    "'(', ''), ')', ''), '.', ''), '/', '')"
)


def fragment_benchmarks(args) -> list[Result]:
    from bench.dataset import scale_dataset_ensure
    from offices.models import Company

    dataset = scale_dataset_ensure(log=lambda m: print(m, flush=True))
    company = Company.objects.get(pk=dataset.company_id)
    client = _client(bench_admin_user(company))
    got = measure_get(client, f"/usage/?q={FRAGMENT}", args.repeats)
    baseline = measure_sql(
        HISTORY_SQL.format(where=f"AND {UNFORMATTED} LIKE %s", limit=PER_PAGE + 1, offset=0),
        [company.pk, f"%{FRAGMENT}%"],
        args.repeats,
    )
    slow = got["slowest_sql"][0] if got["slowest_sql"] else {}
    print(f"  /usage/?q={FRAGMENT}: p50 {got['p50']:.1f} ms, p95 {got['p95']:.1f} ms, "
          f"{got['queries']} queries, slowest {slow.get('time')} s; raw {baseline:.1f} ms",
          flush=True)  # fmt: skip
    return [
        Result(
            f"/usage/?q={FRAGMENT} (a number fragment of one month), 10M",
            got["p95"],
            "ms p95",
            baseline,
            target="≤ 300 ms p95",
            passed=got["status"] == 200 and got["p95"] <= 300,
            details={k: v for k, v in got.items() if k != "slowest_sql"},
            note=f"slowest query {slow.get('time')} s: {slow.get('sql', '')[:120]}",
        )  # fmt: skip
    ]
