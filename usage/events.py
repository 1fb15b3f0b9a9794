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
from django.core.exceptions import ImproperlyConfigured
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
)

from offices.models import LATE_WINDOW_DEFAULT, LATE_WINDOW_MAX

# The limits the API enforces and publishes (OpenAPI) come from these, and only these.
ID_MAX = 200  # usage_usagerecord.external_id
SLUG_MAX = 60  # office slug, service code
USER_MAX = 200  # usage_usagerecord.user_label
NUMBER_MAX = 40  # usage_usagerecord.phone_number
METADATA_MAX_BYTES = 4096
METADATA_MAX_DEPTH = 8
QUANTITY_PLACES = 4
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
# RFC 3339 date-time (the schema's `format: date-time`), seconds 00-59: what Python parses.
RFC3339 = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-5][0-9](\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})$"
)
RFC3339_RE = re.compile(RFC3339.removesuffix("$"))  # used with fullmatch: no trailing newline
# What str.strip() removes (str.isspace), spelled out so that the published pattern means the
# same in every regex dialect; tests/api/test_openapi.py checks the two agree.
WHITESPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Text PostgreSQL can store (see clean_text). The pattern leaves out the other half of the
# rule, no unpaired surrogate: regex engines that work on code points (Rust's, used by
# validators and Schemathesis) cannot even spell a surrogate; the descriptions state it.
TEXT_CHAR = "[^\\u0000]"
TEXT_PATTERN = f"^{TEXT_CHAR}*$"
TEXT_RULE = "No NUL character (\\u0000), no unpaired surrogate (\\ud800-\\udfff)."
NOT_BLANK_PATTERN = f"^{TEXT_CHAR}*[^{WHITESPACE}\\u0000]{TEXT_CHAR}*$"
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


def rfc3339_or_datetime(value: Any) -> Any:
    # Pydantic would read a number (even "1764150000") as a Unix time, and takes forms that
    # are not RFC 3339 (no seconds, "+0000"); the API promises RFC 3339, the schema's
    # date-time. Python callers may pass a datetime.
    if isinstance(value, dt.datetime):
        return value
    if not isinstance(value, str) or not RFC3339_RE.fullmatch(value):
        raise ValueError(
            "Must be an RFC 3339 date-time with a UTC offset, e.g. 2026-11-26T09:30:00+00:00."
        )
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


def _max_quantity() -> Decimal:
    maximum = Decimal(settings.USAGE_MAX_QUANTITY)
    if maximum != maximum.to_integral_value() or maximum < 1:
        raise ImproperlyConfigured("USAGE_MAX_QUANTITY must be a whole number of at least 1.")
    return maximum


def quantity_pattern(maximum: Decimal, places: int = QUANTITY_PLACES) -> str:
    """The decimal strings x with 0 < x <= maximum (a whole number) and at most `places`
    decimals, written plainly (no sign, exponent or leading zero), as one regular expression
    that reads the same in ECMA-262 (JSON Schema) and Python."""
    digits = str(int(maximum))
    fraction = f"(?:\\.[0-9]{{1,{places}}})?"
    below = []  # whole parts 1 .. maximum - 1, any fraction
    if len(digits) > 1:
        below.append(f"[1-9][0-9]{{0,{len(digits) - 2}}}")
    for i, digit in enumerate(digits):
        low, high = (1 if i == 0 else 0), int(digit) - 1
        if low <= high:
            rest = len(digits) - i - 1
            below.append(f"{digits[:i]}[{low}-{high}]" + (f"[0-9]{{{rest}}}" if rest else ""))
    # 0.xxxx, not all zeros: the first non-zero decimal, then any digits up to `places`
    under_one = [
        "0" * k + "[1-9]" + (f"[0-9]{{0,{places - 1 - k}}}" if places - 1 - k else "")
        for k in range(places)
    ]
    options = [f"0\\.(?:{'|'.join(under_one)})", f"{digits}(?:\\.0{{1,{places}}})?"]
    if below:
        options.insert(0, f"(?:{'|'.join(below)}){fraction}")
    return f"^(?:{'|'.join(options)})$"


# A quantity string has this shape; then 0 < value <= the maximum (pydantic's messages).
# Together the two are exactly quantity_pattern() (tests/api/test_openapi.py checks it).
QUANTITY_FORMAT = re.compile(rf"-?(?:0|[1-9][0-9]*)(?:\.[0-9]{{1,{QUANTITY_PLACES}}})?")
QUANTITY_FORMAT_MESSAGE = (
    f'Must be a decimal string such as "12.5" (digits, at most {QUANTITY_PLACES} decimal '
    "places, no exponent or leading zeros) or a JSON integer."
)


def _quantity_in(value: Any) -> Any:
    # The API takes a quantity as a decimal string or a JSON integer, never as a fractional
    # JSON number: a binary float cannot promise 4 exact decimals (0.1 + 0.2 is not 0.3), and
    # JSON Schema's multipleOf on floats differs between validators. Python callers may pass
    # a Decimal.
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        raise ValueError(QUANTITY_FORMAT_MESSAGE)
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if value.is_integer():  # 2.0 is the integer 2 in JSON Schema
            return Decimal(int(value))
        if value <= 0:
            raise ValueError("Input should be greater than 0")  # as for any other quantity
        plain = format(Decimal(repr(value)), "f") if math.isfinite(value) else ""
        if QUANTITY_FORMAT.fullmatch(plain):
            raise ValueError(
                f'Send a fractional quantity as a decimal string: "{plain}", not {plain} '
                f"(at most {QUANTITY_PLACES} decimal places)."
            )
        raise ValueError(
            "Send a fractional quantity as a decimal string with at most "
            f"{QUANTITY_PLACES} decimal places, not as a JSON number."
        )
    if isinstance(value, str) and len(value) <= 40 and QUANTITY_FORMAT.fullmatch(value):
        return Decimal(value)
    raise ValueError(QUANTITY_FORMAT_MESSAGE)


def quantity_json_schema() -> dict:
    maximum = _max_quantity()
    return {
        "anyOf": [
            {"type": "string", "pattern": quantity_pattern(maximum)},
            {"type": "integer", "minimum": 1, "maximum": int(maximum)},
        ],
        "description": (
            f"Units (minutes, messages, pages …): more than 0, at most {maximum}, with at most "
            f'{QUANTITY_PLACES} decimal places. A decimal string ("12.5", "0.0001", "3") or a '
            'JSON integer (3); a fractional JSON number (12.5) is refused: send "12.5".'
        ),
    }


METADATA_RULE = (
    f"Any small JSON object, kept with the record: at most {METADATA_MAX_BYTES} bytes once "
    f"serialised as JSON, values nested at most {METADATA_MAX_DEPTH} levels deep (a value "
    f"at level {METADATA_MAX_DEPTH} is a scalar or empty), finite numbers, and text (keys "
    "too) without NUL characters or unpaired surrogates."
)


def _metadata_level(depth: int) -> str:
    return f"MetadataValue{depth}"


def _metadata_levels() -> dict[str, dict]:
    # One named schema per nesting level (JSON Schema has no depth keyword); level 1 is a
    # value of the metadata object itself.
    key = {"type": "string", "pattern": TEXT_PATTERN}
    scalars = [key, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]
    schemas = {}
    for depth in range(1, METADATA_MAX_DEPTH + 1):
        if depth == METADATA_MAX_DEPTH:
            inner = [{"type": "array", "maxItems": 0}, {"type": "object", "maxProperties": 0}]
        else:
            below = {"$ref": f"#/components/schemas/{_metadata_level(depth + 1)}"}
            inner = [
                {"type": "array", "items": below},
                {"type": "object", "propertyNames": key, "additionalProperties": below},
            ]
        schemas[_metadata_level(depth)] = {
            "description": f"A metadata value at nesting level {depth}.",
            "anyOf": scalars + inner,
        }
    return schemas


def metadata_levels_publish(components: dict[str, dict]) -> None:
    """Add the metadata value schemas to an OpenAPI document's components and point the
    event's metadata at them. (Pydantic cannot emit references to schemas it does not
    own, so the API adds them to the document it publishes.)"""
    components.update(_metadata_levels())
    metadata = components["UsageEvent"]["properties"]["metadata"]
    metadata["additionalProperties"] = {"$ref": f"#/components/schemas/{_metadata_level(1)}"}


METADATA_JSON_SCHEMA = {
    "type": "object",
    "propertyNames": {"type": "string", "pattern": TEXT_PATTERN},
    "description": METADATA_RULE,
}


Text = Annotated[str, AfterValidator(clean_text)]
OffsetDateTime = Annotated[
    AwareDatetime, BeforeValidator(rfc3339_or_datetime), AfterValidator(_as_utc)
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
        alias="id",
        min_length=1,
        max_length=ID_MAX,
        json_schema_extra={"pattern": NOT_BLANK_PATTERN},
        description=(
            "Your unique id of the event (unique within the batch and your company): not only "
            f"whitespace. {TEXT_RULE}"
        ),
    )
    office: Text = Field(
        min_length=1,
        max_length=SLUG_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description=f"Slug of one of your company's offices. {TEXT_RULE}",
    )
    service: Text = Field(
        min_length=1,
        max_length=SLUG_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description=f"Code of an active service, e.g. sms. {TEXT_RULE}",
    )
    quantity: Annotated[
        Decimal, BeforeValidator(_quantity_in), WithJsonSchema(quantity_json_schema())
    ] = Field(gt=0, le=_max_quantity(), decimal_places=QUANTITY_PLACES, allow_inf_nan=False)
    occurred_at: OffsetDateTime = Field(
        description=(
            "RFC 3339 date-time with a UTC offset, e.g. 2026-11-26T09:30:00+00:00: not before "
            f"{EARLIEST:%Y-%m-%dT%H:%MZ}, and at most {settings.USAGE_MAX_FUTURE_SECONDS} "
            "seconds after the moment the batch arrives. Late events: not older than your "
            f"company's late-event window (default {LATE_WINDOW_DEFAULT} days, at most "
            f"{LATE_WINDOW_MAX}; customer care sets it), i.e. not before the moment the batch "
            "arrives minus that many days, and not in a month whose usage has been archived; "
            "such an event is refused with 422 naming the window, and nothing of its batch is "
            "charged. An id already charged comes back as a duplicate whatever its age. A late "
            "event within the window is charged to the allowance of the period it occurred in."
        ),
        json_schema_extra={"pattern": RFC3339},
    )
    user_label: Text = Field(
        "",
        alias="user",
        max_length=USER_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description=f"Who generated the usage. {TEXT_RULE}",
    )
    phone_number: Text = Field(
        "",
        alias="number",
        max_length=NUMBER_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description=f"Phone number involved. {TEXT_RULE}",
    )
    metadata: Annotated[
        dict[str, Any],
        AfterValidator(_small_json_object),
        WithJsonSchema(METADATA_JSON_SCHEMA),
    ] = Field(default_factory=dict)


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
