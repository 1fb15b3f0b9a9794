"""Time `check_ledger` on a PostgreSQL database holding 1,000,000 usage records.

    DATABASE_URL=postgres://…/scratch python scripts/check_ledger_bench.py [--records N]

Writes a fresh company ("bench-<n>") with 50 offices whose usage spans 12 periods and
draws allowances and wallets consistently (records, allowance rollups, one usage ledger
entry per batch and wallet), then runs the full check and prints the timings. Use a
scratch database: append-only rows cannot be removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

import django  # noqa: E402

django.setup()

from decimal import Decimal  # noqa: E402

from django.db import connection, transaction  # noqa: E402

from core.checks import ledger_check  # noqa: E402
from credits.accounts import company_open, office_open  # noqa: E402
from credits.services import credits_purchase  # noqa: E402
from offices.models import Company, Plan  # noqa: E402
from usage.models import Service, Unit  # noqa: E402

OFFICES = 50
PERIODS = 12
BATCH = 1000
INCLUDED = 100
WALLET = Decimal("100000")

GENERATE = """
WITH o AS (
    SELECT o.id AS office_id, a.id AS account_id,
           row_number() OVER (ORDER BY o.id) - 1 AS n
    FROM offices_office o JOIN credits_account a ON a.office_id = o.id AND a.kind = 'wallet'
    WHERE o.company_id = %(company)s
), g AS (
    SELECT g, o.office_id, o.account_id,
           (date '2025-01-01'
            + make_interval(months => ((g / %(offices)s) %% %(periods)s)::int))::date AS period
    FROM generate_series(0, %(records)s - 1) g JOIN o ON o.n = g %% %(offices)s
), r AS (
    SELECT g.*, row_number() OVER (PARTITION BY office_id, period ORDER BY g) AS rn FROM g
)
INSERT INTO usage_usagerecord (
    company_id, office_id, service_id, external_id, credit_kind, quantity, rate, cost,
    occurred_at, period, allowance_part, pool_part, wallet_part, ai_part, uncovered,
    pooling_on, funding_account_id, funding_balance_after, user_label, phone_number,
    metadata, batch, created_at)
SELECT %(company)s, office_id, %(service)s, 'ev-' || g, 'standard', 1, 1, 1,
       period + interval '12 hours', period,
       CASE WHEN rn <= %(included)s THEN 1 ELSE 0 END, 0,
       CASE WHEN rn <= %(included)s THEN 0 ELSE 1 END, 0, 0,
       false, account_id, NULL, '', '', '{}', md5(%(company)s || '-' || (g / %(batch)s))::uuid,
       now()
FROM r ORDER BY g
"""

# The guard of §6.4 (usage.UsageKey): one row per record.
KEYS = """
INSERT INTO usage_usagekey (company_id, external_id, record_id, occurred_at)
SELECT company_id, external_id, id, occurred_at FROM usage_usagerecord
WHERE company_id = %(company)s
"""

ALLOWANCES = """
INSERT INTO credits_allowance (office_id, company_id, kind, period, included, used, cost_total,
    pool_drawn, wallet_drawn, ai_drawn, uncovered, events)
SELECT office_id, company_id, credit_kind, period, %(included)s, SUM(allowance_part), SUM(cost),
       SUM(pool_part), SUM(wallet_part), SUM(ai_part), SUM(uncovered), COUNT(*)
FROM usage_usagerecord WHERE company_id = %(company)s
GROUP BY office_id, company_id, credit_kind, period
"""

ENTRIES = """
INSERT INTO credits_ledgerentry (account_id, company_id, entry_type, amount, balance_after,
    reference, idempotency_key, usage_batch, memo, created_at)
SELECT account_id, %(company)s, 'usage', -drawn,
       %(wallet)s - SUM(drawn) OVER (PARTITION BY account_id ORDER BY first_id),
       'usage-batch:' || batch, '', batch, 'bench', now()
FROM (
    SELECT funding_account_id AS account_id, batch, SUM(wallet_part) AS drawn, MIN(id) AS first_id
    FROM usage_usagerecord WHERE company_id = %(company)s
    GROUP BY funding_account_id, batch HAVING SUM(wallet_part) > 0
) s ORDER BY account_id, first_id
"""

BALANCES = """
UPDATE credits_account a SET balance = %(wallet)s - s.drawn
FROM (SELECT funding_account_id, SUM(wallet_part) AS drawn FROM usage_usagerecord
      WHERE company_id = %(company)s GROUP BY funding_account_id) s
WHERE a.id = s.funding_account_id
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("Run this on PostgreSQL (DATABASE_URL=postgres://…).")

    started = time.perf_counter()
    n = Company.objects.filter(slug__startswith="bench-").count() + 1
    plan, _ = Plan.objects.get_or_create(
        code="bench", defaults={"name": "Bench", "included_standard": INCLUDED}
    )
    service, _ = Service.objects.get_or_create(
        code="sms", defaults={"name": "SMS", "unit": Unit.MESSAGE, "rate": Decimal("1")}
    )
    company = company_open(
        name=f"Bench {n}",
        slug=f"bench-{n}",
        primary_office_name="Office 0",
        primary_office_slug="office-0",
        plan=plan,
    )
    for i in range(1, OFFICES):
        office_open(company=company, name=f"Office {i}", slug=f"office-{i}", plan=plan)
    for office in company.offices.all():
        credits_purchase(company=company, amount=WALLET, office=office, actor=None)
    params = {
        "company": company.pk,
        "service": service.pk,
        "records": args.records,
        "offices": OFFICES,
        "periods": PERIODS,
        "batch": BATCH,
        "included": INCLUDED,
        "wallet": WALLET,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        for sql in (GENERATE, KEYS, ALLOWANCES, ENTRIES, BALANCES):
            cursor.execute(sql, params)
        cursor.execute("ANALYZE")
    print(
        f"generated {args.records:,} records for {company.slug} in "
        f"{time.perf_counter() - started:.1f}s"
    )

    for label, ids in ((company.slug, [company.pk]), ("every company", None)):
        started = time.perf_counter()
        report = ledger_check(ids)
        elapsed = time.perf_counter() - started
        print(f"check_ledger ({label}): {elapsed:.2f}s — {report.counts}")
        for line in report.violations:
            print("  ", line)


if __name__ == "__main__":
    main()
