import datetime as dt

import pytest

from tests.api.conftest import URL, usage_event

BASE = dt.datetime(2026, 10, 1, 12, 0, tzinfo=dt.UTC)


def at(minutes: int) -> str:
    return (BASE + dt.timedelta(minutes=minutes)).isoformat()


@pytest.fixture
def history(company, api):
    """Seven events: five SMS from hq and austin, two AI conversations, some at one instant."""
    events = [
        usage_event("h-0", occurred_at=at(0)),
        usage_event("h-1", occurred_at=at(10), office="austin"),
        usage_event("h-2", occurred_at=at(10)),
        usage_event("h-3", occurred_at=at(10), service="ai_agent"),
        usage_event("h-4", occurred_at=at(20), office="austin"),
        usage_event("h-5", occurred_at=at(30), service="ai_agent", office="austin"),
        usage_event("h-6", occurred_at=at(40)),
    ]
    assert api.send_events(*events).status_code == 200


def ids(response) -> list[str]:
    assert response.status_code == 200, response.content
    return [r["id"] for r in response.json()["results"]]


def test_records_come_newest_first_with_ties_broken_by_id(history, api):
    assert ids(api.get(URL)) == ["h-6", "h-5", "h-4", "h-3", "h-2", "h-1", "h-0"]


def test_following_the_cursor_visits_every_record_once(history, api):
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        response = api.get(URL, params)
        seen += ids(response)
        cursor = response.json()["next_cursor"]
        pages += 1
        if cursor is None:
            break
    assert seen == ["h-6", "h-5", "h-4", "h-3", "h-2", "h-1", "h-0"]
    assert pages == 4


def test_a_full_last_page_has_no_next_cursor(history, api):
    response = api.get(URL, {"limit": 7})
    assert len(ids(response)) == 7
    assert response.json()["next_cursor"] is None


def test_filters_by_office_service_and_time(history, api):
    assert ids(api.get(URL, {"office": "austin"})) == ["h-5", "h-4", "h-1"]
    assert ids(api.get(URL, {"service": "ai_agent"})) == ["h-5", "h-3"]
    assert ids(api.get(URL, {"from": at(10), "to": at(30)})) == ["h-4", "h-3", "h-2", "h-1"]
    assert ids(api.get(URL, {"office": "austin", "service": "sms", "limit": 1})) == ["h-4"]


def test_a_record_shows_its_full_charge(history, api):
    (record,) = api.get(URL, {"office": "austin", "service": "ai_agent"}).json()["results"]
    assert record["occurred_at"] == at(30)
    assert record["period"] == "2026-10"
    assert record["cost"] == "2.0000"
    assert record["split"]["allowance"] == "2.0000"
    assert record["credit_kind"] == "ai_agent"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"cursor": "WzEsMl0"}, "cursor"),  # base64 of [1,2]
        ({"cursor": "WyIyMDI2LTEwLTAxVDEyOjAwOjAwIiwgMV0"}, "cursor"),  # naive time
        ({"cursor": "WyIyMDI2LTEwLTAxVDEyOjAwOjAwKzAwOjAwIiwgMWUzMF0"}, "cursor"),  # huge id
        (
            {"cursor": "WyIwMDAxLTAxLTAxVDAwOjAwOjAwKzE0OjAwIiwgMV0"},
            "cursor",
        ),  # before year 1 in UTC
        ({"limit": "0"}, "limit"),
        ({"limit": "501"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"from": "2026-10-01T12:00:00"}, "from"),
        ({"to": "last tuesday"}, "to"),
        ({"to": "0001-01-01T00:00:00+14:00"}, "to"),  # before year 1 in UTC
        ({"to": 1764150000}, "to"),
        ({"from": at(30), "to": at(0)}, "from"),
        ({"office": "atlantis"}, "office"),
        ({"office": "a\x00"}, "office"),
        ({"service": "carrier_pigeon"}, "service"),
    ],
)
def test_bad_filters_answer_422_naming_the_parameter(history, api, params, field):
    response = api.get(URL, params)
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == [field]
    assert response.json()["detail"]


def test_any_offset_iso_8601_allows_is_understood(history, api):
    # +20:10 is beyond what PostgreSQL accepts; the API converts to UTC first
    assert ids(api.get(URL, {"from": "2026-10-02T08:21:00+20:10"})) == ["h-6", "h-5", "h-4"]


def test_listing_takes_a_fixed_number_of_queries(history, api, django_assert_max_num_queries):
    with django_assert_max_num_queries(4):
        assert len(ids(api.get(URL, {"limit": 500}))) == 7


def test_a_record_reads_the_same_in_the_post_answer_and_the_list(company, api):
    # One definition of a usage record's JSON (usage/api.py record_out) serves both.
    sent = api.send_events(
        usage_event("same-0", occurred_at=at(5), user="Ana", number="+1 555 0100"),
        usage_event("same-1", occurred_at=at(6), service="ai_agent", metadata={"k": [1]}),
    )
    assert sent.status_code == 200
    posted = {e.pop("id"): e for e in sent.json()["events"]}
    assert {e.pop("duplicate") for e in posted.values()} == {False}
    listed = {r.pop("id"): r for r in api.get(URL).json()["results"]}
    assert listed == posted


@pytest.fixture(autouse=True)
def _sent_long_after_they_happened(late_window_off):
    """Fixed calendar moments, sent long after they happened (tests/clock.py)."""
