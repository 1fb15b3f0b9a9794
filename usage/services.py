"""Usage ingestion: rate each event, allocate its cost (SPEC §3), record it once."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import connection, transaction
from django.db.models import prefetch_related_objects
from django.utils import timezone

from core.db import lock_company, retry_on_conflict
from core.errors import ValidationFailed
from core.money import ZERO, q
from credits.allocation import allocate
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry
from credits.services import accounts_ensure
from offices.models import Company, CreditKind, Office
from usage.models import Service, UsageRecord
from usage.rollups import usage_days_add

MAX_ID_LENGTH = 200
RELATED = [UsageRecord._meta.get_field(n) for n in ("company", "office", "service", "created_by")]
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class UsageEventIn:
    external_id: str
    office: str  # office slug
    service: str  # service code
    quantity: Decimal
    occurred_at: dt.datetime
    user_label: str = ""
    phone_number: str = ""
    metadata: dict = field(default_factory=dict)


@dataclass(frozen=True)
class IngestedEvent:
    record: UsageRecord
    duplicate: bool


def period_of(moment: dt.datetime, tz) -> dt.date:
    """The billing period (first day of the month, company time zone) containing `moment`."""
    return moment.astimezone(tz).date().replace(day=1)


def included_credits(office: Office, kind: str) -> Decimal:
    """Plan allowance plus add-ons (× quantity) of one office for one credit kind."""
    total = office.plan.included(kind)
    for office_addon in office.office_addons.all():
        total += office_addon.addon.included(kind) * office_addon.quantity
    return q(total)


def _has_nul(value) -> bool:
    """PostgreSQL text and jsonb cannot hold NUL characters; storing one is a DataError."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list | tuple):
        return any(_has_nul(v) for v in value)
    return False


def _storable_json(value) -> bool:
    """Plain JSON that jsonb accepts: no NaN/Infinity, no NUL, only JSON types."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return not _has_nul(value)


def _lookup_key(value) -> bool:
    return isinstance(value, str) and not _has_nul(value)


def _offices_and_services(company, slugs, codes) -> tuple[dict, dict]:
    """The company's offices of `slugs` and the active services of `codes`, by key."""
    if connection.vendor == "postgresql":
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


def _validate(
    company: Company, events: list[UsageEventIn]
) -> tuple[dict[str, Office], dict[str, Service]]:
    """Every problem of every event, by index and field; raises if there is any."""
    errors: list[dict] = []

    def bad(index: int | None, fld: str, message: str) -> None:
        errors.append({"index": index, "field": fld, "message": message})

    limit = settings.USAGE_BATCH_MAX
    if not events:
        raise ValidationFailed(
            "events: send at least one event.",
            [{"index": None, "field": "events", "message": "Send at least one event."}],
        )
    if len(events) > limit:
        raise ValidationFailed(
            f"events: at most {limit} events per batch.",
            [
                {
                    "index": None,
                    "field": "events",
                    "message": f"{len(events)} events sent; at most {limit} per batch.",
                }
            ],
        )
    offices, services = _offices_and_services(
        company,
        {e.office for e in events if _lookup_key(e.office)},
        {e.service for e in events if _lookup_key(e.service)},
    )
    max_quantity = Decimal(settings.USAGE_MAX_QUANTITY)
    latest = timezone.now() + dt.timedelta(seconds=settings.USAGE_MAX_FUTURE_SECONDS)
    seen: dict[str, int] = {}
    for i, event in enumerate(events):
        ext = event.external_id
        if not isinstance(ext, str) or not ext.strip():
            bad(i, "id", "Give the event a non-empty id.")
        elif _has_nul(ext):
            bad(i, "id", "Must not contain NUL characters.")
        elif len(ext) > MAX_ID_LENGTH:
            bad(i, "id", f"At most {MAX_ID_LENGTH} characters.")
        elif ext in seen:
            bad(i, "id", f"Duplicate id {ext!r} in this batch (also at index {seen[ext]}).")
        else:
            seen[ext] = i
        if not _lookup_key(event.office) or event.office not in offices:
            bad(i, "office", f"No office {event.office!r} in this company.")
        if not _lookup_key(event.service) or event.service not in services:
            bad(i, "service", f"Unknown service {event.service!r}.")
        try:
            quantity = Decimal(str(event.quantity))
        except (InvalidOperation, ValueError, TypeError):
            quantity = None
        if quantity is None or not quantity.is_finite():
            bad(i, "quantity", "Must be a finite number.")
        elif quantity <= 0:
            bad(i, "quantity", "Must be greater than zero.")
        elif quantity > max_quantity:
            bad(i, "quantity", f"At most {max_quantity:,} per event.")
        elif quantity != quantity.quantize(Decimal("0.0001")):
            bad(i, "quantity", "At most 4 decimal places.")
        moment = event.occurred_at
        if not isinstance(moment, dt.datetime):
            bad(i, "occurred_at", "Must be an ISO 8601 date-time with a UTC offset.")
        elif timezone.is_naive(moment):
            bad(i, "occurred_at", "Give a UTC offset (e.g. 2026-11-26T09:30:00+00:00).")
        elif moment > latest:
            bad(i, "occurred_at", "Lies in the future.")
        elif moment < EARLIEST:
            bad(i, "occurred_at", "Before 2000-01-01.")
        for fld, value, limit in (
            ("user", event.user_label, 200),
            ("number", event.phone_number, 40),
        ):
            if not isinstance(value or "", str):
                bad(i, fld, "Must be a string.")
            elif len(value or "") > limit:
                bad(i, fld, f"At most {limit} characters.")
            elif _has_nul(value or ""):
                bad(i, fld, "Must not contain NUL characters.")
        if not isinstance(event.metadata or {}, dict):
            bad(i, "metadata", "Must be a JSON object.")
        elif not _storable_json(event.metadata or {}):
            bad(i, "metadata", "Must hold plain JSON values (no NaN, Infinity or NUL characters).")
    if errors:
        noun = "event is" if len({e["index"] for e in errors}) == 1 else "events are"
        raise ValidationFailed(
            f"{len({e['index'] for e in errors})} {noun} invalid; nothing was charged.", errors
        )
    return offices, services


def usage_ingest(
    *, company: Company, events: list[UsageEventIn], actor=None
) -> list[IngestedEvent]:
    """Charge a batch of usage events all or nothing, in order: allowance first, then the
    pool (pooling on) or the office's wallet (off), AI usage from the AI agent account,
    the rest uncovered. An id already charged is returned as a duplicate, not charged."""
    offices, services = _validate(company, events)
    return _ingest(company=company, events=events, offices=offices, services=services, actor=actor)


CHARGED_IDS_COLUMN = (
    ", ARRAY(SELECT u.external_id FROM usage_usagerecord AS u "
    "WHERE u.company_id = c.id AND u.external_id = ANY(%s)) AS charged_ids"
)


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def _ingest(*, company, events, offices, services, actor) -> list[IngestedEvent]:
    ids = [e.external_id for e in events]
    charged = ids
    if connection.vendor == "postgresql":
        # The ids already charged come with the locks, in the same round trip; their
        # records are read only when there are any.
        company = lock_company(
            company.pk, exclusive=False, columns=CHARGED_IDS_COLUMN, params=[ids]
        )
        charged = company.charged_ids
    else:
        company = lock_company(company.pk, exclusive=False)
    tz = company.tz
    existing = {}
    if charged:
        existing = {
            r.external_id: r
            for r in UsageRecord.objects.filter(company=company, external_id__in=charged).order_by()
        }
    fresh = [e for e in events if e.external_id not in existing]
    created: dict[str, UsageRecord] = {}
    if fresh:
        created = _charge(
            company=company, tz=tz, events=fresh, offices=offices, services=services, actor=actor
        )
    return [
        IngestedEvent(record=existing[e.external_id], duplicate=True)
        if e.external_id in existing
        else IngestedEvent(record=created[e.external_id], duplicate=False)
        for e in events
    ]


def _charge(*, company, tz, events, offices, services, actor) -> dict[str, UsageRecord]:
    pooling = company.pooling_enabled
    batch = uuid.uuid4()
    rated = []
    needs_wallets = set()
    needs_pool = needs_ai = False
    for e in events:
        office, service = offices[e.office], services[e.service]
        kind = service.credit_kind
        quantity = q(Decimal(str(e.quantity)))
        cost = q(quantity * service.rate)
        period = period_of(e.occurred_at, tz)
        # The record is built before any balance is locked (building 1000 model instances
        # takes longer than writing them); the split is filled in under the locks.
        # Keys by attname plus the cached related objects: what assigning `office=office`
        # does, without the descriptor and router checks (a third of the build time).
        record = UsageRecord(
            company_id=company.pk,
            office_id=office.pk,
            service_id=service.pk,
            external_id=e.external_id,
            credit_kind=kind,
            quantity=quantity,
            rate=service.rate,
            cost=cost,
            occurred_at=e.occurred_at,
            period=period,
            pooling_on=pooling,
            user_label=e.user_label or "",
            phone_number=e.phone_number or "",
            metadata=e.metadata or {},
            batch=batch,
            created_by_id=actor.pk if actor is not None else None,
        )
        for related, value in zip(RELATED, (company, office, service, actor), strict=True):
            related.set_cached_value(record, value)
        rated.append((e, office, service, kind, quantity, cost, period, record))
        if kind == CreditKind.AI_AGENT:
            needs_ai = True
        elif pooling:
            needs_pool = True
        else:
            needs_wallets.add(office.pk)

    # Accounts, locked in pk order.
    def account_filter():
        from django.db.models import Q

        cond = Q(pk__in=[])
        if needs_pool:
            cond |= Q(kind=AccountKind.POOL)
        if needs_ai:
            cond |= Q(kind=AccountKind.AI_AGENT)
        if needs_wallets:
            cond |= Q(kind=AccountKind.WALLET, office_id__in=needs_wallets)
        return cond

    expected = needs_pool + needs_ai + len(needs_wallets)
    accounts = list(
        Account.objects.select_for_update().filter(account_filter(), company=company).order_by("pk")
    )
    if len(accounts) < expected:
        accounts_ensure(company=company)
        accounts = list(
            Account.objects.select_for_update()
            .filter(account_filter(), company=company)
            .order_by("pk")
        )
    pool = next((a for a in accounts if a.kind == AccountKind.POOL), None)
    ai = next((a for a in accounts if a.kind == AccountKind.AI_AGENT), None)
    wallets = {a.office_id: a for a in accounts if a.kind == AccountKind.WALLET}

    # Then the allowance rows of every (office, kind, period) touched, locked in pk order;
    # a new month's rows are created first (rare: once per office, kind and month).
    keys = {(office.pk, kind, period) for _, office, _, kind, _, _, period, _ in rated}
    allowances = _allowances_lock(company=company, keys=keys)
    missing = keys - allowances.keys()
    if missing:
        _allowances_create(company=company, keys=missing, offices=offices)
        allowances.update(_allowances_lock(company=company, keys=missing))

    drawn: dict[int, Decimal] = defaultdict(lambda: ZERO)
    records = []
    for _e, office, _service, kind, _quantity, cost, period, record in rated:
        allowance = allowances[(office.pk, kind, period)]
        if kind == CreditKind.AI_AGENT:
            account = ai
        elif pooling:
            account = pool
        else:
            account = wallets[office.pk]
        split = allocate(cost, allowance_remaining=allowance.remaining, balance=account.balance)
        allowance.used += split.allowance
        account.balance -= split.funded
        drawn[account.pk] += split.funded
        parts = {"pool_part": ZERO, "wallet_part": ZERO, "ai_part": ZERO}
        column = {
            AccountKind.POOL: "pool_part",
            AccountKind.WALLET: "wallet_part",
            AccountKind.AI_AGENT: "ai_part",
        }[account.kind]
        parts[column] = split.funded
        allowance.cost_total += cost
        allowance.pool_drawn += parts["pool_part"]
        allowance.wallet_drawn += parts["wallet_part"]
        allowance.ai_drawn += parts["ai_part"]
        allowance.uncovered += split.uncovered
        allowance.events += 1
        record.allowance_part = split.allowance
        record.uncovered = split.uncovered
        record.pool_part, record.wallet_part, record.ai_part = (
            parts["pool_part"],
            parts["wallet_part"],
            parts["ai_part"],
        )
        record.funding_account = account
        record.funding_balance_after = account.balance
        records.append(record)
    _records_insert(records)
    counts: dict[int, int] = defaultdict(int)
    for record in records:
        counts[record.funding_account_id] += 1
    LedgerEntry.objects.bulk_create(
        [
            LedgerEntry(
                account=account,
                company=company,
                entry_type=EntryType.USAGE,
                amount=-drawn[account.pk],
                balance_after=account.balance,
                reference=f"usage-batch:{batch}",
                usage_batch=batch,
                created_by=actor,
                memo=f"Usage: {counts[account.pk]} events",
            )
            for account in accounts
            if drawn[account.pk]
        ]
    )
    _allowances_save(list(allowances.values()), accounts=[a for a in accounts if drawn[a.pk]])
    usage_days_add(records, tz)  # under the allowance locks taken above
    return {r.external_id: r for r in records}


def _allowance_scope(*, company, keys):
    return Allowance.objects.filter(
        company=company,
        office_id__in={o for o, _, _ in keys},
        period__in={p for _, _, p in keys},
        kind__in={k for _, k, _ in keys},
    )


def _allowances_create(*, company, keys, offices) -> None:
    """Create the allowance rows of `keys` (office pk, kind, period) unless they exist."""
    missing = keys
    office_by_pk = {o.pk: o for o in offices.values()}
    # Add-ons matter only for a new month's allowance rows, so they are read only then.
    prefetch_related_objects(
        [office_by_pk[o] for o in {o for o, _, _ in missing}], "plan", "office_addons__addon"
    )
    # Sorted, so two batches creating the same new rows insert them in the same order.
    Allowance.objects.bulk_create(
        [
            Allowance(
                office_id=o,
                company=company,
                kind=k,
                period=p,
                included=included_credits(office_by_pk[o], k),
            )
            for o, k, p in sorted(missing)
        ],
        ignore_conflicts=True,
    )


ALLOWANCE_LOCK_SQL = (
    "SELECT * FROM credits_allowance WHERE company_id = %s AND (office_id, kind, period) IN "
    "(SELECT * FROM unnest(%s::bigint[], %s::text[], %s::date[])) ORDER BY id FOR UPDATE"
)


def _allowances_lock(*, company, keys) -> dict[tuple, Allowance]:
    """The allowance rows of `keys`, locked FOR UPDATE in pk order."""
    if connection.vendor == "postgresql":
        # Runs while the pool row is locked: hand-written, it skips the ORM's query
        # building (21 % of a single event's CPU, profiled), and it locks exactly the
        # rows of `keys` (their unique index), as the raw-SQL baseline does.
        ordered = sorted(keys)
        rows = Allowance.objects.raw(
            ALLOWANCE_LOCK_SQL,
            [company.pk, *([key[i] for key in ordered] for i in range(3))],
        )
        return {(a.office_id, a.kind, a.period): a for a in rows}
    rows = _allowance_scope(company=company, keys=keys).select_for_update().order_by("pk")
    return {
        (a.office_id, a.kind, a.period): a for a in rows if (a.office_id, a.kind, a.period) in keys
    }


ALLOWANCE_ROLLUPS = ("used", "cost_total", "pool_drawn", "wallet_drawn", "ai_drawn", "uncovered")


def _allowances_save(allowances: list[Allowance], accounts: list[Account] = ()) -> None:
    """Write the new usage and rollups of the (locked) allowance rows and the new balances
    of the (locked) `accounts` drawn; on PostgreSQL in one statement."""
    now = timezone.now()
    if connection.vendor != "postgresql":
        for account in accounts:
            Account.objects.filter(pk=account.pk).update(balance=account.balance, updated_at=now)
        Allowance.objects.bulk_update(allowances, [*ALLOWANCE_ROLLUPS, "events"])
        return
    # bulk_update builds a CASE per column and row; one UPDATE … FROM unnest() is ~20x cheaper.
    # The balances ride along in a data-modifying WITH: one round trip less while the
    # pool row is locked (the single-event path is bound by how long that lock is held).
    accounts_table = Account._meta.db_table
    table = Allowance._meta.db_table
    sets = ", ".join(f"{c} = v.{c}" for c in (*ALLOWANCE_ROLLUPS, "events"))
    arrays = ", ".join(["%s::bigint[]", *["%s::numeric[]"] * len(ALLOWANCE_ROLLUPS), "%s::int[]"])
    columns = ", ".join(("id", *ALLOWANCE_ROLLUPS, "events"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH balances AS (UPDATE {accounts_table} AS b SET balance = w.balance, "  # noqa: S608
            "updated_at = %s FROM unnest(%s::bigint[], %s::numeric[]) AS w(id, balance) "
            "WHERE b.id = w.id) "
            f"UPDATE {table} AS a SET {sets} FROM unnest({arrays}) AS v({columns}) "
            "WHERE a.id = v.id",
            [now, [a.pk for a in accounts], [a.balance for a in accounts]]
            + [[a.pk for a in allowances]]
            + [[getattr(a, c) for a in allowances] for c in ALLOWANCE_ROLLUPS]
            + [[a.events for a in allowances]],
        )


COPY_MIN_ROWS = 50


def _records_insert(records: list[UsageRecord]) -> None:
    """Insert the usage records of one batch (all of one company and batch id) and give
    them their primary keys, like bulk_create does.

    On PostgreSQL this is a COPY: bulk_create spends most of a 1000-event batch compiling
    and quoting 25,000 parameters, COPY streams the rows (see docs/scaling.md)."""
    if connection.vendor != "postgresql" or len(records) < COPY_MIN_ROWS:
        # A few rows: one INSERT … RETURNING id is one round trip less than COPY + SELECT.
        UsageRecord.objects.bulk_create(records)
        return
    now = timezone.now()
    fields = [f for f in UsageRecord._meta.concrete_fields if not f.primary_key]
    stamped = [
        f.attname
        for f in fields
        if getattr(f, "auto_now", False) or getattr(f, "auto_now_add", False)
    ]
    for record in records:
        for attname in stamped:  # what pre_save() would set (created_at)
            setattr(record, attname, now)
    # psycopg adapts every column type natively except JSON, which needs its wrapper.
    prepared = {f.attname for f in fields if f.get_internal_type() == "JSONField"}
    table = UsageRecord._meta.db_table
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for r in records:
                copy.write_row(
                    [
                        f.get_db_prep_save(getattr(r, f.attname), connection)
                        if f.attname in prepared
                        else getattr(r, f.attname)
                        for f in fields
                    ]
                )
        cursor.execute(
            f"SELECT external_id, id FROM {table} WHERE company_id = %s AND batch = %s",  # noqa: S608
            [records[0].company_id, records[0].batch],
        )
        ids = dict(cursor.fetchall())
    for record in records:
        record.pk = ids[record.external_id]
        record._state.adding = False
        record._state.db = connection.alias
