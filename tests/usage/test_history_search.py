"""The text search of the usage history (`?q=`): the rows and the totals are exactly those
of the records whose user label or phone number contains the text, case-insensitively and
with LIKE wildcards taken literally, whatever path answers (labels resolved first, the
plain search when a company has too many labels), for company and office admins, alone
and combined with the other filters. Runs on PostgreSQL and on SQLite."""

from __future__ import annotations

import datetime as dt
import random
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from credits.services import credits_purchase
from offices.selectors import portal_scope_for
from tests.factories import company_admin, company_factory, event, office_admin
from tests.portal.conftest import by_id, login
from usage import search
from usage.filters import UsageFilter
from usage.models import UsageRecord
from usage.selectors import PARTS, usage_history_for, usage_totals_for
from usage.services import usage_ingest

BASE = dt.datetime(2026, 10, 5, 12, 0, tzinfo=dt.UTC)
# Labels that differ only in case, contain one another, or contain LIKE wildcards.
LABELS = [
    "Dara Quinn",
    "dara quinn",
    "DARA QUINN",
    "Dara Quinton",
    "Ann",
    "Joanna",
    "100% Ann",
    "1000 Ann",
    "a_b",
    "axb",
    "back\\slash",
    "backslash",
    "",
]
# Numbers that match a name only through the number, or only through a wildcard.
NUMBERS = ["+15550001", "+4930111", "+1 DARA Q", "ann-555", "50%", "5_0", "\\x", ""]
QUERIES = [
    "dara quinn",
    "DARA",
    "Quinn",
    "ann",
    "4930",
    "555",
    "%",
    "_",
    "\\",
    "100%",
    "a_b",
    "0%",
    "5_0",
    "back\\s",
    "nobody",
    "  dara  ",
]


def _matches(record: UsageRecord, text: str) -> bool:
    text = text.strip().lower()
    return text in record.user_label.lower() or text in record.phone_number.lower()


def _sums(records) -> dict:
    totals = {"events": len(records), "cost": Decimal(0), **dict.fromkeys(PARTS, Decimal(0))}
    for record in records:
        for name in ("cost", *PARTS):
            totals[name] += getattr(record, name)
    return totals


@pytest.fixture
def searchable(db, services, care):
    """300 records over three offices and three services, every label and number above,
    funded by allowances, a wallet and uncovered overage, over four days."""
    company = company_factory(slug="srch", offices=("austin", "berlin"))
    credits_purchase(
        company=company, amount="40", office=company.offices.get(slug="austin"), actor=care
    )
    rng = random.Random(11)
    events = [
        event(
            f"s{i}",
            office=rng.choice(["hq", "austin", "berlin"]),
            service=rng.choice(["sms", "call_international", "ai_agent"]),
            quantity=str(rng.randint(1, 9)),
            occurred_at=BASE + dt.timedelta(hours=rng.randrange(96)),
            user_label=rng.choice(LABELS),
            phone_number=rng.choice(NUMBERS),
        )
        for i in range(300)
    ]
    events.sort(key=lambda e: e.occurred_at)
    usage_ingest(company=company, events=events[:100])  # COPY on PostgreSQL
    for start in range(100, 300, 25):
        usage_ingest(company=company, events=events[start : start + 25])
    return company


def _search(scope, data: dict):
    filterset = UsageFilter(data, queryset=usage_history_for(scope), scope=scope)
    assert filterset.is_valid(), filterset.errors
    rows = list(filterset.qs.values_list("id", flat=True))
    return rows, usage_totals_for(scope, filterset)


def _expected(scope, text: str, **filters):
    records = scope.restrict(UsageRecord.objects.filter(**filters)).order_by("-occurred_at", "-id")
    return [r for r in records if _matches(r, text)]


@pytest.mark.parametrize("text", QUERIES)
def test_search_rows_and_totals_are_those_of_the_matching_records(searchable, text):
    scope = portal_scope_for(company_admin(searchable))
    rows, totals = _search(scope, {"q": text})
    expected = _expected(scope, text)
    assert rows == [r.pk for r in expected]
    assert totals == _sums(expected)


def test_the_queries_cover_every_kind_of_match(searchable):
    # The fixture really has: labels differing in case, number-only matches, matches on
    # both, wildcards present literally, and texts matching nothing.
    scope = portal_scope_for(company_admin(searchable))
    records = list(scope.restrict(UsageRecord.objects.all()))

    def label_only(text):
        return [r for r in records if text.lower() in r.user_label.lower()]

    def number_only(text):
        return [
            r
            for r in records
            if text.lower() in r.phone_number.lower() and text.lower() not in r.user_label.lower()
        ]

    assert {r.user_label for r in label_only("dara quinn")} >= {
        "Dara Quinn",
        "dara quinn",
        "DARA QUINN",
    }
    assert number_only("dara") and label_only("dara")  # "+1 DARA Q" and the Daras
    assert number_only("ann") and label_only("ann")
    assert number_only("4930") and not label_only("4930")
    assert {r.user_label for r in label_only("100%")} == {"100% Ann"}  # not "1000 Ann"
    assert {r.user_label for r in label_only("a_b")} == {"a_b"}  # not "axb"
    assert not _expected(scope, "nobody")


@pytest.mark.parametrize("text", ["dara", "ann", "4930", "%", "_", "\\", "nobody"])
def test_office_admins_search_only_their_offices(searchable, text):
    austin = searchable.offices.get(slug="austin")
    scope = portal_scope_for(office_admin(austin))
    rows, totals = _search(scope, {"q": text})
    expected = _expected(scope, text)
    assert rows == [r.pk for r in expected]
    assert totals == _sums(expected)
    assert all(r.office_id == austin.pk for r in expected)


def test_search_combined_with_every_other_filter(searchable, services):
    scope = portal_scope_for(company_admin(searchable))
    offices = {o.slug: o for o in searchable.offices.all()}
    combos = [
        ({"office": offices["austin"].pk}, {"office": offices["austin"]}),
        ({"service": services["sms"].pk}, {"service": services["sms"]}),
        ({"credit_kind": "ai_agent"}, {"credit_kind": "ai_agent"}),
        ({"funded_by": "wallet"}, {"wallet_part__gt": 0}),
        ({"funded_by": "uncovered"}, {"uncovered__gt": 0}),
        ({"min_cost": "3"}, {"cost__gte": 3}),
        (
            {"date_from": "2026-10-06", "date_to": "2026-10-07"},
            {
                "occurred_at__gte": BASE.replace(day=6, hour=0),
                "occurred_at__lt": BASE.replace(day=8, hour=0),
            },
        ),
        (
            {
                "office": offices["austin"].pk,
                "service": services["sms"].pk,
                "date_from": "2026-10-06",
            },
            {
                "office": offices["austin"],
                "service": services["sms"],
                "occurred_at__gte": BASE.replace(day=6, hour=0),
            },
        ),
    ]
    checked = 0
    for text in ("dara", "ann", "555", "%"):
        for data, filters in combos:
            rows, totals = _search(scope, {"q": text, **data})
            expected = _expected(scope, text, **filters)
            assert rows == [r.pk for r in expected], (text, data)
            assert totals == _sums(expected), (text, data)
            checked += bool(expected)
    assert checked > 20


def test_labels_are_resolved_once_and_totals_are_one_query(searchable):
    scope = portal_scope_for(company_admin(searchable))
    filterset = UsageFilter({"q": "dara"}, queryset=usage_history_for(scope), scope=scope)
    assert filterset.is_valid()
    with CaptureQueriesContext(connection) as ctx:
        list(filterset.qs)
        usage_totals_for(scope, filterset)
    assert len(ctx.captured_queries) == 3  # labels, the page's rows, the totals
    labels = filterset.search_labels("dara")
    assert labels == ["DARA QUINN", "Dara Quinn", "Dara Quinton", "dara quinn"]
    assert "UNION ALL" in ctx.captured_queries[-1]["sql"]


def test_too_many_labels_fall_back_to_the_plain_search(searchable, monkeypatch):
    # given: a company with more distinct labels than the label list may hold
    monkeypatch.setattr(search, "LABELS_MAX", 3)
    scope = portal_scope_for(company_admin(searchable))
    for text in ("dara", "ann", "4930", "%"):
        # when
        filterset = UsageFilter({"q": text}, queryset=usage_history_for(scope), scope=scope)
        assert filterset.is_valid()
        # then: the records are tested one by one, with the same result
        expected = _expected(scope, text)
        assert list(filterset.qs.values_list("id", flat=True)) == [r.pk for r in expected]
        assert usage_totals_for(scope, filterset) == _sums(expected)
    assert filterset.search_labels("dara") is None


def test_history_page_shows_the_search_totals(client, searchable):
    admin = company_admin(searchable)
    login(client, admin)
    expected = _sums(_expected(portal_scope_for(admin), "quinn"))
    html = client.get("/usage/?q=QUINN").content.decode()
    assert by_id(html, "total-events") == str(expected["events"])
    assert by_id(html, "total-cost") == f"{expected['cost']:,.2f}"


def test_export_obeys_the_search(client, searchable):
    admin = company_admin(searchable)
    login(client, admin)
    response = client.get("/usage/export.csv?q=a_b")
    lines = b"".join(response.streaming_content).decode().splitlines()
    expected = _expected(portal_scope_for(admin), "a_b")
    assert len(lines) == 1 + len(expected) and expected
    assert all("a_b" in line and "axb" not in line for line in lines[1:])


@pytest.fixture
def formatted_numbers(db, services):
    """Numbers with and without formatting, one record each (label = its number)."""
    company = company_factory(slug="fmt")
    numbers = ["ann-555", "ann555", "+49 30 5555 0171", "+493055550999", "(030) 12.34/5"]
    usage_ingest(
        company=company,
        events=[
            event(f"f{i}", quantity="1", occurred_at=BASE, user_label=f"n{i}", phone_number=n)
            for i, n in enumerate(numbers)
        ],
    )
    return company


@pytest.mark.parametrize(
    ("text", "found"),
    [
        # Not a number: the number as written contains the text (formatting counts).
        ("ann-5", {"ann-555"}),
        ("ANN5", {"ann555"}),
        ("ann", {"ann-555", "ann555"}),
        ("n-5", {"ann-555"}),
        # A number: formatting ignored on both sides.
        ("30 5555", {"+49 30 5555 0171", "+493055550999"}),
        ("+493055550171", {"+49 30 5555 0171"}),
        ("5555 0999", {"+493055550999"}),
        ("030-1234", {"(030) 12.34/5"}),
        ("(030) 1", {"(030) 12.34/5"}),
        ("555", {"ann-555", "ann555", "+49 30 5555 0171", "+493055550999"}),
    ],
)
def test_number_search_as_written_or_without_formatting(formatted_numbers, text, found):
    scope = portal_scope_for(company_admin(formatted_numbers))
    rows, totals = _search(scope, {"q": text})
    assert {r.phone_number for r in UsageRecord.objects.filter(pk__in=rows)} == found
    assert totals["events"] == len(found)


def _trigram_indexes() -> set[str]:
    """The one phone trigram index and its partitions' indexes (PostgreSQL)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT relid::text FROM pg_partition_tree('usage_phone_digits_trgm')")
        return {name for (name,) in cursor.fetchall()}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the trigram index: PostgreSQL")
@pytest.mark.parametrize("text", ["4930", "+49 30", "0171", "dara", "ann-5", "DARA Q"])
def test_numbers_and_names_are_looked_up_in_the_one_trigram_index(formatted_numbers, text):
    indexes = _trigram_indexes()
    assert "usage_phone_digits_trgm" in indexes
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = UsageRecord.objects.filter(search.number_condition(text)).explain()
    assert any(name in plan for name in indexes), plan
    assert search.numbers_indexed_for(text)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'usage_usagerecord' "
            "AND indexdef LIKE '%gin_trgm_ops%'"
        )
        assert [name for (name,) in cursor.fetchall()] == ["usage_phone_digits_trgm"]


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
