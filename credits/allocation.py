"""The allocation rule of SPEC §3 as pure functions: which balance pays for a cost, and
whether an auto-recharge rule tops the balance up first (§8.1)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.money import ZERO


@dataclass(frozen=True)
class Split:
    allowance: Decimal = ZERO
    funded: Decimal = ZERO  # drawn from the funding balance (pool, wallet or AI credits)
    uncovered: Decimal = ZERO


def cap_room(cap: Decimal | None, drawn: Decimal) -> Decimal | None:
    """What an office may still draw from the pool this period under `cap` (None: no
    cap), having drawn `drawn`; never negative, even when the cap was lowered below it."""
    return None if cap is None else max(cap - drawn, ZERO)


def allocate(
    cost: Decimal, *, allowance_remaining: Decimal, balance: Decimal, room: Decimal | None = None
) -> Split:
    """Allowance first, then the funding balance (at most `room`, the office's pool cap
    room; None: no cap), then uncovered; nothing goes negative."""
    from_allowance = min(cost, max(allowance_remaining, ZERO))
    rest = cost - from_allowance
    funded = min(rest, max(balance, ZERO))
    if room is not None:
        funded = min(funded, max(room, ZERO))
    return Split(allowance=from_allowance, funded=funded, uncovered=rest - funded)


def recharge_due(
    cost: Decimal,
    *,
    allowance_remaining: Decimal,
    balance: Decimal,
    room: Decimal | None,
    threshold: Decimal,
    recharges: int,
    limit: int,
) -> bool:
    """Whether a rule with `threshold` and monthly `limit` (`recharges` made this period)
    recharges just before this draw: the draw would leave the balance below the
    threshold. Only a draw on the balance (a cost beyond the allowance) can trigger it."""
    if recharges >= limit:
        return False
    split = allocate(cost, allowance_remaining=allowance_remaining, balance=balance, room=room)
    if not split.funded and not split.uncovered:
        return False
    return balance - split.funded < threshold
