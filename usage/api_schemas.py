"""Request and response shapes of the JSON API. Amounts leave as strings with 4 decimals."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from ninja import Schema
from pydantic import BaseModel, ConfigDict, Field

from core.api_schemas import Amount, ErrorOut, Period, money
from usage.events import SLUG_MAX, OffsetDateTime, Text, UsageEvent

__all__ = ["ErrorOut", "money"]
CURSOR_MAX = 200


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
    office: Text | None = Field(None, max_length=SLUG_MAX, description="Office slug.")
    service: Text | None = Field(None, max_length=SLUG_MAX, description="Service code.")
    occurred_from: OffsetDateTime | None = Field(
        None, alias="from", description="Earliest occurred_at (inclusive), with offset."
    )
    occurred_to: OffsetDateTime | None = Field(
        None, alias="to", description="Latest occurred_at (exclusive), with offset."
    )
    cursor: Text | None = Field(None, max_length=CURSOR_MAX)
    limit: int = Field(100, ge=1, le=500)
