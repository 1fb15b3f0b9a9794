"""A usage event as it arrives (SPEC §2, §7): one typed model, validated once.

`UsageEvent` holds every rule that an event's own fields must meet; the API's batch
schema is a list of them, so the API validates each event exactly once, and
`usage_ingest` takes them as they are. Anything else handed to `usage_ingest` (a dict
from a script or a test) is validated here, by the same model, with the same messages.
What depends on the company or the moment (does the office exist, is the service
active, is the id repeated in the batch, is the time in the future) is checked by
`usage_ingest` itself."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Annotated, Any

from django.conf import settings
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
)

# The limits the API enforces and publishes (OpenAPI) come from these, and only these.
ID_MAX = 200  # usage_usagerecord.external_id
SLUG_MAX = 60  # office slug, service code
USER_MAX = 200  # usage_usagerecord.user_label
NUMBER_MAX = 40  # usage_usagerecord.phone_number
METADATA_MAX_BYTES = 4096
METADATA_MAX_DEPTH = 8
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
ISO_DATE_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")
MESSAGES = {"missing": "This field is required.", "extra_forbidden": "Unknown field."}
# Errors name a field as the API does.
API_NAMES = {"external_id": "id", "user_label": "user", "phone_number": "number"}


def clean_text(value: str) -> str:
    """Text PostgreSQL can store: no NUL characters, no unpaired surrogates."""
    if "\x00" in value:
        raise ValueError("Must not contain NUL characters.")
    if value.isascii():
        return value  # no surrogates in ASCII
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("Must be valid Unicode text (no unpaired surrogates).") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("Give the event a non-empty id.")
    return value


def _iso_string_or_datetime(value: Any) -> Any:
    # Pydantic would read a number (even "1764150000") as a Unix time; the API promises
    # ISO 8601. Python callers may pass a datetime.
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not ISO_DATE_START.match(value):
        raise ValueError("Must be an ISO 8601 date-time string with a UTC offset.")
    return value


def _as_utc(value: dt.datetime) -> dt.datetime:
    # PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 parsers accept; UTC is exact.
    try:
        value = value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("Out of range.") from None
    if value < EARLIEST:
        raise ValueError("Before 2000-01-01.")
    return value


def _json_safe(value: Any, depth: int = 0) -> None:
    if depth > METADATA_MAX_DEPTH:
        raise ValueError(f"Nested deeper than {METADATA_MAX_DEPTH} levels.")
    if isinstance(value, str):
        clean_text(value)
    elif isinstance(value, bool | int | None):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("Numbers must be finite.")
    elif isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise ValueError("Keys must be text.")
            clean_text(key)
            _json_safe(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_safe(item, depth + 1)
    else:
        raise ValueError("Must hold plain JSON values.")


def _small_json_object(value: dict) -> dict:
    if not value:
        return value
    _json_safe(value)
    if len(json.dumps(value).encode()) > METADATA_MAX_BYTES:
        raise ValueError(f"At most {METADATA_MAX_BYTES} bytes of JSON.")
    return value


Text = Annotated[str, AfterValidator(clean_text)]
OffsetDateTime = Annotated[
    AwareDatetime, BeforeValidator(_iso_string_or_datetime), AfterValidator(_as_utc)
]


class UsageEvent(BaseModel):
    """One usage event to charge. Field names are the usage record's; the API calls
    three of them by shorter names (id, user, number)."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "evt-0001",
                    "office": "hq",
                    "service": "sms",
                    "quantity": "3",
                    "occurred_at": "2026-11-26T09:30:00+00:00",
                    "user": "alice",
                    "number": "+15550100",
                }
            ]
        },
    )

    external_id: Annotated[Text, AfterValidator(_not_blank)] = Field(
        alias="id", min_length=1, max_length=ID_MAX, description="Your unique id of the event."
    )
    office: Text = Field(min_length=1, max_length=SLUG_MAX, description="Office slug.")
    service: Text = Field(min_length=1, max_length=SLUG_MAX, description="Service code, e.g. sms.")
    quantity: Decimal = Field(
        gt=0,
        le=Decimal(settings.USAGE_MAX_QUANTITY),
        decimal_places=4,
        allow_inf_nan=False,
        description="Units (minutes, messages, pages …): a number or a decimal string.",
    )
    occurred_at: OffsetDateTime = Field(
        description="ISO 8601 with a UTC offset, e.g. 2026-11-26T09:30:00+00:00."
    )
    user_label: Text = Field(
        "", alias="user", max_length=USER_MAX, description="Who generated the usage."
    )
    phone_number: Text = Field(
        "", alias="number", max_length=NUMBER_MAX, description="Phone number involved."
    )
    metadata: Annotated[dict[str, Any], AfterValidator(_small_json_object)] = Field(
        default_factory=dict, description="Any small JSON object, kept with the record."
    )


def problem(error: dict) -> tuple[str, str]:
    """(field, message) of one pydantic error of an event, as the API words it."""
    loc = [API_NAMES.get(part, part) if i == 0 else part for i, part in enumerate(error["loc"])]
    field = ".".join(str(part) for part in loc) or "event"
    message = MESSAGES.get(error["type"], error["msg"])
    return field, message.removeprefix("Value error, ")


def events_parse(items) -> tuple[dict[int, UsageEvent], list[dict]]:
    """The valid events of `items` by index (UsageEvent instances pass as they are,
    mappings are validated) and every problem found, by index and field."""
    events, errors = {}, []
    for index, item in enumerate(items):
        if isinstance(item, UsageEvent):
            events[index] = item
            continue
        try:
            if not isinstance(item, Mapping):
                raise TypeError
            events[index] = UsageEvent.model_validate(item)
        except TypeError:
            errors.append({"index": index, "field": "event", "message": "Must be an object."})
        except ValidationError as exc:
            for error in exc.errors():
                field, message = problem(error)
                errors.append({"index": index, "field": field, "message": message})
    return events, errors
