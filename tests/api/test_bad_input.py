"""SPEC §7: every bad input gets a clear 4xx JSON answer and changes nothing."""

import datetime as dt
import json

import pytest
from django.test import override_settings

from credits.models import Account, Allowance, LedgerEntry
from tests.api.conftest import URL, ApiClient, usage_event
from usage.models import Service, UsageRecord


def nothing_written() -> bool:
    return not (
        UsageRecord.objects.exists() or Allowance.objects.exists() or LedgerEntry.objects.exists()
    )


def in_hours(hours: float) -> str:
    return (dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)).isoformat()


def raw(events_json: str) -> bytes:
    return ('{"events": [' + events_json + "]}").encode()


GOOD = json.dumps(usage_event("g-1"))[:-1]  # an event object without its closing brace

# (case, body bytes, content type, status)
BODY_CASES = [
    ("truncated JSON", b'{"events": [', "application/json", 400),
    ("not JSON", b"hello", "application/json", 400),
    ("single quotes", b"{'events': []}", "application/json", 400),
    ("NaN literal", raw(GOOD + ', "quantity": NaN}'), "application/json", 400),
    ("Infinity literal", raw(GOOD + ', "metadata": {"x": Infinity}}'), "application/json", 400),
    ("invalid UTF-8", b'{"events": [{"id": "\xff\xfe"}]}', "application/json", 400),
    ("absurd nesting", b"[" * 100_000 + b"]" * 100_000, "application/json", 400),
    (
        "absurdly long number",
        raw(GOOD + ', "quantity": 1' + "0" * 5000 + "}"),
        "application/json",
        400,
    ),
    ("a list instead of an object", b"[]", "application/json", 422),
    ("no events field", b"{}", "application/json", 422),
    ("unknown top-level field", b'{"events": [], "dry_run": true}', "application/json", 422),
    ("events not a list", b'{"events": {"id": "x"}}', "application/json", 422),
    ("empty batch", b'{"events": []}', "application/json", 422),
    ("events null", b'{"events": null}', "application/json", 422),
    ("empty body", b"", "application/json", 422),
    ("text/plain", json.dumps({"events": [usage_event("t")]}).encode(), "text/plain", 415),
    ("form encoded", b"events=1", "application/x-www-form-urlencoded", 415),
    ("no content type", b'{"events": []}', "", 415),
    ("empty body, wrong type", b"", "text/plain", 415),
    ("over 1 MiB", raw(GOOD + ', "user": "' + "x" * (1024 * 1024) + '"}'), "application/json", 413),
]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [case[1:] for case in BODY_CASES],
    ids=[case[0] for case in BODY_CASES],
)
def test_a_bad_body_is_refused_with_a_clear_json_error(company, api, body, content_type, status):
    # CONTENT_TYPE is set explicitly: Django's test client drops it when the body is empty.
    response = api.generic("POST", URL, body, content_type=content_type, CONTENT_TYPE=content_type)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json; charset=utf-8"
    assert response.json()["detail"]
    assert nothing_written()


MISSING = object()  # leave the field out

# (case, change to one otherwise valid event, field named in the error)
EVENT_CASES = [
    ("missing id", {"id": MISSING}, "id"),
    ("missing office", {"office": MISSING}, "office"),
    ("missing service", {"service": MISSING}, "service"),
    ("missing quantity", {"quantity": MISSING}, "quantity"),
    ("missing occurred_at", {"occurred_at": MISSING}, "occurred_at"),
    ("unknown field", {"duration": 3}, "duration"),
    ("zero quantity", {"quantity": "0"}, "quantity"),
    ("negative quantity", {"quantity": -2}, "quantity"),
    ("NaN quantity", {"quantity": "NaN"}, "quantity"),
    ("infinite quantity", {"quantity": "Infinity"}, "quantity"),
    ("absurdly large quantity", {"quantity": "1e400"}, "quantity"),
    ("quantity over the maximum", {"quantity": 1_000_001}, "quantity"),
    ("quantity with 5 decimals", {"quantity": "0.00001"}, "quantity"),
    ("quantity not a number", {"quantity": "ten"}, "quantity"),
    ("quantity a boolean", {"quantity": True}, "quantity"),
    ("quantity null", {"quantity": None}, "quantity"),
    ("unknown service", {"service": "carrier_pigeon"}, "service"),
    ("inactive service", {"service": "retired"}, "service"),
    ("unknown office", {"office": "atlantis"}, "office"),
    ("another company's office", {"office": "paris"}, "office"),
    ("naive timestamp", {"occurred_at": "2026-11-26T09:30:00"}, "occurred_at"),
    ("unparseable timestamp", {"occurred_at": "yesterday at noon"}, "occurred_at"),
    ("impossible date", {"occurred_at": "2026-02-30T10:00:00+00:00"}, "occurred_at"),
    ("unix time number", {"occurred_at": 1_764_150_000}, "occurred_at"),
    ("an hour in the future", {"occurred_at": in_hours(1)}, "occurred_at"),
    ("before 2000", {"occurred_at": "1999-12-31T23:00:00+00:00"}, "occurred_at"),
    ("far-future year with offset", {"occurred_at": "9999-12-31T23:59:59-14:00"}, "occurred_at"),
    ("empty id", {"id": ""}, "id"),
    ("id too long", {"id": "x" * 201}, "id"),
    ("id a number", {"id": 17}, "id"),
    ("NUL in id", {"id": "a\x00b"}, "id"),
    ("unpaired surrogate in user", {"user": "\ud800"}, "user"),
    ("user too long", {"user": "u" * 201}, "user"),
    ("number too long", {"number": "5" * 41}, "number"),
    ("metadata a list", {"metadata": [1, 2]}, "metadata"),
    ("metadata too big", {"metadata": {"blob": "x" * 5000}}, "metadata"),
    ("metadata too deep", {"metadata": {"a": [[[[[[[[[[1]]]]]]]]]]}}, "metadata"),
    ("NUL in metadata", {"metadata": {"note": "\x00"}}, "metadata"),
]


@pytest.mark.parametrize(
    ("change", "field"), [case[1:] for case in EVENT_CASES], ids=[case[0] for case in EVENT_CASES]
)
def test_a_bad_event_is_refused_by_index_and_field(company, other_company, api, change, field):
    # given: a retired service exists, and globex has an office "paris"
    Service.objects.create(code="retired", name="Retired", unit="message", rate=1, active=False)
    balances = list(Account.objects.values_list("pk", "balance"))
    event = usage_event("bad", **change)
    event = {k: v for k, v in event.items() if v is not MISSING}
    # when: it is sent second in a batch of two
    response = api.send_events(usage_event("fine"), event)
    # then
    assert response.status_code == 422
    body = response.json()
    assert body["detail"]
    assert [(e["index"], e["field"]) for e in body["errors"]] == [(1, field)]
    assert body["errors"][0]["message"]
    assert nothing_written()
    assert list(Account.objects.values_list("pk", "balance")) == balances


def test_a_json_number_too_large_for_a_float_is_refused(company, api):
    # given: 1e400 is valid JSON but overflows to infinity when read
    body = raw(GOOD + ', "quantity": 1e400}')
    # when
    response = api.generic("POST", URL, body, content_type="application/json")
    # then
    assert response.status_code == 422
    assert [(e["index"], e["field"]) for e in response.json()["errors"]] == [(0, "quantity")]
    assert nothing_written()


def test_more_than_1000_events_are_refused(company, api):
    response = api.send_events(*[usage_event(f"e-{i}") for i in range(1001)])
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "events"
    assert nothing_written()


def test_a_declared_length_over_the_limit_is_refused_before_reading(company, key):
    body = json.dumps({"events": [usage_event("big")]}).encode()
    client = ApiClient(key)
    response = client.generic(
        "POST", URL, body, content_type="application/json", CONTENT_LENGTH=str(2 * 1024 * 1024)
    )
    assert response.status_code == 413
    assert nothing_written()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=100)
def test_djangos_own_body_limit_also_answers_413(company, api):
    response = api.send_events(usage_event("big", user="x" * 200))
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert nothing_written()


def test_bad_input_is_checked_after_authentication(company):
    response = ApiClient("ucp_000000000000." + "x" * 43).generic(
        "POST", URL, b"{bad", content_type="text/plain"
    )
    assert response.status_code == 401
