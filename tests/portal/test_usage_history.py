"""Usage history: filters, totals, sorting, pagination, scope and bad input."""

import datetime as dt

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from credits.periods import billing_period
from offices.services import late_window_set
from tests.factories import event
from tests.portal.conftest import by_id, login, recent
from usage.services import usage_ingest


def rows_of(html: str) -> int:
    body = html[html.index("<tbody") : html.index("</tbody>")]
    return body.count("<tr") - body.count("No usage matches")


def test_company_admin_sees_all_offices_usage_and_totals(client, acme_usage, acme_admin):
    login(client, acme_admin)
    html = client.get("/usage/").content.decode()
    assert rows_of(html) == 4
    assert by_id(html, "total-events") == "4"
    assert by_id(html, "total-cost") == "173.50"  # 120 + 7.5 + 40 + 6
    assert by_id(html, "total-wallet") == "27.50"


def test_filter_by_office_gives_that_offices_total(client, acme_usage, acme_admin, offices):
    login(client, acme_admin)
    html = client.get("/usage/?office=austin").content.decode()
    assert rows_of(html) == 2
    assert by_id(html, "total-cost") == "127.50"
    assert "Berlin" not in html[html.index("<tbody") :]


@pytest.mark.parametrize(
    ("query", "events", "cost"),
    [
        ("service=__sms__", 2, "160.00"),
        ("credit_kind=ai_agent", 1, "6.00"),
        ("funded_by=wallet", 2, "127.50"),
        ("funded_by=allowance", 3, "166.00"),
        ("funded_by=uncovered", 0, "0.00"),
        ("q=bob", 1, "7.50"),
        ("q=4930", 1, "40.00"),
        ("min_cost=40", 2, "160.00"),
    ],
)
def test_filters_narrow_rows_and_totals(
    client, acme_usage, acme_admin, services, query, events, cost
):
    login(client, acme_admin)
    query = query.replace("__sms__", str(services["sms"].pk))
    html = client.get(f"/usage/?{query}").content.decode()
    assert by_id(html, "total-events") == str(events)
    assert by_id(html, "total-cost") == cost
    assert rows_of(html) == events


def test_date_range_is_in_the_company_time_zone(client, acme, acme_admin):
    # given: an event at 23:30 New York time on the 2nd is the 3rd in UTC
    acme.billing_timezone = "America/New_York"
    acme.save()
    when = dt.datetime(2026, 11, 3, 4, 30, tzinfo=dt.UTC)
    usage_ingest(company=acme, events=[event("late", quantity="3", occurred_at=when)])
    login(client, acme_admin)
    on_2nd = client.get("/usage/?date_from=2026-11-02&date_to=2026-11-02").content.decode()
    on_3rd = client.get("/usage/?date_from=2026-11-03&date_to=2026-11-03").content.decode()
    assert by_id(on_2nd, "total-events") == "1"
    assert by_id(on_3rd, "total-events") == "0"
    assert "2026-11-02 23:30" in on_2nd


def test_office_admin_sees_only_their_rows_and_totals(client, acme_usage, austin_admin):
    login(client, austin_admin)
    html = client.get("/usage/").content.decode()
    assert rows_of(html) == 2
    assert by_id(html, "total-cost") == "127.50"
    assert "Berlin" not in html and "Carl" not in html


def test_office_admin_cannot_filter_by_another_offices_id(
    client, acme_usage, austin_admin, offices
):
    login(client, austin_admin)
    response = client.get(f"/usage/?office={offices['berlin'].pk}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Select a valid choice" in html
    assert "Carl" not in html and "40.00" not in html
    assert 'id="totals"' not in html


def test_office_choices_are_limited_to_the_users_offices(client, acme_usage, austin_admin):
    login(client, austin_admin)
    html = client.get("/usage/").content.decode()
    select = html[
        html.index('name="office"') : html.index("</select>", html.index('name="office"'))
    ]
    assert "Austin" in select and "Berlin" not in select and "HQ" not in select


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("office=999999", "Select a valid choice"),
        ("office=abc", "Select a valid choice"),
        ("date_from=notadate", "Enter a valid date"),
        ("date_to=2026-13-45", "Enter a valid date"),
        ("date_from=0001-01-01", "Pick a date between"),
        ("date_from=2026-11-20&date_to=2026-11-01", "end date is before the start date"),
        ("min_cost=abc", "Enter a number"),
        ("min_cost=-1", "greater than or equal to 0"),
        ("min_cost=NaN", "Enter a number"),
        ("min_cost=1e400", "Ensure that there are no more than"),
        ("credit_kind=gold", "Select a valid choice"),
        ("funded_by=magic", "Select a valid choice"),
        ("service=0", "Select a valid choice"),
        ("q=%00", "Null characters are not allowed"),
        ("q=" + "x" * 101, "at most 100 characters"),
    ],
)
def test_bad_filter_values_show_a_form_error(client, acme_usage, acme_admin, query, message):
    login(client, acme_admin)
    response = client.get(f"/usage/?{query}")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Some filters are not valid" in html
    assert message in html
    assert rows_of(html) == 0


def test_unknown_sort_is_reported_not_a_crash(client, acme_usage, acme_admin):
    login(client, acme_admin)
    response = client.get("/usage/?sort=nonsense")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Cannot sort by “nonsense”" in html
    assert rows_of(html) == 4


@pytest.mark.parametrize("page", ["abc", "0", "-1", "999", "99999999999999999999999", "1.5"])
def test_bad_page_numbers_show_the_first_page(client, acme_usage, acme_admin, page):
    login(client, acme_admin)
    response = client.get(f"/usage/?page={page}")
    assert response.status_code == 200
    assert rows_of(response.content.decode()) == 4


@pytest.mark.parametrize("per_page", ["100000", "0", "-3", "x"])
def test_page_size_cannot_be_changed_from_the_url(client, acme, acme_admin, per_page):
    usage_ingest(
        company=acme, events=[event(f"e{i}", occurred_at=recent(i + 1)) for i in range(30)]
    )
    login(client, acme_admin)
    response = client.get(f"/usage/?per_page={per_page}")
    assert response.status_code == 200
    assert rows_of(response.content.decode()) == 25


def test_sorting_by_cost(client, acme_usage, acme_admin):
    login(client, acme_admin)
    html = client.get("/usage/?sort=cost").content.decode()
    body = html[html.index("<tbody") :]
    assert body.index("7.50") < body.index("40.00") < body.index("120.00")
    html = client.get("/usage/?sort=-cost").content.decode()
    body = html[html.index("<tbody") :]
    assert body.index("120.00") < body.index("40.00") < body.index("7.50")


def test_pages_of_25_without_counting(client, acme, acme_admin):
    usage_ingest(
        company=acme,
        events=[event(f"e{i}", occurred_at=recent(i + 1)) for i in range(30)],
    )
    login(client, acme_admin)
    first = client.get("/usage/").content.decode()
    assert rows_of(first) == 25
    assert 'rel="next"' in first
    second = client.get("/usage/?page=2").content.decode()
    assert rows_of(second) == 5
    assert 'rel="next"' not in second and 'rel="prev"' in second
    # The rows are paginated by looking one row ahead, never by COUNT(*) on the set,
    # and unfiltered totals come from the allowance rollups, not from summing records.
    with CaptureQueriesContext(connection) as ctx:
        client.get("/usage/")
    on_records = [
        q["sql"].upper() for q in ctx.captured_queries if '"USAGE_USAGERECORD"' in q["sql"].upper()
    ]
    assert not [sql for sql in on_records if "COUNT(" in sql or "SUM(" in sql]


@pytest.mark.parametrize(
    "query",
    ["", "office=__austin__", "credit_kind=ai_agent", "office=__austin__&credit_kind=standard"],
)
def test_rollup_totals_match_the_records(client, acme_usage, acme_admin, offices, query):
    # given: the same filter with and without an extra no-op condition (min_cost=0)
    # that forces the totals to be summed from the usage records themselves
    query = query.replace("__austin__", offices["austin"].slug)
    login(client, acme_admin)
    fast = client.get(f"/usage/?{query}").content.decode()
    summed = client.get(f"/usage/?{query}&min_cost=0").content.decode()
    for total in ("events", "cost", "allowance", "pool", "wallet", "ai", "uncovered"):
        assert by_id(fast, f"total-{total}") == by_id(summed, f"total-{total}"), total


def test_this_month_export_link(client, acme, acme_admin):
    login(client, acme_admin)
    period = billing_period(acme)
    html = client.get("/usage/").content.decode()
    assert f"/usage/export.csv?date_from={period.start}&amp;date_to={period.end}" in html


@pytest.mark.parametrize("sort", ["", "&sort=cost", "&sort=-office"])
@pytest.mark.parametrize("who", ["acme_admin", "austin_admin"])
def test_far_pages_read_in_two_steps_show_the_same_rows(
    client, acme, offices, request, monkeypatch, sort, who
):
    # given: 60 events over two offices and two months (37 days: acme keeps late events for
    # 40), and far pages starting at row 25
    late_window_set(company=acme, days=40, actor=request.getfixturevalue("care"))
    usage_ingest(
        company=acme,
        events=[
            event(
                f"far-{i}",
                office="austin" if i % 3 else "berlin",
                quantity=str(1 + i % 7),
                occurred_at=recent(i * 900),
            )
            for i in range(60)
        ],
    )
    login(client, request.getfixturevalue(who))

    def pages() -> list[str]:
        found, page = [], 1
        while True:
            html = client.get(f"/usage/?page={page}{sort}").content.decode()
            found.append(html[html.index("<tbody") : html.index("</tbody>")])
            if 'rel="next"' not in html:
                return found
            page += 1

    one_query = pages()
    monkeypatch.setattr("usage.selectors.DEFERRED_FROM", 25)
    with CaptureQueriesContext(connection) as ctx:
        two_steps = pages()
    # then: page for page the same rows, in the same order, and the far pages were read
    # key first (the time index alone), then the rows by key
    assert two_steps == one_query and len(one_query) >= 2
    keys_first = [
        q["sql"]
        for q in ctx.captured_queries
        if q["sql"].startswith(
            'SELECT "usage_usagerecord"."id" AS "pk", "usage_usagerecord"."occurred_at" AS '
        )
    ]
    assert len(keys_first) == len(one_query) - 1
