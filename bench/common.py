"""Shared pieces of the benchmarks: results, timing, the catalog and bench companies."""

from __future__ import annotations

import datetime as dt
import math
import os
import time
from dataclasses import asdict, dataclass, field
from decimal import Decimal

import psycopg

# The catalog every bench company uses. Rates in credits per unit (SPEC §2 examples).
CATALOG = [
    ("call_domestic", "Domestic calls", "minute", Decimal("0.05"), "standard"),
    ("call_international", "International calls", "minute", Decimal("0.25"), "standard"),
    ("toll_free_inbound", "Toll-free inbound", "minute", Decimal("0.03"), "standard"),
    ("sms", "SMS", "message", Decimal("1"), "standard"),
    ("mms", "MMS", "message", Decimal("2"), "standard"),
    ("fax", "Fax", "page", Decimal("0.1"), "standard"),
    ("ai_agent", "AI agent", "conversation", Decimal("2"), "ai_agent"),
]
BENCH_PLAN = "bench-plan"
PLAN_INCLUDED = {"standard": Decimal("1000"), "ai_agent": Decimal("100")}


@dataclass
class Result:
    """One line of the results table."""

    name: str
    measured: float | None
    unit: str
    baseline: float | None = None
    target: str = ""
    passed: bool | None = None  # None: informational, no target
    details: dict = field(default_factory=dict)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.baseline:
            return None
        return self.measured / self.baseline

    def as_dict(self) -> dict:
        data = asdict(self)
        data["ratio"] = self.ratio
        return data


def percentile(values: list[float], pct: float) -> float:
    """Nearest-rank percentile (p95 of 20 samples is the 19th smallest)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return ordered[rank - 1]


class Stopwatch:
    def __enter__(self):
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.seconds = time.perf_counter() - self.start


def database_url() -> str:
    return os.environ["DATABASE_URL"]


def raw_connect(**kwargs) -> psycopg.Connection:
    """A plain psycopg connection to the bench database (for baselines and COPY)."""
    url = database_url().replace("postgres://", "postgresql://", 1)
    return psycopg.connect(url, **kwargs)


def ensure_catalog(*, included: bool = True):
    """The bench services and plan (catalog data, created once). `included=False` gives
    a plan without allowance, so every event draws on the pool (the hot path)."""
    from offices.models import Plan
    from usage.models import Service

    for code, name, unit, rate, kind in CATALOG:
        Service.objects.update_or_create(
            code=code,
            defaults={
                "name": name,
                "unit": unit,
                "rate": rate,
                "credit_kind": kind,
                "active": True,
            },
        )
    plan, _ = Plan.objects.update_or_create(
        code=BENCH_PLAN if included else f"{BENCH_PLAN}-payg",
        defaults={
            "name": "Bench plan" if included else "Bench plan, no allowance",
            "included_standard": PLAN_INCLUDED["standard"] if included else 0,
            "included_ai_agent": PLAN_INCLUDED["ai_agent"] if included else 0,
        },
    )
    return plan


def bench_care_user():
    """A customer-care superuser who may toggle pooling."""
    from django.contrib.auth.models import User

    user, created = User.objects.get_or_create(
        username="bench-care", defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        user.set_unusable_password()
        user.save()
    return user


def bench_admin_user(company):
    """A company admin of `company` (sees every page of it)."""
    from django.contrib.auth.models import User

    from offices.services import membership_grant

    user, created = User.objects.get_or_create(username=f"bench-admin-{company.slug}")
    if created:
        user.set_unusable_password()
        user.save()
    membership_grant(user=user, company=company)
    return user


def company_build(
    *,
    slug: str,
    offices: int,
    pooling: bool,
    pool_credits: Decimal | None,
    included: bool = True,
):
    """A company made through the services, like a real one: primary office `o000`,
    further offices `o001`…, pooling as asked, the pool topped up."""
    from credits.accounts import company_open, office_open
    from credits.services import credits_purchase, pooling_set

    plan = ensure_catalog(included=included)
    company = company_open(
        name=slug.replace("-", " ").title(),
        slug=slug,
        primary_office_name="Office 000",
        primary_office_slug="o000",
        plan=plan,
    )
    for n in range(1, offices):
        office_open(company=company, name=f"Office {n:03d}", slug=f"o{n:03d}", plan=plan)
    care = bench_care_user()
    if pooling:
        pooling_set(company=company, enabled=True, actor=care, reason="benchmark")
        company.refresh_from_db()
    if pool_credits:
        remaining = pool_credits
        while remaining > 0:  # one purchase is capped by CREDITS_PURCHASE_MAX
            step = min(remaining, Decimal("1000000"))
            credits_purchase(company=company, amount=step, actor=care, memo="benchmark top-up")
            remaining -= step
        credits_purchase(
            company=company, amount="100000", kind="ai_agent", actor=care, memo="benchmark"
        )
    return company


def company_drop(slug_prefix: str) -> int:
    """Remove bench companies (slug starting with `slug_prefix`) and everything they own.

    Usage records and ledger entries are append-only by trigger; the bench database is
    scratch space, so this session turns triggers off (superuser) for the clean-up."""
    with raw_connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT id FROM offices_company WHERE slug LIKE %s", [slug_prefix + "%"])
        ids = [r[0] for r in cur.fetchall()]
        if not ids:
            return 0
        cur.execute("SET LOCAL session_replication_role = replica")
        cur.execute("SELECT to_regclass('usage_usagekey') IS NOT NULL")
        guard = ("usage_usagekey",) if cur.fetchone()[0] else ()
        for table in (
            "usage_usagerecord",
            *guard,
            "usage_usageday",
            "credits_ledgerentry",
            "credits_poolingchange",
            "credits_allowance",
            "credits_account",
            "offices_membership",
        ):
            cur.execute(f"DELETE FROM {table} WHERE company_id = ANY(%s)", [ids])
        cur.execute(
            "DELETE FROM offices_officeaddon WHERE office_id IN "
            "(SELECT id FROM offices_office WHERE company_id = ANY(%s))",
            [ids],
        )
        cur.execute("DELETE FROM offices_office WHERE company_id = ANY(%s)", [ids])
        # Other apps (API keys, …) may hang rows on the company: remove whatever refers to it.
        cur.execute(
            """
            SELECT cl.relname, att.attname
            FROM pg_constraint con
            JOIN pg_class cl ON cl.oid = con.conrelid
            JOIN pg_attribute att ON att.attrelid = con.conrelid AND att.attnum = con.conkey[1]
            WHERE con.contype = 'f' AND con.confrelid = 'offices_company'::regclass
            """
        )
        for table, column in cur.fetchall():
            cur.execute(f'DELETE FROM "{table}" WHERE "{column}" = ANY(%s)', [ids])
        cur.execute("DELETE FROM offices_company WHERE id = ANY(%s)", [ids])
    return len(ids)


def utc(*args) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)
