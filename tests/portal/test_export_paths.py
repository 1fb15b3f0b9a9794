"""The two ways to the CSV export give the same bytes: PostgreSQL writing it (COPY) and
Python formatting each row (the path other databases take). Same data, same filters,
same scope: byte for byte the same header, columns, order, numbers, times and escaping."""

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.db import connection, connections
from django.test.utils import CaptureQueriesContext

from credits.services import credits_purchase, pooling_set
from offices.models import Office
from offices.selectors import portal_scope_for
from tests.factories import (
    ServiceFactory,
    company_admin,
    company_factory,
    event,
    office_admin,
    office_factory,
)
from tests.portal.conftest import login
from usage.export import usage_csv_copy, usage_csv_python, usage_csv_rows
from usage.filters import UsageFilter
from usage.models import Service, Unit
from usage.selectors import usage_history_for
from usage.services import usage_ingest

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the COPY path exists on PostgreSQL only"
)

UTC = dt.UTC
# St. John's: -03:30 in winter, -02:30 in summer. 2025-11-02 04:30 UTC falls back to
# 01:00 local; 2026-03-08 05:30 UTC springs forward from 02:00 to 03:00 local.
ZONE = "America/St_Johns"
AWKWARD = [
    # (user label, phone number, event id)
    ('=HYPERLINK("http://x","y")', "+1 555 0100", "f-1"),
    ("@SUM(A1)", "-12 (34) 5.6", "+not-a-number"),
    ("+cmd|' /C calc'!A0", "+", "-"),
    ("-2+3", "+1\n555", "=1+1"),
    ("\tleading tab", "\rcarriage", "@id"),
    ("comma, inside", 'quote " inside', 'both, "and" more'),
    ("line one\nline two", "line\r\nbreak", "new\nline"),
    ("Zoë Ångström 山田 🎉", "", "ünïcødé-id"),
    ("", "", "empty-labels"),
    ("  padded  ", " 555 ", " spaced id "),
    ("'already quoted", "()", "plain.id"),
    ('"', ",", "x\r"),
    ("100%_done", "+44 (0) 20", "pct%_id"),
]


def times() -> list[dt.datetime]:
    return [
        dt.datetime(2025, 11, 2, 3, 29, 59, tzinfo=UTC),  # 00:59:59 NDT (-02:30)
        dt.datetime(2025, 11, 2, 3, 30, tzinfo=UTC),  # 01:00 NDT, before the fall back
        dt.datetime(2025, 11, 2, 4, 30, tzinfo=UTC),  # 01:00 NST again, after it
        dt.datetime(2025, 11, 2, 2, 30, 0, 123456, tzinfo=UTC),  # 00:00:00.123456 NDT
        dt.datetime(2026, 3, 8, 5, 29, 59, 999999, tzinfo=UTC),  # 01:59:59.999999 NST
        dt.datetime(2026, 3, 8, 5, 30, tzinfo=UTC),  # 03:00 NDT, after the spring forward
        dt.datetime(2026, 3, 9, 2, 30, tzinfo=UTC),  # 00:00 NDT on 2026-03-09
        dt.datetime(2026, 3, 8, 2, 59, 59, tzinfo=UTC),  # 23:29:59 on 2026-03-07 local
        dt.datetime(2000, 1, 1, 12, 0, 0, 1, tzinfo=UTC),
    ]


@pytest.fixture
def world(services, care):
    """A company in St. John's with awkward offices, services, labels, times and amounts;
    pooling switched on half way, with credits in the pool and the AI account; and a
    second company whose rows must never appear."""
    company = company_factory(
        slug="nfld", name="Newfoundland", billing_timezone=ZONE, offices=("austin", "berlin")
    )
    Office.objects.filter(company=company, slug="austin").update(name='=Austin, "TX"')
    Office.objects.filter(company=company, slug="berlin").update(name="Berlin\nMitte ü")
    ServiceFactory(code="fax", unit=Unit.PAGE, rate=Decimal("0.0125"))
    credits_purchase(company=company, amount="3.3333", office=company.offices.get(slug="hq"),
                     actor=care)  # fmt: skip
    offices = ["hq", "austin", "berlin"]
    kinds = ["sms", "call_international", "ai_agent", "fax"]
    quantities = ["1", "0.0001", "1.2345", "12345.6789", "7", "0.3333", "250", "2.5"]
    moments = times()
    events = []
    for i, (user, number, ext) in enumerate(AWKWARD * 3):
        events.append(
            event(
                f"{ext}#{i}" if i >= len(AWKWARD) else ext,
                office=offices[i % 3],
                service=kinds[i % 4],
                quantity=quantities[i % len(quantities)],
                occurred_at=moments[i % len(moments)],
                user_label=user,
                phone_number=number,
            )
        )
    half = len(events) // 2
    usage_ingest(company=company, events=events[:half])
    pooling_set(company=company, enabled=True, actor=care, reason="half way")
    credits_purchase(company=company, amount="1000.1234", actor=care)  # into the pool
    credits_purchase(company=company, amount="50.5", kind="ai_agent", actor=care)
    usage_ingest(company=company, events=events[half:])
    # Same instant twice: the order falls back to the id, newest first.
    usage_ingest(
        company=company,
        events=[event(f"tie{i}", occurred_at=moments[0], quantity="500") for i in range(3)],
    )
    other = company_factory(slug="other", offices=("paris",))
    usage_ingest(company=other, events=[event("other-1", user_label="=secret")])
    return company


def both_paths(user, query: dict) -> tuple[bytes, bytes]:
    scope = portal_scope_for(user)
    filterset = UsageFilter(query or None, queryset=usage_history_for(scope), scope=scope)
    assert not filterset.is_bound or filterset.is_valid(), filterset.errors
    queryset, tz = filterset.qs, scope.company.tz
    python = b"".join(line.encode() for line in usage_csv_python(queryset, tz))
    copied = b"".join(usage_csv_copy(queryset, tz, queryset.db))
    return python, copied


def filters(company) -> dict[str, dict]:
    office = {o.slug: o.pk for o in company.offices.all()}
    fax = Service.objects.get(code="fax").pk
    return {
        "none": {},
        "office": {"office": office["austin"]},
        "service": {"service": fax},
        "credit kind": {"credit_kind": "ai_agent"},
        **{f"funded_by {f}": {"funded_by": f} for f in ("allowance", "pool", "wallet", "ai")},
        "funded_by uncovered": {"funded_by": "uncovered"},
        "date from (fall back day)": {"date_from": "2025-11-02"},
        "date to (fall back day)": {"date_to": "2025-11-02"},
        "one day (spring forward)": {"date_from": "2026-03-08", "date_to": "2026-03-08"},
        "q formula": {"q": "=HYP"},
        "q unicode": {"q": "ångström"},
        "q percent and underscore": {"q": "%_"},
        "q quote": {"q": '"'},
        "min_cost 4 places": {"min_cost": "0.3086"},
        "min_cost none match": {"min_cost": "99999999"},
        "combined": {
            "office": office["hq"],
            "service": Service.objects.get(code="sms").pk,
            "credit_kind": "standard",
            "date_from": "2000-01-01",
            "date_to": "2026-03-08",
            "min_cost": "0.5",
            "q": " ",
        },
    }


def test_both_paths_write_the_same_bytes_for_every_filter(world):
    admin = company_admin(world, username="nfld-admin")
    nonempty = 0
    for name, query in filters(world).items():
        python, copied = both_paths(admin, query)
        assert copied == python, name
        nonempty += python.count(b"\r\n") > 1
    # The data set is not trivially empty: every filter but one matches rows.
    assert nonempty == len(filters(world)) - 1
    everything, _ = both_paths(admin, {})
    assert everything.count(b"'=") >= 3 and b"-03:30" in everything and b"-02:30" in everything
    assert b"2025-11-02T00:00:00.123456-02:30" in everything and b"other-1" not in everything


def test_both_paths_agree_for_an_office_admin(world):
    austin = world.offices.get(slug="austin")
    user = office_admin(austin, username="nfld-austin")
    for name, query in filters(world).items():
        if "office" in query and query["office"] != austin.pk:
            continue  # another office is an invalid choice for them (a 400, tested elsewhere)
        python, copied = both_paths(user, query)
        assert copied == python, name
        assert b"Berlin" not in copied


def test_the_export_page_streams_what_postgresql_writes(client, world):
    admin = company_admin(world, username="nfld-admin")
    login(client, admin)
    with CaptureQueriesContext(connection) as captured:
        response = client.get("/usage/export.csv?credit_kind=standard")
        body = b"".join(response.streaming_content)
    assert response.status_code == 200
    python, _ = both_paths(admin, {"credit_kind": "standard"})
    assert body == python
    assert any(q["sql"].startswith("COPY (") for q in captured.captured_queries)
    # The company's zone was the session's only while the COPY ran.
    assert connection.connection.info.parameter_status("TimeZone") != ZONE


def test_other_databases_take_the_python_path(world, monkeypatch):
    admin = company_admin(world, username="nfld-admin")
    scope = portal_scope_for(admin)
    queryset = usage_history_for(scope)
    monkeypatch.setattr(connections["default"], "vendor", "sqlite")
    with CaptureQueriesContext(connection) as captured:
        lines = list(usage_csv_rows(queryset, scope.company.tz))
    assert all(isinstance(line, str) for line in lines)
    assert not any("COPY" in q["sql"] for q in captured.captured_queries)
    python, _ = both_paths(admin, {})
    assert "".join(lines).encode() == python


def leave_early(company) -> None:
    for batch in range(3):
        events = [event(f"e{batch}-{i}") for i in range(800)]
        usage_ingest(company=company, events=events)
    scope = portal_scope_for(company_admin(company))
    queryset = usage_history_for(scope)
    zone = connection.connection.info.parameter_status("TimeZone")
    status = connection.connection.info.transaction_status
    chunks = usage_csv_rows(queryset, scope.company.tz)
    next(chunks), next(chunks)  # the header, then the first thousand rows
    chunks.close()  # the client went away
    assert connection.connection.info.transaction_status == status  # nothing left open
    assert connection.connection.info.parameter_status("TimeZone") == zone != ZONE
    assert queryset.count() == 2400  # and the connection still answers


@pytest.mark.django_db(transaction=True)
def test_a_client_that_leaves_early_leaves_no_transaction_open(services):
    leave_early(company_factory(slug="leaver", billing_timezone=ZONE))
    assert connection.connection.info.transaction_status == 0  # IDLE


def test_a_client_that_leaves_early_inside_a_transaction(services):
    leave_early(company_factory(slug="leaver", billing_timezone=ZONE))


# Every text cell a spreadsheet would evaluate, whatever follows its first character ---------

DIGITS_ONLY = ["-1-1", "+1-555-0100", "+1 (555) 0100.5", "-", "+", "=1", "@1", "\t1", "\r1"]


@pytest.fixture
def formulas(services, care):
    """One office, one service and one event per formula start, each text field holding
    it: digits, spaces, () and . after the first character, which a spreadsheet computes."""
    company = company_factory(slug="calc", name="Calc", offices=("austin",))
    events = []
    for i, text in enumerate(DIGITS_ONLY):
        office = company.offices.get(slug="austin") if i == 0 else None
        if office is None:
            office = office_factory(company=company, slug=f"o{i}")
        Office.objects.filter(pk=office.pk).update(name=text)
        ServiceFactory(code=f"-{i}-1")  # a slug may start with a hyphen
        events.append(
            event(
                text + f"#{i}",
                office=office.slug,
                service=f"-{i}-1",
                quantity="1.5",
                user_label=text,
                phone_number=text,
            )
        )
    usage_ingest(company=company, events=events)
    return company


def test_both_paths_quote_every_text_cell_starting_like_a_formula(formulas):
    admin = company_admin(formulas, username="calc-admin")
    python, copied = both_paths(admin, {})
    assert copied == python
    rows = list(csv.DictReader(io.StringIO(python.decode(), newline="")))
    assert len(rows) == len(DIGITS_ONLY)
    for row in rows:
        for column in ("office", "service", "user", "number", "event_id"):
            assert row[column].startswith("'"), (column, row[column])
            assert row[column][1] in "=+-@\t\r", (column, row[column])
        # numbers stay numbers: a spreadsheet reads them as such
        for column in ("quantity", "rate", "cost", "allowance", "wallet", "uncovered"):
            Decimal(row[column])
            assert not row[column].startswith("'"), column
    assert {row["user"][1:] for row in rows} == set(DIGITS_ONLY)


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
