"""An independent, pure-Python model of SPEC §3–§4 and the money controls of §8 (pool
caps, auto-recharge rules, low-balance alerts), used as the oracle of the property and
simulation tests.

It is written from the SPEC alone and imports nothing from the portal: balances are plain
Decimals in dicts, allowances are dicts keyed by (office, kind, period), and every rule
(rounding, periods, allocation order, pooling moves, refusals) is restated here so that a
mistake in the services cannot be copied into the oracle.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

STANDARD = "standard"
AI_AGENT = "ai_agent"
POOL = "pool"
AI = "ai"
ZERO = Decimal("0.0000")
_PLACES = Decimal("0.0001")


def money(value) -> Decimal:
    """Credits: 4 places, half-up (SPEC §2)."""
    return Decimal(value).quantize(_PLACES, rounding=ROUND_HALF_UP)


def wallet(office: str) -> tuple[str, str]:
    """The model's name of an office wallet."""
    return ("wallet", office)


def _content(e) -> tuple:
    """What makes a re-sent id the same event (SPEC §7)."""
    return (e.office, e.service, money(e.quantity), e.occurred_at)


class Refused(Exception):
    """The model refuses the operation; `why` says which rule (the services must refuse too)."""

    def __init__(self, why: str):
        super().__init__(why)
        self.why = why


@dataclass(frozen=True)
class Event:
    external_id: str
    office: str
    service: str
    quantity: Decimal
    occurred_at: dt.datetime


@dataclass(frozen=True)
class Charge:
    """What the model says one usage record holds."""

    office: str
    kind: str
    rate: Decimal
    cost: Decimal
    period: dt.date
    allowance: Decimal
    pool: Decimal
    wallet: Decimal
    ai: Decimal
    uncovered: Decimal
    pooling_on: bool

    def parts(self) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal]:
        return (self.allowance, self.pool, self.wallet, self.ai, self.uncovered)


@dataclass
class Rollup:
    included: Decimal
    used: Decimal = ZERO
    cost_total: Decimal = ZERO
    pool_drawn: Decimal = ZERO
    wallet_drawn: Decimal = ZERO
    ai_drawn: Decimal = ZERO
    uncovered: Decimal = ZERO
    events: int = 0
    pool_cap: Decimal | None = None  # the office's pool cap in force (standard rows)
    pool_drawn_at_cap: Decimal = ZERO  # its pool draws when that cap was set


@dataclass
class CompanyModel:
    """One company: `included[(office, kind)]` is what its plan and add-ons include per
    period, `rates[service] = (rate, kind)` is the catalog."""

    offices: list[str]
    primary: str
    included: dict[tuple[str, str], Decimal]
    rates: dict[str, tuple[Decimal, str]]
    timezone: str = "UTC"
    pooling: bool = False
    balances: dict = field(default_factory=dict)
    allowances: dict[tuple[str, str, dt.date], Rollup] = field(default_factory=dict)
    charges: dict[str, Charge] = field(default_factory=dict)
    sent: dict[str, Event] = field(default_factory=dict)  # each charged id's event
    # Per account, the ledger as (entry type, signed amount, balance after), oldest first.
    ledger: dict = field(default_factory=lambda: defaultdict(list))
    idempotency_keys: set[str] = field(default_factory=set)
    pooling_changes: list[tuple[bool, Decimal]] = field(default_factory=list)
    # Money controls (SPEC §8).
    caps: dict[str, Decimal] = field(default_factory=dict)  # office → monthly pool cap
    rules: dict = field(default_factory=dict)  # account → (threshold, amount, limit)
    recharges: dict = field(default_factory=lambda: defaultdict(int))  # (account, period) → n
    default_threshold: Decimal | None = None
    overrides: dict = field(default_factory=dict)  # account → its own threshold
    low: set = field(default_factory=set)  # accounts with an open low-balance alert
    empty_alerts: set = field(default_factory=set)  # accounts with an open uncovered alert
    opened: dict = field(default_factory=lambda: defaultdict(int))  # (account, kind) → alerts
    # Pool-cap alerts (§8.3), one per (office, period): the open ones, the (office, period)
    # pairs alerted with no cap room since (open, or closed by the period's end), how many
    # each pair opened, and the latest period the pool was drawn for.
    capped_out: set = field(default_factory=set)
    cap_alerted: set = field(default_factory=set)
    cap_opened: dict = field(default_factory=lambda: defaultdict(int))
    pool_period: dt.date | None = None

    def __post_init__(self):
        assert self.primary in self.offices
        for account in self.accounts():
            self.balances.setdefault(account, ZERO)

    # -- reading ---------------------------------------------------------------------------

    def accounts(self) -> list:
        return [POOL, AI] + [wallet(o) for o in self.offices]

    def total(self) -> Decimal:
        return sum(self.balances.values(), ZERO)

    def period(self, moment: dt.datetime) -> dt.date:
        """The calendar month containing `moment` in the company's billing time zone."""
        local = moment.astimezone(ZoneInfo(self.timezone))
        return dt.date(local.year, local.month, 1)

    # -- writing ---------------------------------------------------------------------------

    def funds(self, account) -> bool:
        """Whether a balance pays for usage now (SPEC §1): AI always, the pool only while
        pooling is on, a wallet only while it is off."""
        if account == AI:
            return True
        return self.pooling if account == POOL else not self.pooling

    def threshold(self, account) -> Decimal | None:
        """The warning threshold in force: the balance's own, else the company default;
        none while the balance funds nothing."""
        if not self.funds(account):
            return None
        return self.overrides.get(account, self.default_threshold)

    def _alerts(self, emptied=()) -> None:
        """SPEC §8.2 after each operation: a balance below its threshold has one open
        alert; an empty balance that left usage uncovered opens one until it is refilled
        or stops funding usage."""
        for account in self.accounts():
            threshold = self.threshold(account)
            low = threshold is not None and self.balances[account] < threshold
            if low and account not in self.low:
                self.low.add(account)
                self.opened[account, "low_balance"] += 1
            elif not low:
                self.low.discard(account)
            if account in self.empty_alerts and (
                self.balances[account] > 0 or not self.funds(account)
            ):
                self.empty_alerts.discard(account)
        for account in emptied:
            if self.balances[account] == 0 and account not in self.empty_alerts:
                self.empty_alerts.add(account)
                self.opened[account, "uncovered"] += 1

    def _post(self, account, amount: Decimal, entry_type: str) -> None:
        after = self.balances[account] + amount
        if after < 0:
            raise Refused("insufficient funds")
        self.balances[account] = after
        self.ledger[account].append((entry_type, amount, after))

    def ingest(
        self, events: list[Event], now: dt.datetime | None = None
    ) -> list[tuple[Charge, bool]]:
        """SPEC §3, events in order; an id charged before is a duplicate and costs nothing.
        Just before a draw, the balance's auto-recharge rule may add its amount (§8.1;
        counted per period of `now`); a pool draw stops at the office's cap room (§8.3)."""
        seen = [e.external_id for e in events]
        assert len(seen) == len(set(seen)), "a batch with repeated ids is refused, not modelled"
        for e in events:
            earlier = self.sent.get(e.external_id)
            if earlier is not None and _content(earlier) != _content(e):
                raise Refused(f"id {e.external_id} conflicts with its earlier charge")
        drawn: dict = defaultdict(lambda: ZERO)
        emptied = set()
        capped = []  # (office, period) whose cap left usage uncovered, the pool not empty
        pool_latest = self.pool_period
        now_period = self.period(now or dt.datetime.now(dt.UTC))
        out = []
        for e in events:
            if e.external_id in self.charges:
                out.append((self.charges[e.external_id], True))
                continue
            rate, kind = self.rates[e.service]
            cost = money(e.quantity * rate)
            period = self.period(e.occurred_at)
            key = (e.office, kind, period)
            if key not in self.allowances:
                cap = self.caps.get(e.office) if kind == STANDARD else None
                self.allowances[key] = Rollup(
                    included=self.included[(e.office, kind)], pool_cap=cap
                )
            row = self.allowances[key]
            from_allowance = min(cost, row.included - row.used)
            rest = cost - from_allowance
            if kind == AI_AGENT:
                account = AI
            elif self.pooling:
                account = POOL
            else:
                account = wallet(e.office)
            room = None
            if account == POOL and row.pool_cap is not None:
                room = max(row.pool_cap - row.pool_drawn, ZERO)

            def can_draw(account=account, room=room, rest=rest):
                available = self.balances[account] - drawn[account]
                return min(rest, available, room) if room is not None else min(rest, available)

            rule = self.rules.get(account)
            if rule is not None and rest > 0:
                threshold, amount, limit = rule
                available = self.balances[account] - drawn[account]
                if (
                    self.recharges[account, now_period] < limit
                    and available - can_draw() < threshold
                ):
                    self.recharges[account, now_period] += 1
                    self._post(account, amount, "auto_recharge")
            funded = can_draw()
            drawn[account] += funded
            if rest - funded > 0 and self.balances[account] - drawn[account] == 0:
                emptied.add(account)
            elif rest - funded > 0 and room is not None:
                capped.append((e.office, period))
            if account == POOL:
                pool_latest = max(period, pool_latest or period)
            charge = Charge(
                office=e.office,
                kind=kind,
                rate=rate,
                cost=cost,
                period=period,
                allowance=from_allowance,
                pool=funded if account == POOL else ZERO,
                wallet=funded if account not in (POOL, AI) else ZERO,
                ai=funded if account == AI else ZERO,
                uncovered=rest - funded,
                pooling_on=self.pooling,
            )
            row.used += from_allowance
            row.cost_total += cost
            row.pool_drawn += charge.pool
            row.wallet_drawn += charge.wallet
            row.ai_drawn += charge.ai
            row.uncovered += charge.uncovered
            row.events += 1
            self.charges[e.external_id] = charge
            self.sent[e.external_id] = e
            out.append((charge, False))
        # One usage ledger entry per account per batch, for what the batch drew from it.
        for account, amount in drawn.items():
            if amount:
                self._post(account, -amount, "usage")
        self._alerts(emptied)
        self._cap_alerts(pool_latest, capped)
        return out

    def _cap_alerts(self, pool_latest, capped) -> None:
        """SPEC §8.3 after a batch: drawing on the pool for a later period ends the earlier
        periods' pool-cap alerts; an office whose cap left usage uncovered while the pool
        held credits opens one for that period, unless alerted already (and no cap room
        since) or the period is over."""
        if pool_latest != self.pool_period:
            self.pool_period = pool_latest
            self.capped_out = {(o, p) for o, p in self.capped_out if p >= pool_latest}
        for key in capped:
            if key in self.cap_alerted or key[1] < self.pool_period:
                continue
            self.cap_alerted.add(key)
            self.capped_out.add(key)
            self.cap_opened[key] += 1

    def add(
        self,
        *,
        amount: Decimal,
        kind: str = STANDARD,
        office: str | None = None,
        key: str = "",
        entry_type: str = "purchase",
    ) -> bool:
        """A purchase or grant: AI credits to the AI account, standard credits to the pool
        while pooling is on, else to the chosen office's wallet. False if the key was used."""
        if key and key in self.idempotency_keys:
            return False
        if kind == AI_AGENT:
            account = AI
        elif self.pooling:
            account = POOL
        elif office is None:
            raise Refused("pooling is off: choose an office")
        else:
            account = wallet(office)
        self._post(account, amount, entry_type)
        if key:
            self.idempotency_keys.add(key)
        self._alerts()
        return True

    def adjust(self, account, amount: Decimal) -> None:
        """A signed correction of the balance that funds usage now, never below zero."""
        if account != AI and account != POOL and self.pooling:
            raise Refused("pooling is on: wallets stay empty")
        if account == POOL and not self.pooling:
            raise Refused("pooling is off: the pool is not used")
        self._post(account, amount, "adjustment")
        self._alerts()

    def set_pooling(self, enabled: bool) -> Decimal | None:
        """SPEC §4: on moves every wallet into the pool, off moves the pool to the primary
        office's wallet; the current state changes nothing (None)."""
        if enabled == self.pooling:
            return None
        if enabled:
            pairs = [(wallet(o), POOL) for o in self.offices]
        else:
            pairs = [(POOL, wallet(self.primary))]
        moved = ZERO
        for source, target in pairs:
            amount = self.balances[source]
            if amount > 0:
                self._post(source, -amount, "pooling_transfer")
                self._post(target, amount, "pooling_transfer")
                moved += amount
        self.pooling = enabled
        self.pooling_changes.append((enabled, moved))
        if not enabled:  # no pool draws: no office is capped out
            self.cap_alerted.clear()
            self.capped_out.clear()
        self._alerts()
        return moved

    # -- money controls (SPEC §8) --------------------------------------------------------

    def set_cap(self, office: str, cap: Decimal | None) -> None:
        """A cap applies to draws after it, in every period: each of the office's
        standard rows takes it, remembering what was drawn before it."""
        if cap is None:
            self.caps.pop(office, None)
        else:
            self.caps[office] = cap
        for (row_office, kind, period), row in self.allowances.items():
            if row_office == office and kind == STANDARD:
                row.pool_cap = cap
                row.pool_drawn_at_cap = row.pool_drawn
                # Room again: the office is no longer capped out in that period.
                if cap is None or cap > row.pool_drawn:
                    self.cap_alerted.discard((office, period))
                    self.capped_out.discard((office, period))

    def set_rule(self, account, rule: tuple[Decimal, Decimal, int] | None) -> None:
        """(threshold, amount, monthly limit), or None to remove the rule. Recharges made
        this period still count against a changed rule."""
        if rule is None:
            # A new rule later is another rule: its recharges count from zero.
            self.rules.pop(account, None)
            for key in [k for k in self.recharges if k[0] == account]:
                del self.recharges[key]
        else:
            self.rules[account] = rule

    def set_threshold(self, account, value: Decimal | None) -> None:
        """The company default (`account` None) or one balance's override."""
        if account is None:
            self.default_threshold = value
        elif value is None:
            self.overrides.pop(account, None)
        else:
            self.overrides[account] = value
        self._alerts()
