"""CSV export of a filtered usage history: every row, streamed, never held in memory."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator

from django.db.models import QuerySet
from django.utils import timezone

from usage.models import UsageRecord

CHUNK_SIZE = 2000
HEADER = [
    "time",
    "office",
    "service",
    "credit_kind",
    "user",
    "number",
    "quantity",
    "unit",
    "rate",
    "cost",
    "allowance",
    "pool",
    "wallet",
    "ai_credits",
    "uncovered",
    "pooling",
    "event_id",
]


class _Echo:
    """A file-like object whose write() hands the line back to the csv writer's caller."""

    def write(self, value: str) -> str:
        return value


PLAIN_NUMBER = re.compile(r"[+\-0-9 ().]+")


def _safe(text: str) -> str:
    # A cell starting with = + - @ would be run as a formula by spreadsheet programs;
    # phone numbers such as +1 555 0100 are left as they are.
    if not text:
        return text
    if text[0] in "=@\t\r" or (text[0] in "+-" and not PLAIN_NUMBER.fullmatch(text)):
        return "'" + text
    return text


def usage_csv_rows(queryset: QuerySet[UsageRecord], tz) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    rows = queryset.select_related("office", "service").iterator(chunk_size=CHUNK_SIZE)
    for r in rows:
        yield writer.writerow(
            [
                timezone.localtime(r.occurred_at, tz).isoformat(),
                _safe(r.office.name),
                r.service.code,
                r.credit_kind,
                _safe(r.user_label),
                _safe(r.phone_number),
                r.quantity,
                r.service.unit,
                r.rate,
                r.cost,
                r.allowance_part,
                r.pool_part,
                r.wallet_part,
                r.ai_part,
                r.uncovered,
                "on" if r.pooling_on else "off",
                _safe(r.external_id),
            ]
        )
