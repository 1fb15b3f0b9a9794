"""What-if (SPEC §9.2): a billing period replayed as if pooling had been on throughout.

The replay reads, never writes. It takes the standard usage charged during the period's
moments (the company time zone's midnights), in the order it was charged (record id),
and pays each record again with the allocation rule (credits.allocation.allocate):

* its allowance part stays what it was (allowances do not depend on pooling);
* the rest is drawn from one replayed pool, which opens with the sum of the balances that
  funded standard usage when the period began (the pool's and every wallet's ledger
  `balance_after` before the period; only one side is non-zero), and receives every
  purchase, grant, auto-recharge and adjustment of standard credits at the moment it was
  written (a ledger entry lands before records written at the same moment or later);
  pooling transfers only move credits between those balances and are left out;
* what the pool cannot pay is the replayed uncovered overage.

Usage is replayed in the period it was charged, which is when it drew on the balances: a
late event (one that occurred in an earlier month) is in the replay of the month it
arrived. AI agent credits are never pooled, so their usage is the same either way and is
not replayed.

Alongside, the actual wallet balances are followed (each record says what its wallet
held after it, each ledger entry what its account held): for every office, the most
credits that sat in the other offices' wallets at a moment its own usage went uncovered.

Records are streamed (a server-side cursor on PostgreSQL) and amounts are handled as
integers of 1/10000 credit, so memory stays flat and the arithmetic exact."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import BigIntegerField, Case, DecimalField, F, Func, Value, When
from django.db.models.functions import Cast

from core.db import POSTGRESQL, dialect
from core.money import ZERO
from credits.allocation import allocate
from credits.models import Account, AccountKind, EntryType, LedgerEntry, PoolingChange
from offices.models import Company, CreditKind, Office
from usage.models import UsageRecord
from usage.statements import _last_balances, period_bounds

UNIT = 10_000
INFLOWS = (EntryType.PURCHASE, EntryType.GRANT, EntryType.AUTO_RECHARGE, EntryType.ADJUSTMENT)
CHUNK = 20_000


def _credits(units: int) -> Decimal:
    return (Decimal(units) / UNIT).quantize(ZERO)


def _units(value: Decimal | None) -> int:
    return 0 if value is None else int(value * UNIT)


class Round(Func):
    function = "ROUND"


def _in_units(name: str):
    """SQL: a credits column as an integer number of 1/10000 credits (exact on
    PostgreSQL's numeric; rounded where SQLite keeps decimals as floats)."""
    scaled = F(name) * Value(Decimal(UNIT), output_field=DecimalField())
    return Cast(Round(scaled, output_field=DecimalField()), BigIntegerField())


REPLAY_COLUMNS = ("pk", "office_id", "cost_u", "allowance_u", "uncovered_u", "wallet_u")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICROSECOND = dt.timedelta(microseconds=1)


def micros(moment: dt.datetime) -> int:
    """A moment as integer microseconds since 1970 (exact, cheap to compare)."""
    return (moment - EPOCH) // MICROSECOND


# PostgreSQL: the same rows as the ORM query below, with every value an integer, read
# through a server-side cursor: converting numerics to Decimal and timestamps to
# datetimes was most of the replay's time (bench/statements.py).
REPLAY_SQL = f"""
    SELECT id, office_id, (cost * {UNIT})::bigint, (allowance_part * {UNIT})::bigint,
           (uncovered * {UNIT})::bigint,
           CASE WHEN NOT pooling_on AND funding_balance_after IS NOT NULL
                THEN (funding_balance_after * {UNIT})::bigint ELSE -1 END,
           (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint
    FROM {UsageRecord._meta.db_table}
    WHERE company_id = %s AND credit_kind = %s AND created_at >= %s AND created_at < %s
    ORDER BY id
"""  # noqa: S608 - no user input: table name and constants


def replay_records(company: Company, starts_at: dt.datetime, ends_at: dt.datetime):
    """The standard usage records charged in [starts_at, ends_at), in charge order, with
    what the replay needs, streamed: (record pk, office pk, cost, allowance part,
    uncovered, its own wallet's balance after it while pooling was off (else -1), the
    moment it was charged in microseconds); amounts in 1/10000 credits."""
    if dialect() == POSTGRESQL:
        yield from _replay_records_sql(company, starts_at, ends_at)
        return
    wallet_after = Case(
        When(pooling_on=False, funding_balance_after__isnull=False,
             then=_in_units("funding_balance_after")),
        default=Value(-1),
        output_field=BigIntegerField(),
    )  # fmt: skip
    rows = (
        UsageRecord.objects.filter(
            company=company,
            credit_kind=CreditKind.STANDARD,
            created_at__gte=starts_at,
            created_at__lt=ends_at,
        )
        .order_by("pk")
        .annotate(
            cost_u=_in_units("cost"),
            allowance_u=_in_units("allowance_part"),
            uncovered_u=_in_units("uncovered"),
            wallet_u=wallet_after,
        )
        .values_list(*REPLAY_COLUMNS, "created_at")
        .iterator(chunk_size=CHUNK)
    )
    for *values, created_at in rows:
        yield (*values, micros(created_at))


def _replay_records_sql(company, starts_at, ends_at):
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.cursor.itersize = CHUNK  # psycopg's named cursor: rows per round trip
        cursor.execute(REPLAY_SQL, [company.pk, CreditKind.STANDARD, starts_at, ends_at])
        yield from cursor


@dataclass
class OfficeWhatIf:
    office_id: int
    name: str
    actual_uncovered: Decimal = ZERO
    replayed_uncovered: Decimal = ZERO
    idle_elsewhere: Decimal = ZERO  # most credits in other wallets while this one ran over
    events: int = 0

    @property
    def covered_by_pooling(self) -> Decimal:
        return self.actual_uncovered - self.replayed_uncovered


@dataclass
class WhatIf:
    company: Company
    period: dt.date
    starts_at: dt.datetime
    ends_at: dt.datetime
    pooled_throughout: bool
    pool_opening: Decimal
    inflows: Decimal
    actual_funded: Decimal
    replayed_funded: Decimal
    pool_closing: Decimal
    wallets_closing: Decimal  # credits left in the wallets when the period ended
    records: int
    offices: list[OfficeWhatIf] = field(default_factory=list)

    @property
    def period_text(self) -> str:
        return f"{self.period:%Y-%m}"

    @property
    def actual_uncovered(self) -> Decimal:
        return sum((o.actual_uncovered for o in self.offices), ZERO)

    @property
    def replayed_uncovered(self) -> Decimal:
        return sum((o.replayed_uncovered for o in self.offices), ZERO)

    @property
    def covered_by_pooling(self) -> Decimal:
        return self.actual_uncovered - self.replayed_uncovered

    @property
    def replay_matches_actual(self) -> bool:
        """Every office's replayed uncovered overage, and the funded total, equal the actual."""
        return self.actual_funded == self.replayed_funded and all(
            o.actual_uncovered == o.replayed_uncovered for o in self.offices
        )


def _batch_marker():
    """record pk → the id of the first ledger entry its batch's usage wrote, or 0 when it
    wrote none. Only asked when a ledger entry and a record carry the same moment (a
    frozen clock): the entry came first iff its id is below the batch's own entry (ids
    are given in write order, and a batch writes its entries after its draws); a batch
    that drew on no balance came first (an inflow before it would have been drawn on)."""
    cache: dict[int, int] = {}

    def marker(record_pk: int) -> int:
        if record_pk not in cache:
            batch = UsageRecord.objects.filter(pk=record_pk).values_list("batch", flat=True)
            first = (
                LedgerEntry.objects.filter(usage_batch__in=batch)
                .order_by("id")
                .values_list("id", flat=True)
                .first()
            )
            cache[record_pk] = first or 0
        return cache[record_pk]

    return marker


def _pooled_throughout(company: Company, starts_at, ends_at) -> bool:
    """Pooling was on when the period began and no toggle happened during it."""
    changes = PoolingChange.objects.filter(company=company)
    if changes.filter(created_at__gte=starts_at, created_at__lt=ends_at).exists():
        return False
    before = changes.filter(created_at__lt=starts_at).order_by("-created_at", "-id").first()
    if before is not None:
        return before.enabled
    after = changes.filter(created_at__gte=ends_at).order_by("created_at", "id").first()
    # No toggle before: the state then is the opposite of the first toggle's, or today's.
    return (not after.enabled) if after is not None else company.pooling_enabled


def whatif_replay(company: Company, *, period: dt.date) -> WhatIf:
    """Replay the standard usage charged in `period` (a validated first day of a month)
    as if pooling had been on throughout (see the module docstring). Read-only."""
    tz = company.tz
    starts_at, ends_at = period_bounds(period, tz)
    accounts = list(
        Account.objects.filter(company=company, kind__in=[AccountKind.POOL, AccountKind.WALLET])
    )
    opening = {pk: _units(v) for pk, v in _last_balances(accounts, starts_at).items()}
    closing = _last_balances(accounts, ends_at)
    wallet_of_office = {a.office_id: a.pk for a in accounts if a.kind == AccountKind.WALLET}
    wallets = {a.pk for a in accounts if a.kind == AccountKind.WALLET}
    pool = sum(opening.values())
    pool_opening = pool

    # Ledger moments that matter: standard inflows (they fill the replayed pool) and every
    # non-usage entry of a wallet (they set its actual balance). A few per period.
    entries = list(
        LedgerEntry.objects.filter(
            company=company,
            account_id__in=[a.pk for a in accounts],
            created_at__gte=starts_at,
            created_at__lt=ends_at,
        )
        .exclude(entry_type=EntryType.USAGE)
        .order_by("created_at", "id")
        .values_list("created_at", "account_id", "entry_type", "amount", "balance_after", "id")
    )
    actual_wallet = {pk: opening[pk] for pk in wallets}
    wallet_total = sum(actual_wallet.values())
    inflows = 0

    names = dict(Office.objects.filter(company=company).values_list("pk", "name"))
    actual_unc: dict[int, int] = defaultdict(int)
    replay_unc: dict[int, int] = defaultdict(int)
    idle: dict[int, int] = defaultdict(int)
    events: dict[int, int] = defaultdict(int)
    records = rest_total = 0
    moments = [micros(e[0]) for e in entries]
    never = 2**63  # after every moment: no ledger entry left to apply
    next_at = moments[0] if moments else never
    i = 0
    marker = _batch_marker()
    own_wallet = wallet_of_office.get
    for pk, office_id, cost, allowance, uncovered, wallet_after, at in replay_records(
        company, starts_at, ends_at
    ):
        # First the ledger entries written before this record (same moment: see marker).
        while next_at <= at and (next_at < at or marker(pk) > entries[i][5]):
            _, account_id, entry_type, amount, balance_after, _ = entries[i]
            if entry_type in INFLOWS:
                units = _units(amount)
                inflows += units
                # a correction larger than what the replay left takes it all, no more
                pool = max(pool + units, 0)
            if account_id in actual_wallet:
                after = _units(balance_after)
                wallet_total += after - actual_wallet[account_id]
                actual_wallet[account_id] = after
            i += 1
            next_at = moments[i] if i < len(moments) else never
        records += 1
        events[office_id] += 1
        rest_total += cost - allowance
        split = allocate(cost, allowance_remaining=allowance, balance=pool)
        if split.funded:
            pool -= split.funded
        if split.uncovered:
            replay_unc[office_id] += split.uncovered
        if wallet_after >= 0:  # pooling was off: the office's wallet paid, or was empty
            own = own_wallet(office_id)
            wallet_total += wallet_after - actual_wallet[own]
            actual_wallet[own] = wallet_after
        if uncovered:
            actual_unc[office_id] += uncovered
            elsewhere = wallet_total - actual_wallet.get(own_wallet(office_id), 0)
            if elsewhere > idle[office_id]:
                idle[office_id] = elsewhere
    actual_funded = rest_total - sum(actual_unc.values())
    replayed_funded = rest_total - sum(replay_unc.values())
    # Inflows written after the last record still count towards the pool's closing.
    for _, _account_id, entry_type, amount, _after, _ in entries[i:]:
        if entry_type in INFLOWS:
            inflows += _units(amount)
            pool = max(pool + _units(amount), 0)

    offices = [
        OfficeWhatIf(
            office_id=pk,
            name=names.get(pk, str(pk)),
            actual_uncovered=_credits(actual_unc[pk]),
            replayed_uncovered=_credits(replay_unc[pk]),
            idle_elsewhere=_credits(idle[pk]),
            events=events[pk],
        )
        for pk in sorted(events, key=lambda pk: (names.get(pk, ""), pk))
    ]
    return WhatIf(
        company=company,
        period=period,
        starts_at=starts_at,
        ends_at=ends_at,
        pooled_throughout=_pooled_throughout(company, starts_at, ends_at),
        pool_opening=_credits(pool_opening),
        inflows=_credits(inflows),
        actual_funded=_credits(actual_funded),
        replayed_funded=_credits(replayed_funded),
        pool_closing=_credits(pool),
        wallets_closing=sum((closing[pk] for pk in wallets), ZERO),
        records=records,
        offices=offices,
    )
