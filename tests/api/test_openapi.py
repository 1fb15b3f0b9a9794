import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders
from django.test import Client
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from pydantic import ValidationError

from tests.api.conftest import URL, usage_event
from tests.factories import ServiceFactory, office_factory
from usage.api_schemas import CURSOR_MAX, CURSOR_PATTERN, LIMIT_MAX
from usage.events import (
    ID_MAX,
    METADATA_MAX_BYTES,
    METADATA_MAX_DEPTH,
    NOT_BLANK_PATTERN,
    NUMBER_MAX,
    SLUG_MAX,
    TEXT_PATTERN,
    TEXT_RULE,
    USER_MAX,
    WHITESPACE,
    UsageEvent,
    quantity_pattern,
)


def test_the_openapi_schema_is_served_without_a_key_and_is_valid():
    response = Client().get("/api/openapi.json")
    assert response.status_code == 200
    schema = response.json()
    validate(schema)
    paths = schema["paths"]
    assert set(paths) == {
        "/api/v1/usage-events",
        "/api/v1/balance",
        "/api/v1/statements/{period}",
        "/api/v1/what-if/{period}",
        "/api/v1/alerts",
        "/api/v1/offices/{slug}/spendable",
    }
    for path in ("/api/v1/statements/{period}", "/api/v1/what-if/{period}"):
        get = paths[path]["get"]
        assert get["security"] == [{"ApiKeyAuth": []}]
        assert {"200", "400", "401", "404"} <= set(get["responses"])
    assert set(paths["/api/v1/usage-events"]) == {"get", "post"}
    post = paths["/api/v1/usage-events"]["post"]
    assert {"200", "400", "401", "413", "415", "422"} <= set(post["responses"])
    assert post["security"] == [{"ApiKeyAuth": []}]
    alert = schema["components"]["schemas"]["AlertOut"]
    assert {"office", "period"} <= set(alert["required"])
    assert "pool_cap" in alert["properties"]["kind"]["description"]
    assert schema["components"]["securitySchemes"]["ApiKeyAuth"] == {
        "type": "http",
        "scheme": "bearer",
    }
    event = schema["components"]["schemas"]["UsageEvent"]
    assert event["additionalProperties"] is False
    assert set(event["required"]) == {"id", "office", "service", "quantity", "occurred_at"}


def test_the_docs_page_loads_its_assets_from_the_portal_not_a_cdn():
    response = Client().get("/api/docs")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith("swagger-ui-bundle.js") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
    assert "<script>" not in html  # no inline script: the CSP allows only 'self'


# The published schema and the API's validation must not drift apart: every limit the API
# enforces is in the schema, and on both sides of each limit the schema and the API agree.

MAX_QUANTITY = int(Decimal(settings.USAGE_MAX_QUANTITY))
SECONDS_AHEAD = settings.USAGE_MAX_FUTURE_SECONDS


def nested_lists(depth: int, leaf=1):
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def metadata_of_bytes(size: int) -> dict:
    filler = size - len(json.dumps({"b": ""}).encode())
    return {"b": "x" * filler}


class FromNow:
    """A moment `seconds` from when the test runs (not from when this module was
    imported: a slow run would otherwise move "just outside" inside)."""

    def __init__(self, seconds: int):
        self.seconds = seconds

    def __str__(self) -> str:
        return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.seconds)).isoformat()

    def __repr__(self) -> str:
        return f"FromNow({self.seconds})"


# (limit, field, just inside, just outside, how the schema states it): "keyword" rows are
# checked by a JSON Schema validator on both sides; "described" rows cannot be written as
# JSON Schema (they depend on the clock or on serialised size), so the field's description
# must name the limit.
EVENT_LIMITS = [
    ("id length", "id", "i" * ID_MAX, "i" * (ID_MAX + 1), "keyword"),
    ("id not empty", "id", "i", "", "keyword"),
    ("id not only whitespace", "id", " i\u3000", " \t\u3000\u2028", "keyword"),
    ("id without NUL", "id", "i-1", "i\x001", "keyword"),
    ("office length", "office", "o" * SLUG_MAX, "o" * (SLUG_MAX + 1), "keyword"),
    ("office without NUL", "office", "hq", "h\x00q", "keyword"),
    ("service length", "service", "s" * SLUG_MAX, "s" * (SLUG_MAX + 1), "keyword"),
    ("quantity above 0", "quantity", "0.0001", "0", "keyword"),
    ("quantity at most 4 decimals", "quantity", "0.0001", "0.00001", "keyword"),
    ("quantity decimals at the maximum", "quantity", "1.2345", "1.23456", "keyword"),
    (
        "quantity at most the maximum",
        "quantity",
        f"{MAX_QUANTITY}.0000",
        f"{MAX_QUANTITY}.0001",
        "keyword",
    ),
    ("quantity integer maximum", "quantity", MAX_QUANTITY, MAX_QUANTITY + 1, "keyword"),
    ("quantity integer minimum", "quantity", 1, 0, "keyword"),
    ("quantity fraction as a string", "quantity", "2.5", 2.5, "keyword"),
    ("quantity tiny float", "quantity", "0.0001", 5e-324, "keyword"),
    ("quantity written plainly", "quantity", "1000", "1e3", "keyword"),
    ("quantity without a sign", "quantity", "1", "+1", "keyword"),
    (
        "occurred_at RFC 3339",
        "occurred_at",
        "2026-11-26T09:30:00+00:00",
        "2026-11-26T09:30+00:00",
        "keyword",
    ),
    (
        "occurred_at seconds",
        "occurred_at",
        "2026-11-26T09:30:59Z",
        "2026-11-26T09:30:60Z",
        "keyword",
    ),
    # The floor 2000-01-01 lies beyond every late-event window (at most a year): the
    # earliest an event may be is now − the company's window (35 days by default).
    (
        "occurred_at late-event window",
        "occurred_at",
        FromNow(-35 * 86400 + 60),
        FromNow(-35 * 86400 - 60),
        "described",
    ),
    (
        "occurred_at latest",
        "occurred_at",
        FromNow(SECONDS_AHEAD - 60),
        FromNow(SECONDS_AHEAD + 60),
        "described",
    ),
    ("user length", "user", "u" * USER_MAX, "u" * (USER_MAX + 1), "keyword"),
    ("user without NUL", "user", "Ana", "A\x00na", "keyword"),
    ("number length", "number", "5" * NUMBER_MAX, "5" * (NUMBER_MAX + 1), "keyword"),
    (
        "metadata size",
        "metadata",
        metadata_of_bytes(METADATA_MAX_BYTES),
        metadata_of_bytes(METADATA_MAX_BYTES + 1),
        "described",
    ),
    (
        "metadata depth",
        "metadata",
        {"a": nested_lists(METADATA_MAX_DEPTH - 1)},
        {"a": nested_lists(METADATA_MAX_DEPTH)},
        "keyword",
    ),
    (
        "metadata depth of objects",
        "metadata",
        {"a": {"b": {}}},
        {"a": nested_lists(METADATA_MAX_DEPTH - 1, {"c": 1})},
        "keyword",
    ),
    ("metadata key without NUL", "metadata", {"k": "v"}, {"k\x00": "v"}, "keyword"),
    ("metadata text without NUL", "metadata", {"k": ["v"]}, {"k": ["\x00"]}, "keyword"),
]


@pytest.fixture
def published() -> dict:
    return Client().get("/api/openapi.json").json()


def body_verdict(document: dict, body: dict) -> bool:
    """Whether the published schema calls this body valid."""
    validator = Draft202012Validator(
        {**document, "$ref": "#/components/schemas/UsageBatchIn"},
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return validator.is_valid(body)


@pytest.fixture
def long_names(company, services):
    office_factory(company=company, slug="o" * SLUG_MAX)
    ServiceFactory(code="s" * SLUG_MAX)


@pytest.mark.parametrize(
    ("field", "inside", "outside", "stated"),
    [row[1:] for row in EVENT_LIMITS],
    ids=[row[0] for row in EVENT_LIMITS],
)
def test_each_event_limit_is_published_and_enforced_on_both_sides(
    published, api, long_names, field, inside, outside, stated
):
    # given: the same event with the field just inside and just outside the limit
    inside, outside = (str(v) if isinstance(v, FromNow) else v for v in (inside, outside))
    good = usage_event(f"in-{field}", **{field: inside})
    bad = usage_event(f"out-{field}", **{field: outside})
    # when
    accepted = api.send_events(good)
    refused = api.send_events(bad)
    # then: the API accepts the one and refuses the other, naming the field
    assert accepted.status_code == 200, accepted.json()
    assert refused.status_code == 422, refused.json()
    assert [(e["index"], e["field"].split(".")[0]) for e in refused.json()["errors"]] == [
        (0, field)
    ]
    # and the published schema says the same, or states the limit in words
    assert body_verdict(published, {"events": [good]})
    if stated == "keyword":
        assert not body_verdict(published, {"events": [bad]})
    else:
        description = published["components"]["schemas"]["UsageEvent"]["properties"][field]
        assert any(
            limit in description["description"]
            for limit in (
                "late-event window (default 35 days",
                f"{SECONDS_AHEAD} seconds",
                f"{METADATA_MAX_BYTES} bytes",
            )
        )


def test_the_schema_states_each_limit_with_the_value_the_api_uses(published):
    event = published["components"]["schemas"]["UsageEvent"]["properties"]
    assert (event["id"]["minLength"], event["id"]["maxLength"]) == (1, ID_MAX)
    assert event["id"]["pattern"] == NOT_BLANK_PATTERN
    for name, limit in (("office", SLUG_MAX), ("service", SLUG_MAX)):
        assert (event[name]["minLength"], event[name]["maxLength"]) == (1, limit)
    for name, limit in (("user", USER_MAX), ("number", NUMBER_MAX)):
        assert event[name]["maxLength"] == limit
    for name in ("office", "service", "user", "number"):
        assert event[name]["pattern"] == TEXT_PATTERN
    for name in ("id", "office", "service", "user", "number"):
        assert TEXT_RULE in event[name]["description"]  # and no unpaired surrogate
    text, integer = event["quantity"]["anyOf"]
    assert text == {"type": "string", "pattern": quantity_pattern(Decimal(MAX_QUANTITY))}
    assert integer == {"type": "integer", "minimum": 1, "maximum": MAX_QUANTITY}
    assert "4 decimal places" in event["quantity"]["description"]
    assert event["occurred_at"]["format"] == "date-time"
    metadata = event["metadata"]
    assert f"{METADATA_MAX_BYTES} bytes" in metadata["description"]
    assert f"{METADATA_MAX_DEPTH} levels" in metadata["description"]
    schemas = published["components"]["schemas"]
    assert {f"MetadataValue{d}" for d in range(1, METADATA_MAX_DEPTH + 1)} <= set(schemas)
    assert f"MetadataValue{METADATA_MAX_DEPTH + 1}" not in schemas
    events = schemas["UsageBatchIn"]["properties"]["events"]
    assert (events["minItems"], events["maxItems"]) == (1, settings.USAGE_BATCH_MAX)
    query = {p["name"]: p["schema"] for p in published["paths"][URL]["get"]["parameters"]}
    assert query["office"]["anyOf"][0]["maxLength"] == SLUG_MAX
    assert query["service"]["anyOf"][0]["maxLength"] == SLUG_MAX
    assert query["cursor"]["anyOf"][0]["maxLength"] == CURSOR_MAX
    assert query["cursor"]["pattern"] == CURSOR_PATTERN
    assert query["office"]["pattern"] == query["service"]["pattern"] == TEXT_PATTERN
    assert (query["limit"]["minimum"], query["limit"]["maximum"]) == (1, LIMIT_MAX)


# (limit, parameter, just inside, just outside)
QUERY_LIMITS = [
    ("office length", "office", "o" * SLUG_MAX, "o" * (SLUG_MAX + 1)),
    ("office without NUL", "office", "hq", "h\x00q"),
    ("service length", "service", "s" * SLUG_MAX, "s" * (SLUG_MAX + 1)),
    ("limit minimum", "limit", "1", "0"),
    ("limit maximum", "limit", str(LIMIT_MAX), str(LIMIT_MAX + 1)),
    ("cursor alphabet", "cursor", "", "!"),
    ("cursor length", "cursor", "", "A" * (CURSOR_MAX + 1)),
    ("from RFC 3339", "from", "2026-11-26T09:30:00Z", "2026-11-26T09:30Z"),
    ("to RFC 3339", "to", "2026-11-26t09:30:00.5z", "2026-11-26T09:30:00"),
]


def parameter_schema(document: dict, name: str) -> dict:
    return next(
        p["schema"] for p in document["paths"][URL]["get"]["parameters"] if p["name"] == name
    )


def parameter_verdict(document: dict, name: str, value: str) -> bool:
    schema = parameter_schema(document, name)
    instance = int(value) if name == "limit" else value
    return Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    ).is_valid(instance)


@pytest.mark.parametrize(
    ("name", "inside", "outside"),
    [row[1:] for row in QUERY_LIMITS],
    ids=[row[0] for row in QUERY_LIMITS],
)
def test_each_filter_limit_is_published_and_enforced_on_both_sides(
    published, api, long_names, name, inside, outside
):
    accepted = api.get(URL, {name: inside})
    refused = api.get(URL, {name: outside})
    assert accepted.status_code == 200, accepted.json()
    assert refused.status_code == 422, refused.json()
    assert [e["field"] for e in refused.json()["errors"]] == [name]
    assert parameter_verdict(published, name, inside)
    assert not parameter_verdict(published, name, outside)


def test_a_filter_bound_may_be_before_2000_and_must_fit_utc_as_its_description_says(published, api):
    assert api.get(URL, {"from": "1999-12-31T23:59:59Z"}).status_code == 200
    assert api.get(URL, {"to": "0001-01-01T00:00:00+14:00"}).status_code == 422
    for name in ("from", "to"):
        assert "years 0001-9999" in parameter_schema(published, name)["description"]


@given(
    st.one_of(
        st.from_regex(r"\A[-+]?[0-9]{1,8}(\.[0-9]{0,6})?([eE][-+]?[0-9])?\Z"),
        st.text(alphabet="0123456789.-+eE _x\n", max_size=12),
    )
)
@hypothesis_settings(max_examples=500, deadline=None)
def test_a_quantity_string_is_accepted_exactly_when_it_matches_the_published_pattern(text):
    pattern = re.compile(quantity_pattern(Decimal(MAX_QUANTITY)).removesuffix("$"))
    event = usage_event("q", quantity=text)
    try:
        UsageEvent.model_validate(event)
        accepted = True
    except ValidationError:
        accepted = False
    assert accepted == bool(pattern.fullmatch(text)), text


@pytest.mark.parametrize("maximum", ["1", "9", "10", "250", "1000000", "1234567"])
def test_the_quantity_pattern_follows_the_configured_maximum(maximum):
    pattern = re.compile(quantity_pattern(Decimal(maximum)).removesuffix("$"))
    top = Decimal(maximum)
    for candidate in (
        "0.0001",
        "0.5",
        "1",
        "9.9999",
        "10",
        "99.0001",
        "249.9999",
        "250",
        "250.0001",
        "999999.9999",
        "1000000",
        "1000000.0001",
        "1234566.9999",
        "1234567",
        "1234567.0000",
        "1234568",
    ):
        assert bool(pattern.fullmatch(candidate)) == (Decimal(candidate) <= top), candidate


def test_the_published_whitespace_is_what_the_api_strips():
    everything = map(chr, range(0x110000))
    published = re.compile(f"[{WHITESPACE}]")
    assert {c for c in everything if c.isspace()} == {
        chr(i) for i in range(0x110000) if published.fullmatch(chr(i))
    }


def test_post_links_to_the_list_and_the_list_to_its_next_page(published):
    operations = {
        operation["operationId"]: operation
        for methods in published["paths"].values()
        for operation in methods.values()
    }
    listing = operations["usage_events_list"]
    names = {p["name"] for p in listing["parameters"]}
    charge_links = operations["usage_events_create"]["responses"]["200"]["links"]
    list_links = listing["responses"]["200"]["links"]
    for link in [*charge_links.values(), *list_links.values()]:
        assert link["operationId"] == "usage_events_list"
        assert set(link["parameters"]) <= names
    assert list_links["NextPage"]["parameters"] == {"cursor": "$response.body#/next_cursor"}
