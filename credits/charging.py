"""The charging session: how usage asks credits to pay for a batch of events (SPEC §3).

Usage opens a session inside its transaction and keeps to this order:

1. ``session = ChargingSession.open(company=…, batch=…, actor=…)`` takes the company row
   lock (shared: the pooling state cannot change until the transaction ends);
2. ``session.lock(needs)`` takes the funding accounts the batch draws on, in pk order,
   then the allowance rows of every (office, credit kind, period), in pk order (creating
   a new month's rows first): the documented lock order, so writers never deadlock;
3. ``session.draw(...)`` for each event, in order, returns its split and paying balance;
   an auto-recharge rule of that balance may top it up just before (SPEC §8.1), and an
   office's pool cap limits what it draws from the pool (§8.3, on its allowance row);
4. ``session.flush()`` writes what the draws changed: the recharges' ledger entries, one
   usage ledger entry per account drawn, the new balances and the allowance rollups.

Which balance pays comes from credits.routing, how a cost splits from credits.allocation.
``flush`` writes through the ORM, or on PostgreSQL through one statement (core.db.dialect
picks; the parity tests run both)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from core.db import POSTGRESQL, dialect
from core.money import ZERO
from credits.accounts import accounts_ensure
from credits.alerts import (
    alerts_open_uncovered,
    alerts_sync,
    pool_cap_alerts_open,
    pool_period_advance,
)
from credits.allocation import Split, allocate, cap_room, recharge_due
from credits.allowances import ALLOWANCE_ROLLUPS, allowances_create
from credits.ledger import Posting, post, post_sql
from credits.models import Account, AccountKind, Allowance, EntryType, RechargeRule
from credits.periods import billing_period
from credits.routing import funding_kind
from offices.locks import lock_company
from offices.models import Company, CreditKind, Office

# The usage record's column that holds the part a balance of each kind paid (plain str
# keys: looked up once per event).
FUNDING_PART = {
    str(AccountKind.POOL): "pool_part",
    str(AccountKind.WALLET): "wallet_part",
    str(AccountKind.AI_AGENT): "ai_part",
}
# The allowance row's rollup of what a balance of each kind paid.
FUNDING_DRAWN = {
    str(AccountKind.POOL): "pool_drawn",
    str(AccountKind.WALLET): "wallet_drawn",
    str(AccountKind.AI_AGENT): "ai_drawn",
}


PARTS = ("allowance_part", "pool_part", "wallet_part", "ai_part", "uncovered")


@dataclass(slots=True)  # not frozen: a frozen dataclass's __init__ is several times slower
class Draw:
    """How one event's cost was paid: its split and the balance that funded it, with the
    split by usage record column (what the records store)."""

    split: Split
    account: Account
    balance_after: Decimal
    allowance_part: Decimal
    pool_part: Decimal
    wallet_part: Decimal
    ai_part: Decimal
    uncovered: Decimal

    @classmethod
    def of(cls, split: Split, account: Account) -> Draw:
        paid_by = FUNDING_PART[account.kind]
        funded = split.funded
        return cls(
            split,
            account,
            account.balance,
            split.allowance,
            funded if paid_by == "pool_part" else ZERO,
            funded if paid_by == "wallet_part" else ZERO,
            funded if paid_by == "ai_part" else ZERO,
            split.uncovered,
        )

    def parts(self) -> dict[str, Decimal]:
        """The split by usage record column (allowance, pool, wallet, AI, uncovered)."""
        return {name: getattr(self, name) for name in PARTS}


class ChargingSession:
    """One batch's charges against one company's balances (see the module docstring)."""

    def __init__(self, *, company: Company, batch: uuid.UUID, actor, writer: str):
        self.company = company
        self.pooling = company.pooling_enabled
        # Which kind of account pays each credit kind, for the whole session.
        self._routes = {k: funding_kind(k, pooling=self.pooling) for k in CreditKind.values}
        self.batch = batch
        self.actor = actor
        self.writer = writer
        self.accounts: list[Account] = []
        self._by_kind: dict[tuple[str, int | None], Account] = {}
        self.allowances: dict[tuple, Allowance] = {}
        self._drawn: dict[int, Decimal] = defaultdict(lambda: ZERO)
        self._counts: dict[int, int] = defaultdict(int)
        self.rules: dict[int, RechargeRule] = {}  # by account pk
        self._recharges: list[Posting] = []
        self._recharged: dict[int, Decimal] = defaultdict(lambda: ZERO)
        self._period = None  # the billing period now, for counting recharges
        self._emptied: set[int] = set()  # accounts that left usage uncovered at 0
        # Allowance rows (by pk) whose office's pool cap left usage uncovered while the
        # pool still held credits (SPEC §8.3): their pool-cap alert may open.
        self._capped: dict[int, Allowance] = {}

    @classmethod
    def open(
        cls, *, company_id: int, batch: uuid.UUID, actor, writer: str | None = None
    ) -> ChargingSession:
        """Lock the company row (shared) and start a session; call inside a transaction."""
        company = lock_company(company_id, exclusive=False)
        return cls(company=company, batch=batch, actor=actor, writer=writer or dialect())

    # Locks ---------------------------------------------------------------------------

    def lock(self, needs: set[tuple[int, str, object]], offices: dict[int, Office]) -> None:
        """Lock what the batch may draw on: `needs` holds (office pk, credit kind, period);
        `offices` the batch's offices by pk (a new month's allowance reads their plans)."""
        routes = self._routes
        wanted = {
            (kind, office_id if kind == AccountKind.WALLET else None)
            for office_id, credit_kind, _ in needs
            for kind in [routes[credit_kind]]
        }
        accounts = self._accounts_lock(wanted)
        if len(accounts) < len(wanted):
            accounts_ensure(company=self.company)
            accounts = self._accounts_lock(wanted)
        self.accounts = accounts
        # Money controls: the recharge rules of the locked accounts, read under their
        # locks, so a rule change waits for this batch. A statement of its own: read in
        # the locking statement (a join), a rule changed by a transaction this one waited
        # for would be seen as it was before (PostgreSQL re-reads only the locked rows),
        # and a recharge counted twice (the controls concurrency tests catch it). Only
        # when a locked account says it has a rule: its flag is kept under its row lock
        # by the rule services, and a locked row is read as its newest version, so the
        # common case (no rule) costs no statement.
        self.rules = {}
        if any(a.has_recharge_rule for a in accounts):
            ruled = [a.pk for a in accounts if a.has_recharge_rule]
            self.rules = {
                r.account_id: r for r in RechargeRule.objects.filter(account_id__in=ruled)
            }
        self._by_kind = {
            (a.kind, a.office_id if a.kind == AccountKind.WALLET else None): a for a in accounts
        }
        allowances = self._allowances_lock(needs)
        if missing := needs - allowances.keys():
            allowances_create(company=self.company, keys=missing, offices_by_pk=offices)
            allowances.update(self._allowances_lock(missing))
        self.allowances = allowances

    def _accounts_lock(self, wanted) -> list[Account]:
        """The accounts of `wanted` ((kind, office pk or None) pairs), FOR UPDATE in pk order."""
        kinds = sorted({str(kind) for kind, office in wanted if office is None})
        wallets = sorted(office for kind, office in wanted if office is not None)
        if self.writer == POSTGRESQL:
            # Hand-written: on a single event, building this ORM query cost a tenth of
            # the request's CPU (profiled).
            return list(Account.objects.raw(ACCOUNTS_LOCK_SQL, [self.company.pk, kinds, wallets]))
        cond = Q(kind__in=kinds)
        if wallets:
            cond |= Q(kind=AccountKind.WALLET, office_id__in=wallets)
        return list(
            Account.objects.select_for_update().filter(cond, company=self.company).order_by("pk")
        )

    def _allowances_lock(self, keys) -> dict[tuple, Allowance]:
        """The allowance rows of `keys` (office pk, kind, period), FOR UPDATE in pk order."""
        if self.writer == POSTGRESQL:
            # Runs while the pool row is locked: hand-written, it skips the ORM's query
            # building (21 % of a single event's CPU, profiled), and it locks exactly the
            # rows of `keys` (their unique index).
            ordered = sorted(keys)
            rows = Allowance.objects.raw(
                ALLOWANCE_LOCK_SQL,
                [self.company.pk, *([key[i] for key in ordered] for i in range(3))],
            )
            return {(a.office_id, a.kind, a.period): a for a in rows}
        rows = (
            Allowance.objects.filter(
                company=self.company,
                office_id__in={o for o, _, _ in keys},
                period__in={p for _, _, p in keys},
                kind__in={k for _, k, _ in keys},
            )
            .select_for_update()
            .order_by("pk")
        )
        return {
            (a.office_id, a.kind, a.period): a
            for a in rows
            if (a.office_id, a.kind, a.period) in keys
        }

    # Draws ---------------------------------------------------------------------------

    def draw(self, *, office_id: int, credit_kind: str, period, cost: Decimal) -> Draw:
        """Pay `cost` of one event: its office's allowance first, then the balance that
        funds `credit_kind` now, the rest uncovered (SPEC §3). In processing order."""
        kind = self._routes[credit_kind]
        account = self._by_kind[kind, office_id if kind == AccountKind.WALLET else None]
        allowance = self.allowances[office_id, credit_kind, period]
        room = None
        if account.kind == AccountKind.POOL:
            room = cap_room(allowance.pool_cap, allowance.pool_drawn)
        if self.rules and (rule := self.rules.get(account.id)) is not None:
            self._recharge_if_due(rule, account, cost, allowance.remaining, room)
        split = allocate(
            cost, allowance_remaining=allowance.remaining, balance=account.balance, room=room
        )
        account.balance -= split.funded
        if split.uncovered:
            if not account.balance:
                self._emptied.add(account.id)
            elif room is not None:  # the pool holds credits: the cap stopped the draw
                self._capped[allowance.id] = allowance
        self._drawn[account.id] += split.funded
        self._counts[account.id] += 1
        allowance.used += split.allowance
        allowance.cost_total += cost
        drawn = FUNDING_DRAWN[account.kind]
        setattr(allowance, drawn, getattr(allowance, drawn) + split.funded)
        allowance.uncovered += split.uncovered
        allowance.events += 1
        return Draw.of(split, account)

    def _recharge_if_due(self, rule, account, cost, allowance_remaining, room) -> None:
        """SPEC §8.1: at most one recharge per event, within the rule's monthly limit
        (counted per billing period of the moment it happens)."""
        if self._period is None:
            self._period = billing_period(self.company).start
        period = self._period
        done = rule.recharges if rule.period == period else 0
        if not recharge_due(
            cost,
            allowance_remaining=allowance_remaining,
            balance=account.balance,
            room=room,
            threshold=rule.threshold,
            recharges=done,
            limit=rule.monthly_limit,
        ):
            return
        rule.period, rule.recharges = period, done + 1
        account.balance += rule.amount
        self._recharged[account.id] += rule.amount
        self._recharges.append(
            Posting(
                account=account,
                amount=rule.amount,
                entry_type=EntryType.AUTO_RECHARGE,
                memo=(
                    f"Auto-recharge rule #{rule.pk}: below {rule.threshold} "
                    f"({rule.recharges} of {rule.monthly_limit} in {period:%Y-%m})"
                ),
                reference=recharge_reference(rule, period),
                usage_batch=self.batch,
            )
        )

    # Flush ---------------------------------------------------------------------------

    def _postings(self) -> list[Posting]:
        """One usage posting per account drawn. The draws already lowered the balances in
        memory; they are put back so the ledger applies each posting exactly once."""
        postings = []
        for account in self.accounts:
            amount = self._drawn[account.id]
            # Back to the balance before the batch: the recharges are posted first.
            account.balance += amount - self._recharged[account.id]
            if not amount:
                continue
            postings.append(
                Posting(
                    account=account,
                    amount=-amount,
                    entry_type=EntryType.USAGE,
                    memo=usage_memo(self._counts[account.id]),
                    reference=f"usage-batch:{self.batch}",
                    usage_batch=self.batch,
                )
            )
        return postings

    def flush(self) -> None:
        """Write the batch's ledger entries, balances and allowance rollups."""
        postings = self._postings()
        allowances = list(self.allowances.values())
        if self._recharges:
            # Rare (a rule's monthly limit bounds them): posted on their own, before the
            # usage, under the same locks, so each account's entries chain in order.
            post(self._recharges, actor=self.actor, sync_alerts=False)
            for rule in {p.account.id: self.rules[p.account.id] for p in self._recharges}.values():
                RechargeRule.objects.filter(pk=rule.pk).update(
                    period=rule.period, recharges=rule.recharges
                )
        if self.writer == POSTGRESQL:
            _flush_sql(postings, allowances, actor=self.actor)
        else:
            post(postings, actor=self.actor)
            Allowance.objects.bulk_update(allowances, [*ALLOWANCE_ROLLUPS, "events"])
        if self._recharges:
            # Alerts follow the balances as the batch leaves them, not the moment between.
            alerts_sync({p.account.id: p.account for p in self._recharges}.values())
        if self._emptied:
            alerts_open_uncovered(a for a in self.accounts if a.id in self._emptied)
        if self.pooling:
            self._pool_cap_alerts()

    def _pool_cap_alerts(self) -> None:
        """SPEC §8.3: a batch that drew on the pool for a later period than any before
        ends the earlier periods' pool-cap alerts; an office capped out by this batch
        opens its own. Nothing to write in the common case (the pool's period is known
        and no cap stopped a draw)."""
        pool = self._by_kind.get((AccountKind.POOL, None))
        if pool is None:
            return
        latest = pool.latest_period
        for _, kind, period in self.allowances:
            if kind == CreditKind.STANDARD and (latest is None or period > latest):
                latest = period
        if latest != pool.latest_period:
            pool_period_advance(pool, latest)
        if self._capped:
            pool_cap_alerts_open(pool, self._capped.values())


def usage_memo(events: int) -> str:
    """The memo of a batch's usage entry: how many events it charges."""
    return f"Usage: {events} event{'' if events == 1 else 's'}"


def recharge_reference(rule: RechargeRule, period) -> str:
    """The recharge entry's reference: its rule, period, and count within the limit in
    force (what check_ledger reads for invariant 10)."""
    return f"recharge-rule:{rule.pk}:{period:%Y-%m}:{rule.recharges}/{rule.monthly_limit}"


ACCOUNTS_LOCK_SQL = (
    f"SELECT * FROM {Account._meta.db_table} WHERE company_id = %s AND (kind = ANY(%s) "  # noqa: S608
    "OR (kind = 'wallet' AND office_id = ANY(%s))) ORDER BY id FOR UPDATE"
)
ALLOWANCE_LOCK_SQL = (
    f"SELECT * FROM {Allowance._meta.db_table} WHERE company_id = %s "  # noqa: S608
    "AND (office_id, kind, period) IN "
    "(SELECT * FROM unnest(%s::bigint[], %s::text[], %s::date[])) ORDER BY id FOR UPDATE"
)


def _flush_sql(postings: list[Posting], allowances: list[Allowance], *, actor) -> None:
    """PostgreSQL: ledger entries, balances and allowance rollups in one statement (a
    data-modifying WITH): the fewer round trips while the pool row is locked, the more
    events a shared pool takes per second."""
    now = timezone.now()
    ctes, params = post_sql(postings, actor=actor, now=now) if postings else ([], [])
    names = (*ALLOWANCE_ROLLUPS, "events")
    sets = ", ".join(f"{c} = v.{c}" for c in names)
    arrays = ", ".join(["%s::bigint[]", *["%s::numeric[]"] * len(ALLOWANCE_ROLLUPS), "%s::int[]"])
    columns = ", ".join(("id", *names))
    with_ctes = f"WITH {', '.join(ctes)} " if ctes else ""
    sql = (
        f"{with_ctes}UPDATE {Allowance._meta.db_table} AS a SET {sets} "  # noqa: S608
        f"FROM unnest({arrays}) AS v({columns}) WHERE a.id = v.id"
    )
    params += [[a.id for a in allowances]]
    params += [[getattr(a, c) for a in allowances] for c in names]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
