"""Late events (SPEC §10.3): the window, archived months, care's setting, the statement mark."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.db import connection
from django.test import Client
from django.urls import reverse

from core.errors import ValidationFailed
from credits.models import LedgerEntry
from credits.periods import period_of
from offices.models import Company
from offices.selectors import company_scope
from offices.services import late_window_set
from tests.admin.conftest import form_data
from tests.api.conftest import ApiClient, usage_event
from tests.factories import company_admin, event
from usage.api_auth import api_key_create
from usage.late import late_refusals
from usage.models import UsageRecord
from usage.services import usage_ingest
from usage.statements import statement_build, statement_csv_rows

DAY = dt.timedelta(days=1)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


# Ingestion --------------------------------------------------------------------------------


@pytest.mark.django_db
def test_an_event_older_than_the_window_refuses_its_batch_per_item(company):
    api = ApiClient(api_key_create(company=company, name="sync")[1])
    old = (now() - 35 * DAY - dt.timedelta(minutes=2)).isoformat()
    inside = (now() - 35 * DAY + dt.timedelta(minutes=2)).isoformat()
    # when: a batch of a good event, one older than 35 days, and one just inside
    response = api.send_events(
        usage_event("ok"),
        usage_event("old", occurred_at=old),
        usage_event("in", occurred_at=inside),
    )
    # then: 422 naming the window on that item only, and nothing of the batch charged
    assert response.status_code == 422
    errors = response.json()["errors"]
    assert [(e["index"], e["field"]) for e in errors] == [(1, "occurred_at")]
    assert "older than the late-event window of 35 days" in errors[0]["message"]
    assert not UsageRecord.objects.filter(company=company).exists()
    assert not LedgerEntry.objects.filter(company=company).exists()
    # when: the old one is left out, the others are charged (the one just inside too)
    response = api.send_events(usage_event("ok"), usage_event("in", occurred_at=inside))
    assert response.status_code == 200 and response.json()["charged"] == 2


@pytest.mark.django_db
def test_the_window_is_the_companys_and_the_service_refuses_the_same(company, care):
    old = event("old", occurred_at=now() - 50 * DAY)
    with pytest.raises(ValidationFailed) as refused:
        usage_ingest(company=company, events=[event("a"), old])
    assert refused.value.errors[0]["index"] == 1
    assert "late-event window of 35 days" in refused.value.errors[0]["message"]
    assert not UsageRecord.objects.filter(company=company).exists()
    # care widens the window to 60 days: the same event is now charged, to its own period
    late_window_set(company=company, days=60, actor=care)
    company.refresh_from_db()
    [charged] = usage_ingest(company=company, events=[old])
    assert charged.record.period == period_of(old.occurred_at, company.tz)


@pytest.mark.django_db
def test_an_event_charged_before_comes_back_as_a_duplicate_whatever_its_age(company, care):
    late_window_set(company=company, days=60, actor=care)
    company.refresh_from_db()
    sent = event("once", occurred_at=now() - 50 * DAY)
    usage_ingest(company=company, events=[sent])
    late_window_set(company=company, days=35, actor=care)
    company.refresh_from_db()
    [again] = usage_ingest(company=company, events=[sent])
    assert again.duplicate and UsageRecord.objects.filter(company=company).count() == 1


@pytest.mark.django_db
def test_an_event_of_an_archived_month_is_refused_naming_the_window(company, monkeypatch, care):
    # given: a window of a year, and the month of 100 days ago archived
    late_window_set(company=company, days=366, actor=care)
    company.refresh_from_db()
    moment = now() - 100 * DAY
    month = moment.date().replace(day=1)
    monkeypatch.setattr("usage.late.archived_months", lambda: {month})
    # when / then: its event is refused, nothing charged
    with pytest.raises(ValidationFailed) as refused:
        usage_ingest(company=company, events=[event("a"), event("arch", occurred_at=moment)])
    [error] = refused.value.errors
    assert error["index"] == 1 and error["field"] == "occurred_at"
    assert (
        f"{month:%Y-%m}" in error["message"]
        and "late-event window of 366 days" in (error["message"])
    )
    assert not UsageRecord.objects.filter(company=company).exists()


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="partitions exist on PostgreSQL")
def test_archived_months_are_read_from_the_archive_schema(company):
    from usage.late import archived_months
    from usage.partitions import ARCHIVE_SCHEMA

    with connection.cursor() as cursor:
        cursor.execute(f"CREATE SCHEMA IF NOT EXISTS {ARCHIVE_SCHEMA}")
        cursor.execute(f"CREATE TABLE {ARCHIVE_SCHEMA}.usage_usagerecord_p202501 (id int)")
    assert dt.date(2025, 1, 1) in archived_months()
    errors = late_refusals(
        Company(late_event_window_days=366),
        [(0, event("x", occurred_at=dt.datetime(2025, 1, 10, tzinfo=dt.UTC)))],
        now=dt.datetime(2025, 12, 1, tzinfo=dt.UTC),
    )
    assert [e["index"] for e in errors] == [0] and "2025-01" in errors[0]["message"]


def test_recent_events_never_look_at_the_archive(monkeypatch):
    def boom():
        raise AssertionError("the catalog was read")

    monkeypatch.setattr("usage.late.archived_months", boom)
    moment = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    events = [(0, event("x", occurred_at=moment - 3 * DAY))]
    assert late_refusals(Company(late_event_window_days=35), events, now=moment) == []


# Care's setting -----------------------------------------------------------------------------


@pytest.fixture
def care_client(care):
    client = Client()
    client.force_login(care)
    return client


@pytest.mark.django_db
def test_care_edits_the_window_in_the_admin_and_it_is_audited(care_client, company):
    url = reverse("admin:offices_company_change", args=[company.pk])
    data = form_data(care_client.get(url))
    assert str(data["late_event_window_days"]) == "35"
    response = care_client.post(url, {**data, "late_event_window_days": "60"})
    assert response.status_code == 302
    company.refresh_from_db()
    assert company.late_event_window_days == 60
    [entry] = LogEntry.objects.filter(object_id=str(company.pk))
    assert entry.user.username == "care"
    assert entry.get_change_message() == "Late-event window: 35 → 60 days."


@pytest.mark.django_db
@pytest.mark.parametrize("bad", ["0", "-5", "367", "100000000000000000000", "ten", "1.5", ""])
def test_bad_windows_are_refused_with_a_form_error(care_client, company, bad):
    url = reverse("admin:offices_company_change", args=[company.pk])
    data = form_data(care_client.get(url))
    response = care_client.post(url, {**data, "late_event_window_days": bad})
    assert response.status_code == 200
    assert "errorlist" in response.content.decode()
    company.refresh_from_db()
    assert company.late_event_window_days == 35
    assert not LogEntry.objects.filter(object_id=str(company.pk)).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("bad", [0, -1, 367, "x", None, Decimal("NaN"), 2.5])
def test_the_service_refuses_bad_windows(company, care, bad):
    with pytest.raises(ValidationFailed):
        late_window_set(company=company, days=bad, actor=care)
    company.refresh_from_db()
    assert company.late_event_window_days == 35


# The statement's mark --------------------------------------------------------------------


@pytest.fixture
def late_history(company):
    """Two events of last month charged now (after it ended), one of this month."""
    this = period_of(now(), company.tz)
    last_day = dt.datetime.combine(this, dt.time(), tzinfo=company.tz) - dt.timedelta(hours=2)
    usage_ingest(
        company=company,
        events=[
            event("late-1", quantity="3", occurred_at=last_day),
            event("late-2", office="austin", quantity="4.5", occurred_at=last_day),
            event("now-1", quantity="2"),
        ],
    )
    return (this - DAY).replace(day=1)


@pytest.mark.django_db
def test_the_statement_of_a_period_with_late_usage_is_marked_amended(company, late_history):
    today = dt.datetime.now(company.tz).date()
    received = f"{today.day} {today:%b}"
    statement = statement_build(company_scope(company), period=late_history)
    assert (statement.late.events, statement.late.cost) == (2, Decimal("7.5"))
    assert statement.late.amended_on == today and statement.late.received_text == received
    assert statement.ties_out
    # the page
    client = Client()
    client.force_login(company_admin(company))
    page = client.get(f"/statements/{late_history:%Y-%m}/").content.decode()
    assert f"Amended on {today.day} {today:%b %Y}" in page
    assert f"Late usage: 2 events, 7.50 credits, received {received}" in page
    # the CSV
    rows = list(
        csv.reader(
            io.StringIO(
                client.get(f"/statements/{late_history:%Y-%m}/statement.csv").content.decode()
            )
        )
    )
    assert ["Amended on", today.isoformat()] in rows
    late_row = next(r for r in rows if r and r[0] == "Charged after the period ended")
    assert late_row[1:3] == ["2", "7.5000"]
    # the PDF
    from usage.statement_views import statement_pdf

    pdf = statement_pdf(statement)
    assert pdf.startswith(b"%PDF-")
    # the API
    api = ApiClient(api_key_create(company=company, name="s")[1])
    body = api.get(f"/api/v1/statements/{late_history:%Y-%m}").json()
    assert body["late_usage"]["events"] == 2 and body["late_usage"]["credits"] == "7.5000"
    assert body["late_usage"]["amended_on"] == today.isoformat()


@pytest.mark.django_db
def test_the_pdf_carries_the_late_usage_line(company, late_history, monkeypatch):
    from usage import statement_views

    seen = {}
    monkeypatch.setattr(statement_views, "pdf_render", lambda html: seen.setdefault("html", html))
    statement_views.statement_pdf(statement_build(company_scope(company), period=late_history))
    assert "Late usage: 2 events, 7.50 credits, received" in seen["html"]
    assert "Amended on" in seen["html"]


@pytest.mark.django_db
def test_a_period_without_late_usage_is_not_marked(company, late_history):
    this = period_of(now(), company.tz)
    statement = statement_build(company_scope(company), period=this)
    assert not statement.late and statement.late.amended_on is None
    rows = list(statement_csv_rows(statement))
    assert not any(r and r[0] == "Amended on" for r in rows)
    assert ["Charged after the period ended", 0, Decimal("0.0000"), "", ""] in rows


@pytest.mark.django_db
def test_an_office_admins_statement_counts_only_their_offices_late_usage(company, late_history):
    from offices.selectors import portal_scope_for
    from tests.factories import office_admin

    austin = company.offices.get(slug="austin")
    scope = portal_scope_for(office_admin(austin))
    statement = statement_build(scope, period=late_history)
    assert (statement.late.events, statement.late.cost) == (1, Decimal("4.5"))


# The published schema ----------------------------------------------------------------------


@pytest.mark.django_db
def test_the_openapi_description_of_occurred_at_states_the_window():
    schema = Client().get("/api/openapi.json").json()["components"]["schemas"]
    text = schema["UsageEvent"]["properties"]["occurred_at"]["description"]
    assert "late-event window (default 35 days" in text
    assert "archived" in text and "422" in text
    assert "late_usage" in schema["StatementOut"]["properties"]
