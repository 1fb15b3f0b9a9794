"""Request and response shapes of the JSON API. Amounts leave as strings with 4 decimals."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from django.conf import settings
from ninja import Schema
from pydantic import AfterValidator, AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field

from core.api_schemas import Amount, ErrorOut, Period, money
from usage.events import (
    RFC3339,
    SLUG_MAX,
    TEXT_PATTERN,
    TEXT_RULE,
    Text,
    UsageEvent,
    rfc3339_or_datetime,
)

__all__ = ["ErrorOut", "money"]
CURSOR_MAX = 200
CURSOR_PATTERN = r"^[A-Za-z0-9_-]*$"  # unpadded URL-safe base64, as the API hands it out
LIMIT_MAX = 500


def _utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ValueError("Out of range: before year 1 or after year 9999 in UTC.") from None


# Unlike an event's occurred_at, a filter bound may be any instant (1999 included) that UTC
# can show.
FilterDateTime = Annotated[
    AwareDatetime, BeforeValidator(rfc3339_or_datetime), AfterValidator(_utc)
]
BOUND_RULE = "RFC 3339 with offset, within years 0001-9999 once converted to UTC"


# The batch shapes are plain pydantic models, not ninja Schemas: a Schema's wrap validator
# (made for reading Django objects) runs every event through validation twice when extra
# fields are forbidden, and then again through an attribute proxy, four passes per event of
# a 1000-event batch. A plain model validates each event once, with the same rules and errors.
class UsageBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[UsageEvent] = Field(min_length=1, max_length=settings.USAGE_BATCH_MAX)


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
    period: Period
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
    office: Text | None = Field(
        None,
        max_length=SLUG_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description=f"Slug of one of your company's offices. {TEXT_RULE}",
    )
    service: Text | None = Field(
        None,
        max_length=SLUG_MAX,
        json_schema_extra={"pattern": TEXT_PATTERN},
        description=f"A service code. {TEXT_RULE}",
    )
    occurred_from: FilterDateTime | None = Field(
        None,
        alias="from",
        json_schema_extra={"pattern": RFC3339},
        description=f"Earliest occurred_at (inclusive): {BOUND_RULE}; not after `to`.",
    )
    occurred_to: FilterDateTime | None = Field(
        None,
        alias="to",
        json_schema_extra={"pattern": RFC3339},
        description=f"Latest occurred_at (exclusive): {BOUND_RULE}.",
    )
    cursor: Text | None = Field(
        None,
        max_length=CURSOR_MAX,
        json_schema_extra={"pattern": CURSOR_PATTERN},
        description="The `next_cursor` of a previous page, as it was handed out.",
    )
    limit: int = Field(100, ge=1, le=LIMIT_MAX, description="Records per page.")
