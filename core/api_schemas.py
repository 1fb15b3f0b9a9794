"""Shapes every JSON API answer shares: amounts as strings with 4 decimals, errors."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from typing import Annotated

from ninja import Schema
from pydantic import Field

from core.money import PLACES

AMOUNT_PATTERN = r"^-?[0-9]+\.[0-9]{4}$"
ZERO_TEXT = "0.0000"


def money(value: Decimal | None) -> str | None:
    if value is None:
        return None
    if not value:
        return ZERO_TEXT  # most parts of a split are zero
    if type(value) is not Decimal:
        value = Decimal(value)
    return format(value.quantize(PLACES, rounding=ROUND_HALF_UP), "f")


Amount = Annotated[str, Field(pattern=AMOUNT_PATTERN, examples=["12.5000"])]
# A billing month, YYYY-MM (years 0001-9999, months 01-12), written without look-ahead:
# the schema's readers include regex engines without it.
PERIOD_PATTERN = r"^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-(0[1-9]|1[0-2])$"
Period = Annotated[str, Field(pattern=PERIOD_PATTERN, description="Billing month, YYYY-MM.")]


class ErrorItem(Schema):
    index: int | None = Field(None, description="Position in the batch, when per event.")
    field: str
    message: str


class ErrorOut(Schema):
    detail: str
    errors: list[ErrorItem] = Field(default_factory=list)
