"""orjson parses and renders the API's JSON; the results must equal the standard library's."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from types import SimpleNamespace

import pytest
from ninja.renderers import JSONRenderer

from config.api import FastJSONRenderer, MalformedJSON, StrictJSONParser

BODIES = [
    b'{"events": [{"id": "a", "quantity": 3, "metadata": {"k": [1, 2.5, null, true]}}]}',
    b'{"a": 1, "a": 2}',
    b'{"text": "caf\\u00e9 \xe2\x82\xac \\n"}',
    b'{"big": 123456789012345678901234567890, "neg": -9223372036854775809}',
    b'{"f": 1e-400, "g": -0.0, "h": 1.7976931348623157e308}',
    b'\xef\xbb\xbf{"bom": true}',
    b'{"lone": "\\ud800"}',
    b"[]",
    b'"just a string"',
]
BAD = [b"", b"{", b'{"a": NaN}', b'{"a": Infinity}', b'{"a": 1e400', b"\xff\xfe", b'{"a": "\xff"}']


def parse(body: bytes):
    return StrictJSONParser().parse_body(SimpleNamespace(body=body))


@pytest.mark.parametrize("body", BODIES)
def test_the_parser_reads_exactly_what_the_standard_parser_reads(body):
    expected = json.loads(body)
    got = parse(body)
    assert got == expected
    assert json.dumps(got) == json.dumps(expected)  # same types: ints stay exact ints


def test_integers_beyond_64_bits_stay_exact():
    assert parse(b'{"n": 123456789012345678901234567890}')["n"] == 123456789012345678901234567890


@pytest.mark.parametrize("body", BAD)
def test_the_parser_refuses_what_it_refused_before(body):
    with pytest.raises(MalformedJSON):
        parse(body)


@pytest.mark.parametrize(
    "data",
    [
        {"detail": "x", "errors": [{"index": 0, "field": "id", "message": "Zürich €"}]},
        {"amount": Decimal("12.5000"), "when": dt.datetime(2026, 11, 26, 9, 30, tzinfo=dt.UTC)},
        {"big": 2**70, "list": [1, 2.5, None, True, "s"]},
        {1: "non-string key"},
        [{"nested": {"deep": ["a", {"b": 1}]}}],
    ],
)
def test_the_renderer_sends_the_values_the_standard_renderer_sends(data):
    fast = FastJSONRenderer().render(None, data, response_status=200)
    slow = JSONRenderer().render(None, data, response_status=200)
    assert json.loads(fast) == json.loads(slow)
