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
from django.utils import timezone

from core.db import POSTGRESQL, dialect
from core.errors import Conflict
from core.money import ZERO
from credits.allocation import allocate, recharge_due
from credits.control_history import pool_cap_history, recharge_rule_history
from credits.models import Account, AccountKind, EntryType, LedgerEntry, PoolingChange
from offices.models import Company, CreditKind, Office
from usage.models import UsageRecord
from usage.partitions import archived_tables, partition_name, record_source
from usage.selectors import usage_pool_drawn, usage_record_batch
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


def month_index(day: dt.date) -> int:
    """A billing period (its first day) as one integer: year * 12 + month."""
    return day.year * 12 + day.month


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
           (EXTRACT(EPOCH FROM created_at) * 1000000)::bigint,
           (EXTRACT(YEAR FROM period) * 12 + EXTRACT(MONTH FROM period))::int
    FROM {{source}} AS r
    WHERE company_id = %s AND credit_kind = %s AND created_at >= %s AND created_at < %s
    ORDER BY id
"""  # noqa: S608 - no user input: table name and constants


def replay_records(company: Company, starts_at: dt.datetime, ends_at: dt.datetime):
    """The standard usage records charged in [starts_at, ends_at), in charge order, with
    what the replay needs, streamed: (record pk, office pk, cost, allowance part,
    uncovered, its own wallet's balance after it while pooling was off (else -1), the
    moment it was charged in microseconds, its billing period as `month_index`); amounts
    in 1/10000 credits. Archived partitions are read too: a late event charged in this
    period but occurred in an archived month is still this period's."""
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
        .values_list(*REPLAY_COLUMNS, "created_at", "period")
        .iterator(chunk_size=CHUNK)
    )
    for *values, created_at, period in rows:
        yield (*values, micros(created_at), month_index(period))


def _replay_records_sql(company, starts_at, ends_at):
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.cursor.itersize = CHUNK  # psycopg's named cursor: rows per round trip
        sql = REPLAY_SQL.format(source=record_source())
        cursor.execute(sql, [company.pk, CreditKind.STANDARD, starts_at, ends_at])
        yield from cursor


@dataclass
class OfficeWhatIf:
    office_id: int
    name: str
    actual_uncovered: Decimal = ZERO
    replayed_uncovered: Decimal = ZERO  # all of it, what caps left included
    capped: Decimal = ZERO  # of the replayed uncovered: what the office's pool cap left
    idle_elsewhere: Decimal = ZERO  # most credits in other wallets while this one ran over
    events: int = 0

    @property
    def covered_by_pooling(self) -> Decimal:
        return self.actual_uncovered - self.replayed_uncovered

    @property
    def short_of_credits(self) -> Decimal:
        """Of the replayed uncovered: what the pool could not pay (it was empty)."""
        return self.replayed_uncovered - self.capped


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
    pool_recharges: Decimal = ZERO  # what the pool's auto-recharge rule added in the replay
    complete: bool = True  # the period is over (else: so far)

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
    def capped(self) -> Decimal:
        return sum((o.capped for o in self.offices), ZERO)

    @property
    def covered_by_pooling(self) -> Decimal:
        return self.actual_uncovered - self.replayed_uncovered

    @property
    def replay_matches_actual(self) -> bool:
        """Every office's replayed uncovered overage, and the funded total, equal the actual."""
        return self.actual_funded == self.replayed_funded and all(
            o.actual_uncovered == o.replayed_uncovered for o in self.offices
        )


class ArchivedPeriod(Conflict):
    """The period's usage records were archived (detached): there is nothing to replay."""


def period_archived(period: dt.date) -> bool:
    """The usage records of `period` were moved out of the live table (usage_retention)."""
    return partition_name(period) in set(archived_tables())


def _units_history(steps):
    """A cap history in units (see credits.control_history), as (micros, units) steps."""
    return [
        (None if at is None else micros(at), None if v is None else _units(v)) for at, v in steps
    ]


def _step_at(steps, at: int):
    value = steps[0][1]
    for moment, step in steps[1:]:
        if moment > at:
            break
        value = step
    return value


class _Caps:
    """The replay's pool caps (SPEC §8.3 as it was at each draw, §9.2): each office's cap
    in force at the record's charge moment, and its room left: the cap less what the
    office drew from the replayed pool for the same billing period. For a late record
    (of an earlier period) the draws of that period charged before this one began count
    as they actually were."""

    def __init__(self, company: Company, starts_at: dt.datetime, period: int):
        self.company = company
        self.starts_at = starts_at
        self.period = period
        self.history = {o: _units_history(s) for o, s in pool_cap_history(company).items()}
        self.drawn: dict[tuple[int, int], int] = {}

    def room(self, office_id: int, period: int, at: int) -> int | None:
        steps = self.history.get(office_id)
        if steps is None:
            return None
        cap = _step_at(steps, at)
        return None if cap is None else max(cap - self._drawn(office_id, period), 0)

    def draw(self, office_id: int, period: int, units: int) -> None:
        if office_id in self.history:  # draws count before a cap is set, too
            self.drawn[office_id, period] = self._drawn(office_id, period) + units

    def _drawn(self, office_id: int, period: int) -> int:
        key = (office_id, period)
        if key not in self.drawn:
            self.drawn[key] = 0 if period >= self.period else self._drawn_before(*key)
        return self.drawn[key]

    def _drawn_before(self, office_id: int, period: int) -> int:
        year, month = divmod(period - 1, 12)
        return _units(
            usage_pool_drawn(
                office_id=office_id,
                period=dt.date(year, month + 1, 1),
                charged_before=self.starts_at,
            )
        )


class _PoolRule:
    """The pool's auto-recharge rule (SPEC §8.1) as it was at each draw of the replay:
    while pooled, the pool's rule applies and wallet rules sleep. Its recharges are
    counted in the replayed period (the period of the moment they happen)."""

    def __init__(self, company: Company, pool: Account | None):
        steps = [] if pool is None else recharge_rule_history(company, pool)
        self.steps = [(None if at is None else micros(at), terms) for at, terms in steps] or [
            (None, None)
        ]
        self.done = 0
        self.added = 0

    def before_draw(self, at: int, cost: int, allowance: int, pool: int, room) -> int:
        """Units the rule adds just before this draw (0 when it does not fire)."""
        terms = _step_at(self.steps, at)
        if terms is None:
            return 0
        threshold, amount = _units(terms.threshold), _units(terms.amount)
        if not recharge_due(
            cost,
            allowance_remaining=allowance,
            balance=pool,
            room=room,
            threshold=threshold,
            recharges=self.done,
            limit=terms.limit,
        ):
            return 0
        self.done += 1
        self.added += amount
        return amount


def _batch_marker():
    """record pk → the id of the first ledger entry its batch's usage wrote, or 0 when it
    wrote none. Only asked when a ledger entry and a record carry the same moment (a
    frozen clock): the entry came first iff its id is below the batch's own entry (ids
    are given in write order, and a batch writes its entries after its draws); a batch
    that drew on no balance came first (an inflow before it would have been drawn on)."""
    cache: dict[int, int] = {}

    def marker(record_pk: int) -> int:
        if record_pk not in cache:
            batch = usage_record_batch(record_pk)  # archived records too
            first = batch and (
                LedgerEntry.objects.filter(usage_batch=batch)
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


def whatif_replay(company: Company, *, period: dt.date, now: dt.datetime | None = None) -> WhatIf:
    """Replay the standard usage charged in `period` (a validated first day of a month)
    as if pooling had been on throughout (see the module docstring). Read-only. A period
    whose records were archived is refused (ArchivedPeriod, 409)."""
    if period_archived(period):
        raise ArchivedPeriod(
            f"The usage records of {period:%Y-%m} were archived: the what-if of an archived "
            "period cannot be replayed. Its statement still reads the ledger."
        )
    tz = company.tz
    starts_at, ends_at = period_bounds(period, tz)
    accounts = list(
        Account.objects.filter(company=company, kind__in=[AccountKind.POOL, AccountKind.WALLET])
    )
    opening = {pk: _units(v) for pk, v in _last_balances(accounts, starts_at).items()}
    closing = _last_balances(accounts, ends_at)
    wallet_of_office = {a.office_id: a.pk for a in accounts if a.kind == AccountKind.WALLET}
    wallets = {a.pk for a in accounts if a.kind == AccountKind.WALLET}
    pool_account = next((a for a in accounts if a.kind == AccountKind.POOL), None)
    pool = sum(opening.values())
    pool_opening = pool

    # Ledger moments that matter: purchases, grants and adjustments of standard credits
    # (they fill the replayed pool) and every non-usage entry of a wallet (they set its
    # actual balance). Auto-recharges written by a usage batch are left out: the pool's
    # rule is replayed at the draw it fires before, wallet rules sleep while pooled, and
    # the records' own `funding_balance_after` already carries a wallet's recharge from
    # the draw it fired before (not after its batch). A few entries per period.
    entries = list(
        LedgerEntry.objects.filter(
            company=company,
            account_id__in=[a.pk for a in accounts],
            created_at__gte=starts_at,
            created_at__lt=ends_at,
        )
        .exclude(entry_type=EntryType.USAGE)
        .exclude(entry_type=EntryType.AUTO_RECHARGE, usage_batch__isnull=False)
        .order_by("created_at", "id")
        .values_list("created_at", "account_id", "entry_type", "amount", "balance_after", "id")
    )
    actual_wallet = {pk: opening[pk] for pk in wallets}
    wallet_total = sum(actual_wallet.values())
    inflows = 0

    names = dict(Office.objects.filter(company=company).values_list("pk", "name"))
    actual_unc: dict[int, int] = defaultdict(int)
    replay_unc: dict[int, int] = defaultdict(int)
    capped: dict[int, int] = defaultdict(int)
    idle: dict[int, int] = defaultdict(int)
    events: dict[int, int] = defaultdict(int)
    records = rest_total = 0
    moments = [micros(e[0]) for e in entries]
    never = 2**63  # after every moment: no ledger entry left to apply
    next_at = moments[0] if moments else never
    i = 0
    marker = _batch_marker()
    own_wallet = wallet_of_office.get
    caps = _Caps(company, starts_at, month_index(period))
    rule = _PoolRule(company, pool_account)
    for pk, office_id, cost, allowance, uncovered, wallet_after, at, month in replay_records(
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
        room = caps.room(office_id, month, at)
        pool += rule.before_draw(at, cost, allowance, pool, room)
        split = allocate(cost, allowance_remaining=allowance, balance=pool, room=room)
        if split.uncovered:
            replay_unc[office_id] += split.uncovered
            if room is not None:  # beyond what an empty pool leaves: the cap's part
                capped[office_id] += split.uncovered - max(cost - split.allowance - pool, 0)
        if split.funded:
            pool -= split.funded
            caps.draw(office_id, month, split.funded)
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
            capped=_credits(capped[pk]),
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
        inflows=_credits(inflows + rule.added),
        pool_recharges=_credits(rule.added),
        actual_funded=_credits(actual_funded),
        replayed_funded=_credits(replayed_funded),
        pool_closing=_credits(pool),
        wallets_closing=sum((closing[pk] for pk in wallets), ZERO),
        records=records,
        offices=offices,
        complete=(now or timezone.now()) >= ends_at,
    )
