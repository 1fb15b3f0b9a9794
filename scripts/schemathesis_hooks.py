"""Schemathesis hooks for scripts/schemathesis.sh (loaded through SCHEMATHESIS_HOOKS).

The OpenAPI schema states every rule of a request's own shape, so anything schema-valid that
the API refuses is a defect (the `positive_data_acceptance` check). A few rules are facts of
the database and the clock, not of the shape: which offices and services the company has,
which event ids it already used, what "now" is, and that `from` is not after `to`; and one
is a fact of serialisation that JSON Schema has no keyword for, the metadata's size in bytes
(the schema's description states it). Only for schema-valid (positive) cases, these hooks
put facts into the generated request: a real office and service, an id not used before, a
recent occurred_at (keeping the generated time of day and offset), no metadata over the size
limit, real filter values. Negative cases go out exactly as generated.
"""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import os

import schemathesis

OFFICES = os.environ["SCHEMATHESIS_OFFICES"].split(",")
SERVICES = os.environ["SCHEMATHESIS_SERVICES"].split(",")
METADATA_MAX_BYTES = int(os.environ["SCHEMATHESIS_METADATA_MAX_BYTES"])
ID_MAX = 200
_counter = itertools.count(1)


def _positive(case) -> bool:
    meta = case.meta
    return meta is None or meta.generation.mode.is_positive


def _pick(values: list[str], n: int) -> str:
    return values[n % len(values)]


def _recent(occurred_at: str, n: int) -> str:
    # At least two days back, so that no offset (under 24 h) moves it into the future.
    day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=2 + n % 28)
    return day.isoformat() + occurred_at[10:]


def _event_facts(event: dict, n: int) -> None:
    prefix = f"st{n}-"
    if isinstance(event.get("id"), str):
        event["id"] = (prefix + event["id"])[:ID_MAX]
    if "office" in event:
        event["office"] = _pick(OFFICES, n)
    if "service" in event:
        event["service"] = _pick(SERVICES, n)
    if isinstance(event.get("occurred_at"), str):
        event["occurred_at"] = _recent(event["occurred_at"], n)
    # Measured as the API measures it (usage.events._small_json_object).
    if len(json.dumps(event.get("metadata", {})).encode()) > METADATA_MAX_BYTES:
        del event["metadata"]


@schemathesis.hook
def map_case(context, case):
    if not _positive(case):
        return case
    n = next(_counter)
    if case.method == "POST" and isinstance(case.body, dict):
        for i, event in enumerate(case.body.get("events") or []):
            if isinstance(event, dict):
                _event_facts(event, n * 1000 + i)
    elif case.method == "GET" and case.path.endswith("/usage-events") and case.query:
        query = case.query
        if query.get("office") is not None and query["office"] not in OFFICES:
            query["office"] = _pick(OFFICES, n)
        if query.get("service") is not None and query["service"] not in SERVICES:
            query["service"] = _pick(SERVICES, n)
        if query.get("cursor") and not _handed_out(query["cursor"]):
            # Only the API hands out cursors; the stateful phase follows its links to them.
            query.pop("cursor")
        for name in ("from", "to"):
            # The description's limit: years 0001-9999 once converted to UTC.
            if isinstance(query.get(name), str) and _instant(query[name]) is None:
                query.pop(name)
        low, high = query.get("from"), query.get("to")
        if isinstance(low, str) and isinstance(high, str) and _instant(low) > _instant(high):
            query["from"], query["to"] = high, low
    return case


def _handed_out(cursor: str) -> bool:
    try:
        moment, pk = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        return isinstance(moment, str) and type(pk) is int
    except (ValueError, TypeError):
        return False


def _instant(value: str) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(value.upper()).astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None
