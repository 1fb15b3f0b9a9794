"""Statements and what-if (SPEC §9): the demo's months checked against sums of the stored
records, the pages, CSV, PDF and API, scope, bad input, and that a replay writes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import defaultdict
from decimal import Decimal
from unittest import mock

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.models import Count, Q, Sum
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.money import ZERO
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry, PoolingChange
from credits.periods import period_of
from credits.services import credits_purchase, pooling_set
from offices.models import Company, CreditKind
from offices.selectors import company_scope
from tests.factories import company_admin, event, office_admin
from usage.api_auth import api_key_create
from usage.models import UsageDay, UsageRecord
from usage.services import usage_ingest
from usage.statement_views import period_choices
from usage.statements import period_bounds, statement_build
from usage.whatif import whatif_replay

PARTS = ("allowance_part", "pool_part", "wallet_part", "ai_part", "uncovered")


def naive_replay(company, period) -> dict[int, Decimal]:
    """An independent replay for the test: every standard record charged in the period,
    in id order, paid from one pool filled by the standard inflows written up to it."""
    start, end = period_bounds(period, company.tz)
    standard = Q(account__kind__in=[AccountKind.POOL, AccountKind.WALLET])
    pool = sum(
        (
            e.amount
            for e in LedgerEntry.objects.filter(standard, company=company, created_at__lt=start)
        ),
        ZERO,
    )
    inflows = list(
        LedgerEntry.objects.filter(
            standard,
            company=company,
            created_at__gte=start,
            created_at__lt=end,
            entry_type__in=[
                EntryType.PURCHASE,
                EntryType.GRANT,
                EntryType.ADJUSTMENT,
                EntryType.AUTO_RECHARGE,
            ],
        ).order_by("created_at", "id")
    )
    uncovered: dict[int, Decimal] = defaultdict(lambda: ZERO)
    for r in UsageRecord.objects.filter(
        company=company, credit_kind=CreditKind.STANDARD, created_at__gte=start, created_at__lt=end
    ).order_by("id"):
        while inflows and inflows[0].created_at <= r.created_at:
            pool = max(pool + inflows.pop(0).amount, ZERO)
        rest = r.cost - r.allowance_part
        paid = min(rest, pool)
        pool -= paid
        uncovered[r.office_id] += rest - paid
    return uncovered


@pytest.mark.django_db
def test_demo_statements_tie_out_and_what_if_matches_the_records():
    # given the demo: Acme (pooling turned on 25 days ago) and Globex (pooling off)
    call_command("seed_demo", stdout=io.StringIO())
    acme = Company.objects.get(slug="acme")
    turned_on = PoolingChange.objects.get(company=acme).created_at
    checked_whatifs = 0
    for company in Company.objects.all():
        scope = company_scope(company)
        months = sorted(period_choices(company))
        assert len(months) >= 3  # about 75 days of history
        for text in months:
            period = dt.date.fromisoformat(text + "-01")
            start, end = period_bounds(period, company.tz)
            # when the statement of each seeded month is built
            statement = statement_build(scope, period=period)
            # then it ties out
            assert statement.ties_out
            # and each balance line is the ledger's, summed here independently
            for line in statement.balances:
                entries = LedgerEntry.objects.filter(account_id=line.account_id)
                before = entries.filter(created_at__lt=start).aggregate(s=Sum("amount"))["s"]
                upto = entries.filter(created_at__lt=end).aggregate(s=Sum("amount"))["s"]
                assert line.opening == (before or ZERO)
                assert line.closing == (upto or ZERO)
                during = entries.filter(created_at__gte=start, created_at__lt=end)
                usage = during.filter(entry_type=EntryType.USAGE).aggregate(s=Sum("amount"))["s"]
                assert line.usage == (usage or ZERO)
                bought = during.filter(entry_type=EntryType.PURCHASE).aggregate(s=Sum("amount"))
                assert line.purchases == (bought["s"] or ZERO)
            # and each office line is the sum of its usage records, and of its day rollups
            for line in statement.offices:
                records = UsageRecord.objects.filter(
                    office_id=line.office_id, credit_kind=line.kind, period=period
                ).aggregate(n=Count("id"), cost=Sum("cost"), **{p: Sum(p) for p in PARTS})
                f = line.figures
                assert (f.events, f.cost_total) == (records["n"], records["cost"] or ZERO)
                assert (f.used, f.pool_drawn, f.wallet_drawn, f.ai_drawn, f.uncovered) == tuple(
                    records[p] or ZERO for p in PARTS
                )
                days = UsageDay.objects.filter(
                    office_id=line.office_id,
                    credit_kind=line.kind,
                    day__gte=period,
                    day__lt=end.date(),
                ).aggregate(cost=Sum("cost"), n=Sum("events"))
                assert (days["n"] or 0, days["cost"] or ZERO) == (f.events, f.cost_total)
            # and the what-if of Acme's months before pooling was turned on equals an
            # independent replay and the actual overage of the records
            if company == acme and start < turned_on:
                whatif = whatif_replay(company, period=period)
                expected = naive_replay(company, period)
                for office in whatif.offices:
                    actual = UsageRecord.objects.filter(
                        office_id=office.office_id,
                        credit_kind=CreditKind.STANDARD,
                        created_at__gte=start,
                        created_at__lt=end,
                    ).aggregate(s=Sum("uncovered"))["s"]
                    assert office.actual_uncovered == (actual or ZERO)
                    assert office.replayed_uncovered == expected[office.office_id]
                checked_whatifs += 1
    assert checked_whatifs >= 2
    # The demo's story: in October Berlin and London ran over while other wallets held
    # thousands; pooled, nothing would have gone uncovered.
    october = whatif_replay(acme, period=period_of(turned_on, acme.tz).replace(day=1))
    previous = whatif_replay(acme, period=(october.period - dt.timedelta(days=1)).replace(day=1))
    # (the month pooling was turned on may have overage too: the demo caps London's pool
    # draws, and a cap is not part of the replay)
    ran_over = previous if previous.actual_uncovered else october
    assert ran_over.actual_uncovered > 0 and ran_over.replayed_uncovered == 0
    assert all(o.idle_elsewhere > 0 for o in ran_over.offices if o.actual_uncovered)


@pytest.fixture
def history(company, care):
    """Acme (pooling off): austin buys 5, runs over; a late event of last month; berlin's
    wallet holds 40 it never uses."""
    offices = {o.slug: o for o in company.offices.all()}
    credits_purchase(company=company, amount="5", office=offices["austin"], actor=care)
    credits_purchase(company=company, amount="40", office=offices["berlin"], actor=care)
    usage_ingest(
        company=company,
        events=[event(f"a{i}", office="austin", quantity="10") for i in range(12)]
        + [event("b1", office="berlin", quantity="3")],
    )
    return company


@pytest.mark.django_db
def test_allowance_rollups_equal_the_sums_of_the_records(history):
    period = period_of(dt.datetime.now(dt.UTC), history.tz)
    statement = statement_build(company_scope(history), period=period)
    assert statement.ties_out
    for row in Allowance.objects.filter(company=history, period=period):
        sums = UsageRecord.objects.filter(
            office=row.office, credit_kind=row.kind, period=period
        ).aggregate(n=Count("id"), cost=Sum("cost"), **{p: Sum(p) for p in PARTS})
        assert row.events == sums["n"] and row.cost_total == (sums["cost"] or ZERO)
        assert (row.used, row.pool_drawn, row.wallet_drawn, row.ai_drawn, row.uncovered) == tuple(
            sums[p] or ZERO for p in PARTS
        )


@pytest.mark.django_db
def test_a_broken_rollup_shows_on_the_statement(history):
    # A statement checks its figures, it does not assume them.
    period = period_of(dt.datetime.now(dt.UTC), history.tz)
    Allowance.objects.filter(company=history, office__slug="austin", kind="standard").update(
        cost_total=1
    )
    statement = statement_build(company_scope(history), period=period)
    assert not statement.ties_out and not statement.records_tie


@pytest.mark.django_db
def test_what_if_shows_what_pooling_would_have_covered_and_writes_nothing(history):
    period = period_of(dt.datetime.now(dt.UTC), history.tz)
    with CaptureQueriesContext(connection) as queries:
        whatif = whatif_replay(history, period=period)
    writes = [
        q["sql"] for q in queries if q["sql"].lstrip().split()[0] in ("INSERT", "UPDATE", "DELETE")
    ]
    assert writes == []
    by_name = {o.name: o for o in whatif.offices}
    # austin: 120 credits of SMS, 100 allowance, 5 from its wallet, 15 uncovered; pooled,
    # berlin's 40 unused credits would have covered them.
    assert by_name["Austin"].actual_uncovered == Decimal("15")
    assert by_name["Austin"].replayed_uncovered == ZERO
    assert by_name["Austin"].idle_elsewhere == Decimal("40")
    assert whatif.covered_by_pooling == Decimal("15")
    assert not whatif.pooled_throughout


@pytest.mark.django_db
def test_a_period_pooled_throughout_replays_exactly(company, care):
    pooling_set(company=company, enabled=True, actor=care, reason="test")
    credits_purchase(company=company, amount="7", actor=care)
    usage_ingest(
        company=company, events=[event(f"p{i}", office="austin", quantity="30") for i in range(5)]
    )
    period = period_of(dt.datetime.now(dt.UTC), company.tz)
    # the pooling change happened in this period: not pooled throughout ...
    assert not whatif_replay(company, period=period).pooled_throughout
    # ... but the next month starts pooled: its usage replays exactly, even with every
    # write at one moment (a frozen clock: the ledger's ids tell the order)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=40)
    with mock.patch("django.utils.timezone.now", return_value=later):
        usage_ingest(
            company=company,
            events=[
                event(f"q{i}", office="berlin", quantity="60", occurred_at=later) for i in range(3)
            ],
        )
        credits_purchase(company=company, amount="30", actor=care)
        usage_ingest(
            company=company, events=[event("q9", office="hq", quantity="90", occurred_at=later)]
        )
    whatif = whatif_replay(company, period=period_of(later, company.tz))
    assert whatif.pooled_throughout and whatif.actual_uncovered > 0
    assert whatif.replay_matches_actual


# Pages, CSV, PDF and the API ------------------------------------------------------------


def _period() -> str:
    return f"{dt.datetime.now(dt.UTC):%Y-%m}"


@pytest.mark.django_db
def test_statement_page_csv_and_pdf_for_a_company_admin(history):
    client = Client()
    client.force_login(company_admin(history))
    page = client.get(f"/statements/{_period()}/")
    assert page.status_code == 200
    body = page.content.decode()
    assert "Ties out" in body and "Austin wallet" in body and "Berlin" in body
    rows = list(
        csv.reader(
            io.StringIO(client.get(f"/statements/{_period()}/statement.csv").content.decode())
        )
    )
    balances = {r[0]: r for r in rows if r and r[0].endswith("wallet")}
    assert balances["Austin wallet"][-1] == "yes" and balances["Austin wallet"][-2] == "0.0000"
    assert rows[-1][-1] == "Ties out"
    pdf = client.get(f"/statements/{_period()}/statement.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")
    assert pdf["Content-Type"] == "application/pdf"


@pytest.mark.django_db
def test_the_pdf_loads_no_external_resource(history):
    from usage import statement_views

    statement = statement_build(
        company_scope(history), period=period_of(dt.datetime.now(dt.UTC), history.tz)
    )
    with mock.patch.object(
        statement_views, "refuse_fetch", wraps=statement_views.refuse_fetch
    ) as f:
        statement_views.statement_pdf(statement)
    assert f.call_count == 0  # its template refers to nothing outside itself
    # and anything a document would fetch goes to it and is refused, never fetched
    with mock.patch.object(
        statement_views, "refuse_fetch", wraps=statement_views.refuse_fetch
    ) as f:
        pdf = statement_views.pdf_render('<img src="http://example.invalid/x.png"><p>x</p>')
    assert pdf.startswith(b"%PDF-")
    f.assert_called_once_with("http://example.invalid/x.png")


@pytest.mark.django_db
def test_an_office_admin_sees_only_their_office(history):
    client = Client()
    client.force_login(office_admin(history.offices.get(slug="austin")))
    body = client.get(f"/statements/{_period()}/").content.decode()
    assert "Austin wallet" in body and "Berlin" not in body and "Company pool" not in body
    assert client.get(f"/statements/{_period()}/?office=berlin").status_code == 404
    assert client.get(f"/what-if/{_period()}/").status_code == 403


@pytest.mark.django_db
def test_bad_periods_and_offices_get_a_clear_answer_and_change_nothing(history, globex_world):
    client = Client()
    client.force_login(company_admin(history))
    before = (LedgerEntry.objects.count(), UsageRecord.objects.count(), Account.objects.count())
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=62)).strftime("%Y-%m")
    cases = {
        "/statements/2026-13/": 400,
        "/statements/abc/": 400,
        "/statements/2026-00/": 400,
        "/statements/1999-01/": 404,
        f"/statements/{future}/": 404,
        f"/statements/{_period()}/?office=paris": 404,  # Globex's office
        f"/statements/{_period()}/?office=%00": 404,
        "/statements/?period=abc": 400,
        "/what-if/abc/": 400,
        f"/what-if/{future}/": 404,
        "/statements/2026-13/statement.pdf": 400,
        "/statements/abc/statement.csv": 400,
    }
    for url, status in cases.items():
        response = client.get(url)
        assert response.status_code == status, url
        if status == 400:
            assert "YYYY-MM" in response.content.decode()
    api = Client(HTTP_AUTHORIZATION=f"Bearer {globex_world}")
    # the API's schema states the period's pattern: a malformed one is a 422 naming it
    assert api.get("/api/v1/statements/2026-13").status_code == 422
    assert api.get("/api/v1/statements/abc").json()["errors"][0]["field"] == "period"
    assert api.get("/api/v1/what-if/0").status_code == 422
    assert api.get("/api/v1/statements/1999-01").status_code == 404
    assert api.get(f"/api/v1/statements/{_period()}?office=%00").status_code == 404
    # Globex's key: Acme's office is not one of its offices
    assert api.get(f"/api/v1/statements/{_period()}?office=austin").status_code == 404
    assert before == (
        LedgerEntry.objects.count(),
        UsageRecord.objects.count(),
        Account.objects.count(),
    )


@pytest.fixture
def globex_world(services):
    from tests.factories import company_factory

    globex = company_factory(slug="globex", name="Globex", offices=("paris",))
    _, key = api_key_create(company=globex, name="test", actor=None)
    return key


@pytest.mark.django_db
def test_api_statement_and_what_if_of_the_keys_company(history):
    _, key = api_key_create(company=history, name="test", actor=None)
    api = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    data = api.get(f"/api/v1/statements/{_period()}").json()
    assert data["company"] == "acme" and data["check"]["ties_out"] is True
    austin = next(b for b in data["balances"] if b["balance"] == "wallet:austin")
    assert (austin["purchases"], austin["usage"], austin["closing"]) == (
        "5.0000",
        "-5.0000",
        "0.0000",
    )
    one = api.get(f"/api/v1/statements/{_period()}?office=austin").json()
    assert {o["office"] for o in one["offices"]} == {"austin"}
    whatif = api.get(f"/api/v1/what-if/{_period()}").json()
    assert whatif["covered_by_pooling"] == "15.0000"
    schema = Client().get("/api/openapi.json").json()
    assert "/api/v1/statements/{period}" in schema["paths"]
    assert "/api/v1/what-if/{period}" in schema["paths"]


@pytest.mark.django_db
def test_care_sees_the_what_if_on_the_company_admin_page(history, care):
    client = Client()
    client.force_login(care)
    body = client.get(f"/admin/offices/company/{history.pk}/change/").content.decode()
    assert 'id="whatif-admin"' in body and "15.0000" in body
