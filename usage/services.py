"""Usage ingestion: rate each event, ask credits to charge it (SPEC §3), record it once.

One batch flows: validate (usage.events, then the company's offices and services) →
read the ids already charged → open a credits.charging session (company lock) →
prepare the records (usage.records) → lock the balances → draw each event in order →
write the records → flush the session's ledger entries and rollups → commit."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from core.db import POSTGRESQL, dialect, retry_on_conflict
from core.errors import ValidationFailed
from core.money import q
from credits.charging import ChargingSession
from credits.periods import period_of
from offices.models import Company, Office
from usage.events import UsageEvent, events_parse
from usage.late import late_refusals
from usage.models import Service, UsageKey, UsageRecord
from usage.records import Charge, batch_for, writer_for


@dataclass(frozen=True)
class IngestedEvent:
    record: UsageRecord
    duplicate: bool


def _lookup_key(value) -> bool:
    return isinstance(value, str) and "\x00" not in value


def _offices_and_services(company, slugs, codes) -> tuple[dict, dict]:
    """The company's offices of `slugs` and the active services of `codes`, by key."""
    if dialect() == POSTGRESQL:
        # Hand-written: building these two ORM queries costs more than answering them
        # (a quarter of a single event's CPU, profiled). An office's plan is loaded only
        # when a new month's allowance rows need it (_allowances_create).
        offices = Office.objects.raw(
            f"SELECT * FROM {Office._meta.db_table} WHERE company_id = %s AND slug = ANY(%s)",  # noqa: S608
            [company.pk, sorted(slugs)],
        )
        services = Service.objects.raw(
            f"SELECT * FROM {Service._meta.db_table} WHERE active AND code = ANY(%s)",  # noqa: S608
            [sorted(codes)],
        )
    else:
        # .order_by(): into a dict, the models' default ordering would only cost time
        offices = (
            Office.objects.filter(company=company, slug__in=slugs).select_related("plan").order_by()
        )
        services = Service.objects.filter(code__in=codes, active=True).order_by()
    return {o.slug: o for o in offices}, {s.code: s for s in services}


def _validate(company: Company, items) -> tuple[list[UsageEvent], dict, dict]:
    """The batch's events, offices and services; raises with every problem of every
    event (by index and field) if there is any."""
    limit = settings.USAGE_BATCH_MAX
    if not items:
        raise ValidationFailed(
            "events: send at least one event.",
            [{"index": None, "field": "events", "message": "Send at least one event."}],
        )
    if len(items) > limit:
        raise ValidationFailed(
            f"events: at most {limit} events per batch.",
            [
                {
                    "index": None,
                    "field": "events",
                    "message": f"{len(items)} events sent; at most {limit} per batch.",
                }
            ],
        )
    events, errors = events_parse(items)
    # (office, service) of each event; an item that failed its own checks is still
    # checked against the company, so every problem is reported at once.
    keys = {i: (e.office, e.service) for i, e in events.items()}
    if errors:
        keys |= {
            i: (item.get("office"), item.get("service"))
            for i, item in enumerate(items)
            if i not in events and isinstance(item, Mapping)
        }
    offices, services = _offices_and_services(
        company,
        {o for o, _ in keys.values() if _lookup_key(o)},
        {s for _, s in keys.values() if _lookup_key(s)},
    )
    reported = {(e["index"], e["field"]) for e in errors}
    for i, (office, service) in keys.items():
        if office not in offices and (i, "office") not in reported:
            msg = f"No office {office!r} in this company."
            errors.append({"index": i, "field": "office", "message": msg})
        if service not in services and (i, "service") not in reported:
            msg = f"Unknown service {service!r}."
            errors.append({"index": i, "field": "service", "message": msg})
    latest = timezone.now() + dt.timedelta(seconds=settings.USAGE_MAX_FUTURE_SECONDS)
    seen: dict[str, int] = {}
    for i, event in events.items():
        ext = event.external_id
        if ext in seen:
            msg = f"Duplicate id {ext!r} in this batch (also at index {seen[ext]})."
            errors.append({"index": i, "field": "id", "message": msg})
        else:
            seen[ext] = i
        if event.occurred_at > latest:
            errors.append({"index": i, "field": "occurred_at", "message": "Lies in the future."})
    if errors:
        errors.sort(key=lambda e: e["index"])
        count = len({e["index"] for e in errors})
        noun = "event is" if count == 1 else "events are"
        raise ValidationFailed(f"{count} {noun} invalid; nothing was charged.", errors)
    return list(events.values()), offices, services


def usage_ingest(
    *, company: Company, events, actor=None, writer: str | None = None
) -> list[IngestedEvent]:
    """Charge a batch of usage events all or nothing, in order: allowance first, then the
    balance that funds the event's credit kind, the rest uncovered. An id already charged
    is returned as a duplicate, not charged again. `events` are UsageEvents (validated
    when made) or mappings (validated here); `writer` picks the write path (default:
    the database's own, core.db.dialect)."""
    events, offices, services = _validate(company, events)
    existing, created = _ingest(
        company=company,
        events=events,
        offices=offices,
        services=services,
        actor=actor,
        writer=writer or dialect(),
    )
    # Built after the transaction: the new records' model instances are not needed while
    # the balances are locked.
    records = created()
    return [
        IngestedEvent(record=existing[e.external_id], duplicate=True)
        if e.external_id in existing
        else IngestedEvent(record=records[e.external_id], duplicate=False)
        for e in events
    ]


CHARGED_SQL = (
    f"SELECT external_id, record_id, occurred_at FROM {UsageKey._meta.db_table} "  # noqa: S608
    "WHERE company_id = %s AND external_id = ANY(%s)"
)


def _charged(company: Company, ids: list[str]) -> list[tuple[str, int, dt.datetime]]:
    """(external id, record pk, occurred_at) of those of `ids` this company was charged
    for already, from the guard table (UsageKey). Read before the locks: a batch racing
    ours with the same id fails our insert on the guard's unique key, and the retry then
    finds it here."""
    if dialect() == POSTGRESQL:
        with connection.cursor() as cursor:
            cursor.execute(CHARGED_SQL, [company.pk, ids])
            return cursor.fetchall()
    return list(
        UsageKey.objects.filter(company=company, external_id__in=ids)
        .order_by()
        .values_list("external_id", "record_id", "occurred_at")
    )


def _charged_records(company: Company, charged, events) -> dict[str, UsageRecord]:
    """The records of the charged ids, by external id (found by primary key and moment:
    on PostgreSQL only the months they lie in are searched). An id whose record is no
    longer in the table was archived with its month (`usage_retention`): it stays
    charged, and is refused, as nothing can be compared with it."""
    records = {
        r.external_id: r
        for r in UsageRecord.objects.filter(
            company=company,
            pk__in=[pk for _, pk, _ in charged],
            occurred_at__in={moment for _, _, moment in charged},
        ).order_by()
    }
    if missing := {ext for ext, _, _ in charged if ext not in records}:
        errors = [
            {
                "index": index,
                "field": "id",
                "message": (
                    f"Id {e.external_id!r} was charged in a month that has been archived; "
                    "send a new id for a new event."
                ),
            }
            for index, e in enumerate(events)
            if e.external_id in missing
        ]
        raise ValidationFailed(
            f"{len(missing)} event id(s) were charged in archived months; nothing was charged.",
            errors,
        )
    return records


def _refuse_conflicts(events, existing, offices, services) -> None:
    """An id charged before comes back as a duplicate only when it is the same event
    (office, service, quantity, occurred_at); other content under that id is a conflict
    on that item, and refuses the batch like any other bad item (SPEC §7)."""
    errors = []
    for index, e in enumerate(events):
        record = existing.get(e.external_id)
        if record is None:
            continue
        differs = [
            name
            for name, same in (
                ("office", record.office_id == offices[e.office].pk),
                ("service", record.service_id == services[e.service].pk),
                ("quantity", record.quantity == q(e.quantity)),
                ("occurred_at", record.occurred_at == e.occurred_at),
            )
            if not same
        ]
        if differs:
            errors.append(
                {
                    "index": index,
                    "field": "id",
                    "message": (
                        f"Conflict: id {e.external_id!r} was already charged with another "
                        f"{', '.join(differs)}; send a new id for a new event."
                    ),
                }
            )
    if errors:
        noun = "event conflicts" if len(errors) == 1 else "events conflict"
        raise ValidationFailed(
            f"{len(errors)} {noun} with an earlier charge; nothing was charged.", errors
        )


def _refuse_late(company: Company, fresh) -> None:
    """Events older than the company's late-event window, or of an archived month, are
    refused, and with them the batch (SPEC §10.3). Checked on the events not charged yet:
    an id charged before still comes back as the duplicate it is."""
    if errors := late_refusals(company, fresh):
        noun = "event is" if len(errors) == 1 else "events are"
        raise ValidationFailed(
            f"{len(errors)} {noun} too late to charge; nothing was charged.", errors
        )


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def _ingest(*, company, events, offices, services, actor, writer):
    """(records already charged by external id, a function giving the new records by id)."""
    existing = {}
    if charged := _charged(company, [e.external_id for e in events]):
        existing = _charged_records(company, charged, events)
    if existing:
        _refuse_conflicts(events, existing, offices, services)
    fresh = [e for e in events if e.external_id not in existing]
    _refuse_late(company, [(i, e) for i, e in enumerate(events) if e.external_id not in existing])
    if not fresh:
        return existing, dict
    batch = uuid.uuid4()
    session = ChargingSession.open(company_id=company.pk, batch=batch, actor=actor, writer=writer)
    company = session.company
    tz = company.tz
    charges = []
    for e in fresh:
        service = services[e.service]
        quantity = q(e.quantity)
        charges.append(
            Charge(
                event=e,
                office=offices[e.office],
                service=service,
                quantity=quantity,
                cost=q(quantity * service.rate),
                period=period_of(e.occurred_at, tz),
            )
        )
    # Everything that does not depend on the balances is prepared before they are locked.
    records = writer_for(writer)(
        batch=batch_for(company=company, batch=batch, actor=actor),
        charges=charges,
        company=company,
        actor=actor,
    )
    session.lock(
        {(c.office.id, c.service.credit_kind, c.period) for c in charges},
        offices={o.pk: o for o in offices.values()},
    )
    for c in charges:
        c.draw = session.draw(
            office_id=c.office.id, credit_kind=c.service.credit_kind, period=c.period, cost=c.cost
        )
    records.write()
    session.flush()
    return existing, records.records
