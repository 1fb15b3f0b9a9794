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
from django.db.models import Q, prefetch_related_objects
from django.db.models.base import ModelState
from django.utils import timezone

from core.db import lock_company, retry_on_conflict
from core.errors import ValidationFailed
from core.money import PLACES, ZERO, q
from credits.allocation import Split, allocate
from credits.models import Account, AccountKind, Allowance, EntryType, LedgerEntry
from credits.services import accounts_ensure
from offices.models import Company, CreditKind, Office
from usage.models import Service, UsageRecord
from usage.rollups import usage_days_add, usage_days_add_sql

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
    if value == {}:
        return True
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return not _has_nul(value)


def _lookup_key(value) -> bool:
    return isinstance(value, str) and "\x00" not in value


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
        if _plainly_valid(event, offices, services, seen, latest, max_quantity):
            seen[ext] = i
            continue
        # Something is off: find every problem of this event, with its message.
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
        quantity = event.quantity
        if type(quantity) is not Decimal:
            try:
                quantity = Decimal(str(quantity))
            except (InvalidOperation, ValueError, TypeError):
                quantity = None
        if quantity is None or not quantity.is_finite():
            bad(i, "quantity", "Must be a finite number.")
        elif quantity <= 0:
            bad(i, "quantity", "Must be greater than zero.")
        elif quantity > max_quantity:
            bad(i, "quantity", f"At most {max_quantity:,} per event.")
        elif quantity != quantity.quantize(PLACES):
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


def _plainly_valid(event, offices, services, seen, latest, max_quantity) -> bool:
    """True when the event passes every check of _validate (a quick test of the usual
    case: plain strings, a Decimal, an aware datetime); False means "check in detail"."""
    ext, office, service = event.external_id, event.office, event.service
    if not (
        type(ext) is str
        and 0 < len(ext) <= MAX_ID_LENGTH
        and "\x00" not in ext
        and ext.strip()
        and ext not in seen
        and type(office) is str
        and office in offices
        and type(service) is str
        and service in services
    ):
        return False
    quantity = event.quantity
    if not (
        type(quantity) is Decimal
        and quantity.is_finite()
        and 0 < quantity <= max_quantity
        and quantity == quantity.quantize(PLACES)
    ):
        return False
    moment = event.occurred_at
    if not (
        isinstance(moment, dt.datetime)
        and moment.utcoffset() is not None
        and EARLIEST <= moment <= latest
    ):
        return False
    user, number, metadata = event.user_label, event.phone_number, event.metadata
    return (
        (not user or (type(user) is str and len(user) <= 200 and "\x00" not in user))
        and (not number or (type(number) is str and len(number) <= 40 and "\x00" not in number))
        and (not metadata or (type(metadata) is dict and _storable_json(metadata)))
    )


def usage_ingest(
    *, company: Company, events: list[UsageEventIn], actor=None
) -> list[IngestedEvent]:
    """Charge a batch of usage events all or nothing, in order: allowance first, then the
    pool (pooling on) or the office's wallet (off), AI usage from the AI agent account,
    the rest uncovered. An id already charged is returned as a duplicate, not charged."""
    offices, services = _validate(company, events)
    existing, created = _ingest(
        company=company, events=events, offices=offices, services=services, actor=actor
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


CHARGED_IDS_COLUMN = (
    ", ARRAY(SELECT u.external_id FROM usage_usagerecord AS u "
    "WHERE u.company_id = c.id AND u.external_id = ANY(%s)) AS charged_ids"
)


@retry_on_conflict(retry_integrity=True)
@transaction.atomic
def _ingest(*, company, events, offices, services, actor):
    """(records already charged by external id, a function giving the new records by id)."""
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
    existing = {}
    if charged:
        existing = {
            r.external_id: r
            for r in UsageRecord.objects.filter(company=company, external_id__in=charged).order_by()
        }
    fresh = [e for e in events if e.external_id not in existing]
    if not fresh:
        return existing, dict
    created = _charge(
        company=company, events=fresh, offices=offices, services=services, actor=actor
    )
    return existing, created


@dataclass
class _Charge:
    """One event on its way to becoming a usage record."""

    event: UsageEventIn
    office: Office
    service: Service
    quantity: Decimal
    cost: Decimal
    period: dt.date
    account: Account | None = None
    split: Split | None = None
    balance_after: Decimal | None = None

    def parts(self) -> dict[str, Decimal]:
        """The record's split, by column, in the order of the usage record's columns."""
        parts = {"allowance_part": self.split.allowance, "pool_part": ZERO}
        parts.update(wallet_part=ZERO, ai_part=ZERO, uncovered=self.split.uncovered)
        parts[FUNDING_PART[self.account.kind]] = self.split.funded
        return parts


FUNDING_PART = {
    AccountKind.POOL: "pool_part",
    AccountKind.WALLET: "wallet_part",
    AccountKind.AI_AGENT: "ai_part",
}


def _charge(*, company, events, offices, services, actor):
    """Rate, allocate and record `events` (none charged yet) under the balance locks;
    returns a function giving the new records by external id."""
    pooling = company.pooling_enabled
    tz = company.tz
    batch = uuid.uuid4()
    charges = []
    for e in events:
        service = services[e.service]
        quantity = q(Decimal(str(e.quantity)))
        charges.append(
            _Charge(
                event=e,
                office=offices[e.office],
                service=service,
                quantity=quantity,
                cost=q(quantity * service.rate),
                period=period_of(e.occurred_at, tz),
            )
        )
    # Everything that does not depend on the balances is prepared before they are
    # locked: the records (rows of SQL on PostgreSQL, model instances elsewhere).
    writer_class = _SqlRecords if connection.vendor == "postgresql" else _OrmRecords
    writer = writer_class(company=company, batch=batch, actor=actor, charges=charges)

    accounts = _accounts_lock(company=company, charges=charges, pooling=pooling)
    pool = next((a for a in accounts if a.kind == AccountKind.POOL), None)
    ai = next((a for a in accounts if a.kind == AccountKind.AI_AGENT), None)
    wallets = {a.office_id: a for a in accounts if a.kind == AccountKind.WALLET}

    # Then the allowance rows of every (office, kind, period) touched, locked in pk order;
    # a new month's rows are created first (rare: once per office, kind and month).
    keys = {(c.office.id, c.service.credit_kind, c.period) for c in charges}
    allowances = _allowances_lock(company=company, keys=keys)
    missing = keys - allowances.keys()
    if missing:
        _allowances_create(company=company, keys=missing, offices=offices)
        allowances.update(_allowances_lock(company=company, keys=missing))

    drawn: dict[int, Decimal] = defaultdict(lambda: ZERO)
    counts: dict[int, int] = defaultdict(int)
    for c in charges:
        kind = c.service.credit_kind
        allowance = allowances[(c.office.id, kind, c.period)]
        if kind == CreditKind.AI_AGENT:
            account = ai
        elif pooling:
            account = pool
        else:
            account = wallets[c.office.id]
        split = allocate(c.cost, allowance_remaining=allowance.remaining, balance=account.balance)
        account.balance -= split.funded
        drawn[account.id] += split.funded
        counts[account.id] += 1
        allowance.used += split.allowance
        allowance.cost_total += c.cost
        drawn_field = FUNDING_DRAWN[account.kind]
        setattr(allowance, drawn_field, getattr(allowance, drawn_field) + split.funded)
        allowance.uncovered += split.uncovered
        allowance.events += 1
        c.account, c.split, c.balance_after = account, split, account.balance
    writer.write()
    ledger = [
        (account, -drawn[account.id], f"Usage: {counts[account.id]} events")
        for account in accounts
        if drawn[account.id]
    ]
    writer.save_totals(list(allowances.values()), ledger)  # under the allowance-row locks
    return writer.records


FUNDING_DRAWN = {
    AccountKind.POOL: "pool_drawn",
    AccountKind.WALLET: "wallet_drawn",
    AccountKind.AI_AGENT: "ai_drawn",
}


ACCOUNTS_LOCK_SQL = (
    "SELECT * FROM credits_account WHERE company_id = %s AND (kind = ANY(%s) "
    "OR (kind = 'wallet' AND office_id = ANY(%s))) ORDER BY id FOR UPDATE"
)


def _accounts_lock(*, company, charges, pooling) -> list[Account]:
    """The accounts the charges draw on, locked FOR UPDATE in pk order (created first if
    the company lacks one)."""
    needs_wallets = set()
    needs_pool = needs_ai = False
    for c in charges:
        if c.service.credit_kind == CreditKind.AI_AGENT:
            needs_ai = True
        elif pooling:
            needs_pool = True
        else:
            needs_wallets.add(c.office.id)
    kinds = [AccountKind.POOL] * needs_pool + [AccountKind.AI_AGENT] * needs_ai

    def locked() -> list[Account]:
        if connection.vendor == "postgresql":
            # Hand-written: on a single event, building this ORM query cost a tenth of
            # the request's CPU (profiled).
            rows = Account.objects.raw(
                ACCOUNTS_LOCK_SQL, [company.pk, [str(k) for k in kinds], sorted(needs_wallets)]
            )
            return list(rows)
        cond = Q(kind__in=kinds)
        if needs_wallets:
            cond |= Q(kind=AccountKind.WALLET, office_id__in=needs_wallets)
        return list(
            Account.objects.select_for_update().filter(cond, company=company).order_by("pk")
        )

    accounts = locked()
    if len(accounts) < len(kinds) + len(needs_wallets):
        accounts_ensure(company=company)
        accounts = locked()
    return accounts


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


COPY_MIN_ROWS = 50
ALLOWANCE_ROLLUPS = ("used", "cost_total", "pool_drawn", "wallet_drawn", "ai_drawn", "uncovered")


def _ledger_entries(company, batch, actor, ledger) -> list[LedgerEntry]:
    """One usage entry per account drawn: `ledger` holds (account, amount, memo)."""
    return [
        LedgerEntry(
            account=account,
            company=company,
            entry_type=EntryType.USAGE,
            amount=amount,
            balance_after=account.balance,
            reference=f"usage-batch:{batch}",
            usage_batch=batch,
            created_by=actor,
            memo=memo,
        )
        for account, amount, memo in ledger
    ]


class _OrmRecords:
    """A batch written through the ORM: databases other than PostgreSQL."""

    def __init__(self, *, company, batch, actor, charges):
        self.company, self.batch, self.actor, self.charges = company, batch, actor, charges
        self.built = []
        # Built before any balance is locked. Keys by attname plus the cached related
        # objects: what assigning `office=office` does, without the descriptor and router
        # checks (a third of the build time).
        for c in charges:
            e, office, service = c.event, c.office, c.service
            record = UsageRecord(
                company_id=company.pk,
                office_id=office.pk,
                service_id=service.pk,
                external_id=e.external_id,
                credit_kind=service.credit_kind,
                quantity=c.quantity,
                rate=service.rate,
                cost=c.cost,
                occurred_at=e.occurred_at,
                period=c.period,
                pooling_on=company.pooling_enabled,
                user_label=e.user_label or "",
                phone_number=e.phone_number or "",
                metadata=e.metadata or {},
                batch=batch,
                created_by_id=actor.pk if actor is not None else None,
            )
            for related, value in zip(RELATED, (company, office, service, actor), strict=True):
                related.set_cached_value(record, value)
            self.built.append(record)

    def write(self) -> None:
        for c, record in zip(self.charges, self.built, strict=True):
            for name, value in c.parts().items():
                setattr(record, name, value)
            record.funding_account = c.account
            record.funding_balance_after = c.balance_after
        UsageRecord.objects.bulk_create(self.built)

    def save_totals(self, allowances: list[Allowance], ledger: list[tuple]) -> None:
        """The ledger entries, new balances, allowance rollups and day rollups."""
        LedgerEntry.objects.bulk_create(
            _ledger_entries(self.company, self.batch, self.actor, ledger)
        )
        now = timezone.now()
        for account, _, _ in ledger:
            Account.objects.filter(pk=account.pk).update(balance=account.balance, updated_at=now)
        Allowance.objects.bulk_update(allowances, [*ALLOWANCE_ROLLUPS, "events"])
        usage_days_add(self.built, self.company.tz)

    def records(self) -> dict[str, UsageRecord]:
        return {r.external_id: r for r in self.built}


# COPY text format: backslash, tab, newline and carriage return are escaped; NUL cannot
# occur (validation refuses it).
COPY_NULL = "\\N"
COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
# Prepared before the balances are locked, then the split, in this order.
COPY_COLUMNS = (
    "id", "company_id", "office_id", "service_id", "external_id", "credit_kind", "quantity",
    "rate", "cost", "occurred_at", "period", "pooling_on", "user_label", "phone_number",
    "metadata", "batch", "created_by_id", "created_at",
    "allowance_part", "pool_part", "wallet_part", "ai_part", "uncovered",
    "funding_account_id", "funding_balance_after",
)  # fmt: skip
INSERT_ROW = "({})".format(
    ", ".join("%s::jsonb" if c == "metadata" else "%s" for c in COPY_COLUMNS)
)


def _copy_json(value) -> str:
    return json.dumps(value).translate(COPY_ESCAPES) if value else "{}"


class _SqlRecords:
    """A batch written with hand-written SQL on PostgreSQL.

    Model instances cost more to build than the rows cost to write (docs/scaling.md).
    Each record is prepared before the balances are locked (primary keys drawn from the
    table's sequence up front, so nothing is read back) and completed with its split
    under the locks: a line of COPY text for a batch, one INSERT for a few events. Then
    one statement writes the ledger entries, balances, allowance rollups and the day
    rollups (summed by PostgreSQL from the rows just written): the fewer round trips while
    the pool row is locked, the more events a shared pool takes per second. Model
    instances of the records are made only after the transaction."""

    def __init__(self, *, company, batch, actor, charges):
        self.company, self.batch, self.actor, self.charges = company, batch, actor, charges
        self.created_at = timezone.now()
        self.copy = len(charges) >= COPY_MIN_ROWS
        table = UsageRecord._meta.db_table
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(s) FROM pg_get_serial_sequence(%s, 'id') AS s, "
                "generate_series(1, %s)",
                [table, len(charges)],
            )
            self.ids = [row[0] for row in cursor.fetchall()]
        company_id, pooling = company.id, company.pooling_enabled
        actor_id = None if actor is None else actor.pk
        if not self.copy:
            self.rows = [
                [pk, company_id, c.office.id, c.service.id, c.event.external_id,
                 c.service.credit_kind, c.quantity, c.service.rate, c.cost, c.event.occurred_at,
                 c.period, pooling, c.event.user_label or "", c.event.phone_number or "",
                 json.dumps(c.event.metadata or {}), batch, actor_id, self.created_at]
                for pk, c in zip(self.ids, charges, strict=True)
            ]  # fmt: skip
            return
        flag = "t" if pooling else "f"
        tail = f"{batch}\t{COPY_NULL if actor_id is None else actor_id}\t"
        tail += f"{self.created_at.isoformat()}\t"
        self.prefixes = []
        for pk, c in zip(self.ids, charges, strict=True):
            e, service = c.event, c.service
            self.prefixes.append(
                f"{pk}\t{company_id}\t{c.office.id}\t{service.id}\t"
                f"{e.external_id.translate(COPY_ESCAPES)}\t{service.credit_kind}\t"
                f"{c.quantity}\t{service.rate}\t{c.cost}\t{e.occurred_at.isoformat()}\t"
                f"{c.period.isoformat()}\t{flag}\t"
                f"{(e.user_label or '').translate(COPY_ESCAPES)}\t"
                f"{(e.phone_number or '').translate(COPY_ESCAPES)}\t"
                f"{_copy_json(e.metadata)}\t{tail}"
            )

    @staticmethod
    def _split(c) -> tuple:
        """The columns filled in under the locks (the end of COPY_COLUMNS)."""
        return (*c.parts().values(), c.account.id, c.balance_after)

    def write(self) -> None:
        table = UsageRecord._meta.db_table
        columns = ", ".join(COPY_COLUMNS)
        if not self.copy:
            params = []
            for row, c in zip(self.rows, self.charges, strict=True):
                params += row
                params += self._split(c)
            with connection.cursor() as cursor:
                cursor.execute(
                    f"INSERT INTO {table} ({columns}) VALUES "  # noqa: S608
                    + ", ".join([INSERT_ROW] * len(self.rows)),
                    params,
                )
            return
        lines = []
        for prefix, c in zip(self.prefixes, self.charges, strict=True):
            lines.append(prefix + "\t".join(map(str, self._split(c))) + "\n")
        sql = f"COPY {table} ({columns}) FROM STDIN"
        # Errors wrapped like the ORM's, so a unique-key race is retried (retry_on_conflict).
        with (
            connection.cursor() as cursor,
            connection.wrap_database_errors,
            cursor.copy(sql) as copy,
        ):
            copy.write("".join(lines))

    def save_totals(self, allowances: list[Allowance], ledger: list[tuple]) -> None:
        """The ledger entries, new balances, allowance rollups and day rollups of the batch
        in one statement (data-modifying WITH)."""
        now, batch, tz = timezone.now(), self.batch, str(self.company.tz)
        sets = ", ".join(f"{c} = v.{c}" for c in (*ALLOWANCE_ROLLUPS, "events"))
        arrays = ", ".join(
            ["%s::bigint[]", *["%s::numeric[]"] * len(ALLOWANCE_ROLLUPS), "%s::int[]"]
        )
        columns = ", ".join(("id", *ALLOWANCE_ROLLUPS, "events"))
        days = usage_days_add_sql(
            day="(r.occurred_at AT TIME ZONE %s::text)::date",
            tz="%s::text",
            source=f"FROM {UsageRecord._meta.db_table} r WHERE r.batch = %s",
        )
        sql = (
            f"WITH balances AS (UPDATE {Account._meta.db_table} AS b "  # noqa: S608
            "SET balance = w.balance, updated_at = %s "
            "FROM unnest(%s::bigint[], %s::numeric[]) AS w(id, balance) WHERE b.id = w.id), "
            f"ledger AS (INSERT INTO {LedgerEntry._meta.db_table} (account_id, company_id, "
            "entry_type, amount, balance_after, reference, idempotency_key, usage_batch, "
            "memo, created_by_id, created_at) "
            "SELECT l.account_id, %s, %s, l.amount, l.balance_after, %s, '', %s, l.memo, %s, %s "
            "FROM unnest(%s::bigint[], %s::numeric[], %s::numeric[], %s::text[]) "
            "AS l(account_id, amount, balance_after, memo)), "
            f"days AS ({days}) "
            f"UPDATE {Allowance._meta.db_table} AS a SET {sets} "
            f"FROM unnest({arrays}) AS v({columns}) WHERE a.id = v.id"
        )
        accounts = [account for account, _, _ in ledger]
        params = [now, [a.id for a in accounts], [a.balance for a in accounts]]
        params += [self.company.id, EntryType.USAGE, f"usage-batch:{batch}", batch]
        params += [None if self.actor is None else self.actor.pk, now]
        params += [[a.id for a in accounts], [amount for _, amount, _ in ledger]]
        params += [[a.balance for a in accounts], [memo for _, _, memo in ledger]]
        params += [tz, tz, batch]
        params += [[a.id for a in allowances]]
        params += [[getattr(a, c) for a in allowances] for c in ALLOWANCE_ROLLUPS]
        params += [[a.events for a in allowances]]
        with connection.cursor() as cursor:
            cursor.execute(sql, params)

    def records(self) -> dict[str, UsageRecord]:
        """The saved records as model instances (as Django unpickles them: no __init__)."""
        company, actor, alias = self.company, self.actor, connection.alias
        common = {
            "company_id": company.id, "pooling_on": company.pooling_enabled,
            "batch": self.batch, "created_by_id": actor.pk if actor is not None else None,
            "created_at": self.created_at,
        }  # fmt: skip
        records = {}
        for pk, c in zip(self.ids, self.charges, strict=True):
            e, office, service, account = c.event, c.office, c.service, c.account
            state = ModelState()
            state.adding, state.db = False, alias
            state.fields_cache = {
                "company": company, "office": office, "service": service,
                "funding_account": account, "created_by": actor,
            }  # fmt: skip
            values = common.copy()
            values.update(
                _state=state, id=pk, office_id=office.id, service_id=service.id,
                external_id=e.external_id, credit_kind=service.credit_kind,
                quantity=c.quantity, rate=service.rate, cost=c.cost, occurred_at=e.occurred_at,
                period=c.period, funding_account_id=account.id,
                funding_balance_after=c.balance_after,
                user_label=e.user_label or "", phone_number=e.phone_number or "",
                metadata=e.metadata or {},
            )  # fmt: skip
            values.update(c.parts())
            record = UsageRecord.__new__(UsageRecord)
            record.__dict__ = values
            records[e.external_id] = record
        return records
