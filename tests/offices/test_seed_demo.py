"""The demo seeder: the story it promises, and that a second run changes nothing."""

import datetime as dt
import io
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db.models import F, Sum

from credits.models import (
    Account,
    Alert,
    Allowance,
    ControlChange,
    CreditRequest,
    LedgerEntry,
    PoolCap,
    PoolingChange,
)
from offices.models import Company, CreditKind, Membership, Office, Role
from usage.models import Service, UsageRecord

ROOT = Path(__file__).resolve().parents[2]


def snapshot() -> dict:
    """Everything a second run must leave exactly as it was."""
    return {
        "usage": UsageRecord.objects.count(),
        "ledger": LedgerEntry.objects.count(),
        "pooling": PoolingChange.objects.count(),
        "log": LogEntry.objects.count(),
        "alerts": list(Alert.objects.order_by("pk").values_list("pk", "resolved_at")),
        "controls": ControlChange.objects.count(),
        "credit_requests": list(CreditRequest.objects.values_list("pk", "status")),
        "memberships": Membership.objects.count(),
        "offices": Office.objects.count(),
        "users": User.objects.count(),
        "balances": {a.pk: a.balance for a in Account.objects.all()},
        "allowances": list(
            Allowance.objects.order_by("pk").values_list("pk", "used", "cost_total", "uncovered")
        ),
    }


@pytest.mark.django_db
def test_seed_demo_tells_the_story_and_a_second_run_changes_nothing():
    # when: seeded on PostgreSQL
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    first = snapshot()

    # then: Acme with its four offices, pooling on since a change by customer care
    acme = Company.objects.get(slug="acme")
    assert (acme.name, acme.billing_timezone, acme.pooling_enabled) == (
        "Acme Corp",
        "America/New_York",
        True,
    )
    assert sorted(acme.offices.values_list("slug", "name", "is_primary")) == [
        ("austin", "Austin", False),
        ("berlin", "Berlin", False),
        ("hq", "Headquarters", True),
        ("london", "London", False),
    ]
    change = PoolingChange.objects.get(company=acme)
    assert change.enabled and change.changed_by.username == "care" and change.reason
    assert 20 <= (dt.datetime.now(dt.UTC) - change.created_at).days <= 26
    assert LogEntry.objects.filter(object_id=str(acme.pk), user__username="care").exists()
    # both states show in the usage history
    assert set(UsageRecord.objects.filter(company=acme).values_list("pooling_on", flat=True)) == {
        True,
        False,
    }
    # and Globex stays unpooled, with its own admin only
    globex = Company.objects.get(slug="globex")
    assert not globex.pooling_enabled and not globex.pooling_changes.exists()

    # the catalog
    assert set(Service.objects.values_list("code", flat=True)) >= {
        "call_domestic",
        "call_international",
        "toll_free_inbound",
        "sms",
        "mms",
        "fax",
        "ai_agent",
    }
    assert Service.objects.get(code="ai_agent").credit_kind == CreditKind.AI_AGENT

    # the logins and their roles
    care = User.objects.get(username="care")
    assert care.is_staff and care.has_perm("offices.change_pooling")
    assert care.check_password("demo-pass-2026")
    roles = set(
        Membership.objects.values_list("user__username", "company__slug", "office__slug", "role")
    )
    assert roles == {
        ("acme-admin", "acme", None, Role.COMPANY_ADMIN),
        ("hq-admin", "acme", "hq", Role.OFFICE_ADMIN),
        ("austin-admin", "acme", "austin", Role.OFFICE_ADMIN),
        ("berlin-admin", "acme", "berlin", Role.OFFICE_ADMIN),
        ("london-admin", "acme", "london", Role.OFFICE_ADMIN),
        ("globex-admin", "globex", None, Role.COMPANY_ADMIN),
    }
    for username in ("care", "acme-admin", "berlin-admin", "globex-admin"):
        assert f"{username} " in out.getvalue()
    assert "demo-pass-2026" in out.getvalue()

    # the usage: a few thousand events over at least 60 days, with people and numbers
    usage = UsageRecord.objects.filter(company=acme)
    assert usage.count() >= 2000
    first_at = usage.order_by("occurred_at").first().occurred_at
    last_at = usage.order_by("-occurred_at").first().occurred_at
    assert (last_at - first_at).days >= 60
    assert usage.filter(user_label="Dana Reyes").exclude(phone_number="").exists()
    # some office ran over its allowance and paid from its wallet or the pool
    over = Allowance.objects.filter(company=acme, cost_total__gt=F("included"))
    assert over.filter(wallet_drawn__gt=0).exists() and over.filter(pool_drawn__gt=0).exists()
    # AI agent usage of non-primary offices drew on the primary office's AI credits
    assert usage.filter(
        credit_kind=CreditKind.AI_AGENT, office__is_primary=False, ai_part__gt=0
    ).exists()
    # every balance is explained by its ledger
    for account in Account.objects.all():
        total = account.entries.aggregate(s=Sum("amount"))["s"] or Decimal(0)
        assert account.balance == total >= 0, account

    # the money controls (SPEC §8) show in the seeded history: one recharge, one open
    # alert, one cap, each set by customer care with an audit record
    assert LedgerEntry.objects.filter(entry_type="auto_recharge").count() == 1
    assert Alert.objects.filter(kind="low_balance", resolved_at__isnull=True).count() == 1
    assert PoolCap.objects.count() == 1
    assert ControlChange.objects.filter(changed_by=care).count() == 3
    # and one pending credit request of Berlin's admin, for the balance page to show
    (request,) = CreditRequest.objects.all()
    assert (request.office.slug, request.status, request.amount) == ("berlin", "pending", 250)
    assert request.requested_by.username == "berlin-admin"

    # when: run again, with another password
    call_command("seed_demo", "--password", "another-pass-1", stdout=io.StringIO())
    # then: no new records or entries, identical balances; the passwords were reset
    assert snapshot() == first
    care.refresh_from_db()
    assert care.check_password("another-pass-1")

    # when: someone changes their password, and the demo is seeded again without one
    care.set_password("my-own-pass-9")
    care.save()
    out = io.StringIO()
    call_command("seed_demo", stdout=out)
    # then: their password stands, and the listing says so
    care.refresh_from_db()
    assert care.check_password("my-own-pass-9")
    assert "care           (unchanged)" in out.getvalue()


def test_seed_demo_runs_twice_on_sqlite(tmp_path):
    """The demo must run on SQLite too, which stores decimals as floats."""
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'demo.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "config.settings.local",
    }

    def manage(*args) -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        return result.stdout + result.stderr

    migrated = manage("migrate", "-v0")
    # SQLite ignores the covering indexes' extra columns; that is no news to a newcomer.
    assert "W040" not in migrated and "WARNINGS" not in migrated
    first = manage("seed_demo")
    second = manage("seed_demo")
    assert "Usage events charged: 0," not in first
    assert "Usage events charged: 0, already charged:" in second
    assert "credit entries added: 0 " in second
