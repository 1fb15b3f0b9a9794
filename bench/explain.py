"""EXPLAIN ANALYZE of the history page's queries on the 1M-row dataset:
`python -m bench.explain [--records N]` (the dataset must exist: run `python -m bench` first).

Prints, per filter, the plan's top node, the index used and the execution time, so a
change of indexes can be judged before and after.
"""

from __future__ import annotations

import argparse
import json

from bench.common import raw_connect
from bench.history import HISTORY_SQL, PER_PAGE, _scenarios


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.explain")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument(
        "--size", choices=("1m", "10m"), default="1m",
        help="10m: the 2M-record company of the 10M dataset (python -m bench --size 10m)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    name = "history" if args.records == 1_000_000 else f"history-{args.records}"
    if args.size == "10m":
        name = "scale10m"
    with raw_connect(autocommit=True) as conn:
        row = conn.execute("SELECT company_id FROM bench_dataset WHERE name = %s", [name])
        found = row.fetchone()
        if not found:
            raise SystemExit(f"no dataset {name!r}: run `python -m bench` first")
        company_id = found[0]
        filters, combined = _scenarios(company_id)
        cases = [("first page", "", [], 0), ("deep page", "", [], 25_000)]
        cases += [(n, where, params, 0) for n, (_, where, params) in filters.items()]
        cases.append(("all combined", combined[1], combined[2], 0))
        cases.append(("count(*) of the company", None, [], 0))
        for label, where, params, offset in cases:
            if where is None:
                sql, args_ = "SELECT count(*) FROM usage_usagerecord WHERE company_id = %s", []
            else:
                sql = HISTORY_SQL.format(where=where, limit=PER_PAGE + 1, offset=offset)
                args_ = params
            plan = conn.execute(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + sql, [company_id, *args_]
            ).fetchone()[0]
            plan = plan[0] if isinstance(plan, list) else json.loads(plan)[0]
            print(f"{label:28} {plan['Execution Time']:9.1f} ms  {_indexes(plan['Plan'])}")
    return 0


def _indexes(node) -> str:
    found = []

    def walk(n):
        kind = n["Node Type"]
        if "Index Name" in n:
            found.append(f"{kind} {n['Index Name']}")
        elif kind in ("Seq Scan", "Parallel Seq Scan") and n.get("Relation Name", "").startswith(
            "usage"
        ):
            found.append(f"{kind} usage_usagerecord")
        for child in n.get("Plans", []):
            walk(child)

    walk(node)
    return "; ".join(dict.fromkeys(found))


if __name__ == "__main__":
    raise SystemExit(main())
