"""Usage endpoints: send a batch of usage events, list usage records for reconciliation."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re

from django.db.models import Q, prefetch_related_objects
from ninja import Query, Router

from core.errors import ValidationFailed
from core.json_render import json_response
from offices.models import Office
from usage.api_schemas import (
    CURSOR_PATTERN,
    ErrorOut,
    UsageBatchIn,
    UsageBatchOut,
    UsageFilter,
    UsagePageOut,
    money,
)
from usage.models import Service, UsageRecord
from usage.services import usage_ingest

router = Router(tags=["usage"])

ERRORS = {code: ErrorOut for code in (400, 401, 413, 415, 422)}
MAX_BIGINT = 2**63 - 1
CURSOR_RE = re.compile(CURSOR_PATTERN.removesuffix("$"))  # fullmatch: no trailing newline
LIST = "usage_events_list"
# OpenAPI links: what a client (or schemathesis's stateful phase) may do with an answer.
LIST_AFTER_CHARGE = {
    "ListTheOfficeUsage": {
        "operationId": LIST,
        "description": "The office's usage records from the first charged event on.",
        "parameters": {
            "office": "$response.body#/events/0/office",
            "service": "$response.body#/events/0/service",
            "from": "$response.body#/events/0/occurred_at",
        },
    }
}
LIST_NEXT_PAGE = {
    "NextPage": {
        "operationId": LIST,
        "description": "The next page: pass `next_cursor` as `cursor`.",
        "parameters": {"cursor": "$response.body#/next_cursor"},
    },
}


def record_out(record: UsageRecord) -> dict:
    """One usage record as the API shows it; needs office and service loaded."""
    return {
        "id": record.external_id,
        "office": record.office.slug,
        "service": record.service.code,
        "credit_kind": record.credit_kind,
        "quantity": money(record.quantity),
        "rate": money(record.rate),
        "cost": money(record.cost),
        "split": {
            "allowance": money(record.allowance_part),
            "pool": money(record.pool_part),
            "wallet": money(record.wallet_part),
            "ai_credits": money(record.ai_part),
            "uncovered": money(record.uncovered),
        },
        "period": record.period.isoformat()[:7],  # YYYY-MM (strftime is much slower)
        "occurred_at": record.occurred_at.astimezone(dt.UTC).isoformat(),
        "pooling_on": record.pooling_on,
        "funding_balance_after": money(record.funding_balance_after),
        "user": record.user_label,
        "number": record.phone_number,
        "metadata": record.metadata,
        "created_at": record.created_at.astimezone(dt.UTC).isoformat(),
    }


@router.post(
    "/usage-events",
    response={200: UsageBatchOut, **ERRORS},
    summary="Charge a batch of usage events",
    description=(
        "All or nothing: 1 to 1000 events in a body of at most 1 MiB; if any is invalid "
        "nothing is charged and the 422 lists each problem by index and field. An event id "
        "already charged with the same office, service, quantity and occurred_at is not "
        "charged again: its original charge comes back with `duplicate: true`; the same id "
        "with other content is a conflict on that event (422). Which offices and services "
        "exist, and the occurred_at window, are checked against your company and the clock."
    ),
    operation_id="usage_events_create",
    openapi_extra={"responses": {200: {"links": LIST_AFTER_CHARGE}}},
)
def usage_events_create(request, batch: UsageBatchIn):
    ingested = usage_ingest(company=request.auth.company, events=batch.events)
    # New records come back with office and service attached; duplicates were read back
    # plainly, so load theirs in two queries rather than two per event.
    prefetch_related_objects([i.record for i in ingested if i.duplicate], "office", "service")
    out = []
    for i in ingested:
        item = record_out(i.record)
        item["duplicate"] = i.duplicate
        out.append(item)
    duplicates = sum(1 for i in ingested if i.duplicate)
    # Rendered here: validating a thousand records against UsageBatchOut, then dumping them
    # again, took a quarter of the endpoint's time. record_out() builds exactly that shape
    # (tests/api/test_usage_events.py validates answers against the schema).
    return json_response(
        {"charged": len(out) - duplicates, "duplicates": duplicates, "events": out}
    )


def _cursor_encode(record: UsageRecord) -> str:
    raw = json.dumps([record.occurred_at.isoformat(), record.pk]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[dt.datetime, int]:
    try:
        if not CURSOR_RE.fullmatch(cursor):
            raise ValueError  # b64decode would skip characters outside the alphabet
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        moment, pk = json.loads(raw)
        moment = dt.datetime.fromisoformat(moment)
        if moment.tzinfo is None or type(pk) is not int or not 0 < pk <= MAX_BIGINT:
            raise ValueError
        moment = moment.astimezone(dt.UTC)
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError, OverflowError):
        raise ValidationFailed(
            "cursor: not a cursor this API handed out.",
            [{"field": "cursor", "message": "Use the next_cursor of a previous page."}],
        ) from None
    return moment, pk


@router.get(
    "/usage-events",
    response={200: UsagePageOut, **ERRORS},
    summary="List usage records",
    description=(
        "The company's usage records, newest first (occurred_at, then id, descending). "
        "Follow `next_cursor` until it is null. An unknown office or service, or a cursor "
        "this API did not hand out, is refused (422)."
    ),
    operation_id=LIST,
    openapi_extra={"responses": {200: {"links": LIST_NEXT_PAGE}}},
)
def usage_events_list(request, filters: Query[UsageFilter]):
    company = request.auth.company
    errors = []
    records = UsageRecord.objects.filter(company=company)
    if filters.office is not None:
        office = Office.objects.filter(company=company, slug=filters.office).first()
        if office is None:
            errors.append({"field": "office", "message": f"No office {filters.office!r}."})
        records = records.filter(office=office)
    if filters.service is not None:
        service = Service.objects.filter(code=filters.service).first()
        if service is None:
            errors.append({"field": "service", "message": f"No service {filters.service!r}."})
        records = records.filter(service=service)
    if filters.occurred_from is not None:
        records = records.filter(occurred_at__gte=filters.occurred_from)
    if filters.occurred_to is not None:
        records = records.filter(occurred_at__lt=filters.occurred_to)
    if (
        filters.occurred_from is not None
        and filters.occurred_to is not None
        and filters.occurred_from > filters.occurred_to
    ):
        errors.append({"field": "from", "message": "Must not be after `to`."})
    if filters.cursor:
        try:
            moment, pk = _cursor_decode(filters.cursor)
        except ValidationFailed as exc:
            errors += exc.errors
        else:
            records = records.filter(Q(occurred_at__lt=moment) | Q(occurred_at=moment, pk__lt=pk))
    if errors:
        raise ValidationFailed("Invalid filters: " + "; ".join(e["field"] for e in errors), errors)
    page = list(
        records.select_related("office", "service").order_by("-occurred_at", "-id")[
            : filters.limit + 1
        ]
    )
    more = len(page) > filters.limit
    page = page[: filters.limit]
    return {
        "results": [record_out(r) for r in page],
        "next_cursor": _cursor_encode(page[-1]) if more else None,
    }
