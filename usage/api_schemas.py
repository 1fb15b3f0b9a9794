"""Request and response shapes of the JSON API. Amounts leave as strings with 4 decimals."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated, Any

from django.conf import settings
from ninja import Schema
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from core.money import PLACES

AMOUNT_PATTERN = r"^-?[0-9]+\.[0-9]{4}$"
ISO_DATE_START = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}")
METADATA_MAX_BYTES = 4096
METADATA_MAX_DEPTH = 8


ZERO_TEXT = "0.0000"


def money(value: Decimal | None) -> str | None:
    if value is None:
        return None
    if not value:
        return ZERO_TEXT  # most parts of a split are zero
    if type(value) is not Decimal:
        value = Decimal(value)
    return format(value.quantize(PLACES, rounding=ROUND_HALF_UP), "f")


def _clean_text(value: str) -> str:
    # PostgreSQL text cannot hold NUL, and an unpaired surrogate cannot be encoded.
    if "\x00" in value:
        raise ValueError("Must not contain NUL characters.")
    if value.isascii():
        return value  # no surrogates in ASCII
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("Must be valid Unicode text (no unpaired surrogates).") from None
    return value


def _iso_string_only(value: Any) -> Any:
    # Pydantic would read a number (even "1764150000") as a Unix time; the API promises ISO 8601.
    if not isinstance(value, str) or not ISO_DATE_START.match(value):
        raise ValueError("Must be an ISO 8601 date-time string with a UTC offset.")
    return value


def _as_utc(value: dt.datetime) -> dt.datetime:
    # PostgreSQL refuses offsets beyond ±15:59 that ISO 8601 parsers accept; UTC is exact.
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("Out of range.") from None


def _json_safe(value: Any, depth: int = 0) -> None:
    if depth > METADATA_MAX_DEPTH:
        raise ValueError(f"Nested deeper than {METADATA_MAX_DEPTH} levels.")
    if isinstance(value, str):
        _clean_text(value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError("Numbers must be finite.")
    elif isinstance(value, dict):
        for key, item in value.items():
            _clean_text(key)
            _json_safe(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _json_safe(item, depth + 1)


def _small_json_object(value: dict) -> dict:
    if not value:
        return value
    _json_safe(value)
    if len(json.dumps(value).encode()) > METADATA_MAX_BYTES:
        raise ValueError(f"At most {METADATA_MAX_BYTES} bytes of JSON.")
    return value


Text = Annotated[str, AfterValidator(_clean_text)]
OffsetDateTime = Annotated[
    AwareDatetime, BeforeValidator(_iso_string_only), AfterValidator(_as_utc)
]
Amount = Annotated[str, Field(pattern=AMOUNT_PATTERN, examples=["12.5000"])]


# The batch shapes are plain pydantic models, not ninja Schemas: a Schema's wrap validator
# (made for reading Django objects) runs every event through validation twice when extra
# fields are forbidden, and then again through an attribute proxy, four passes per event of
# a 1000-event batch. A plain model validates each event once, with the same rules and errors.
class UsageEventIn(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
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

    id: Text = Field(min_length=1, max_length=200, description="Your unique id of the event.")
    office: Text = Field(min_length=1, max_length=60, description="Office slug.")
    service: Text = Field(min_length=1, max_length=60, description="Service code, e.g. sms.")
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
    user: Text = Field("", max_length=200, description="Who generated the usage.")
    number: Text = Field("", max_length=40, description="Phone number involved.")
    metadata: Annotated[dict[str, Any], AfterValidator(_small_json_object)] = Field(
        default_factory=dict, description="Any small JSON object, kept with the record."
    )


class UsageBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[UsageEventIn] = Field(min_length=1, max_length=settings.USAGE_BATCH_MAX)


class SplitOut(BaseModel):
    allowance: Amount
    pool: Amount
    wallet: Amount
    ai_credits: Amount
    uncovered: Amount


class UsageRecordOut(BaseModel):
    id: str = Field(description="Your event id.")
    office: str
    service: str
    credit_kind: str
    quantity: Amount
    rate: Amount
    cost: Amount
    split: SplitOut
    period: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$", description="Billing month, YYYY-MM.")
    occurred_at: str = Field(
        json_schema_extra={"format": "date-time"}, description="As sent, to the microsecond."
    )
    pooling_on: bool
    funding_balance_after: Amount | None = Field(
        description="Balance of the account that funded the event, right after it."
    )
    user: str
    number: str
    metadata: dict[str, Any]
    created_at: str = Field(json_schema_extra={"format": "date-time"})


class IngestedEventOut(UsageRecordOut):
    duplicate: bool = Field(description="Already charged earlier; this is the original charge.")


class UsageBatchOut(BaseModel):
    charged: int
    duplicates: int
    events: list[IngestedEventOut]


class UsagePageOut(BaseModel):
    results: list[UsageRecordOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class UsageFilter(Schema):
    office: Text | None = Field(None, max_length=60, description="Office slug.")
    service: Text | None = Field(None, max_length=60, description="Service code.")
    occurred_from: OffsetDateTime | None = Field(
        None, alias="from", description="Earliest occurred_at (inclusive), with offset."
    )
    occurred_to: OffsetDateTime | None = Field(
        None, alias="to", description="Latest occurred_at (exclusive), with offset."
    )
    cursor: Text | None = Field(None, max_length=200)
    limit: int = Field(100, ge=1, le=500)


# The balance's nested parts are plain pydantic models: they are built from dicts, and a
# ninja Schema would wrap each of the hundreds of them (2 per office) in a DjangoGetter
# before validating it, most of the endpoint's time.
class AllowanceOut(BaseModel):
    included: Amount
    used: Amount
    remaining: Amount
    uncovered: Amount = Field(description="Overage no balance covered this period.")


class OfficeBalanceOut(BaseModel):
    office: str
    name: str
    is_primary: bool
    wallet_balance: Amount
    allowances: dict[str, AllowanceOut] = Field(description="Per credit kind.")


class BalanceOut(Schema):
    company: str
    period: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}$")
    pooling_enabled: bool
    pool_balance: Amount
    ai_agent_office: str = Field(description="The primary office, which holds AI credits.")
    ai_agent_balance: Amount
    offices: list[OfficeBalanceOut]


class ErrorItem(Schema):
    index: int | None = Field(None, description="Position in the batch, when per event.")
    field: str
    message: str


class ErrorOut(Schema):
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)
