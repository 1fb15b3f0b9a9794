"""The allocation rule of SPEC §3 as a pure function: which balance pays for a cost."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from core.money import ZERO


@dataclass(frozen=True)
class Split:
    allowance: Decimal = ZERO
    funded: Decimal = ZERO  # drawn from the funding balance (pool, wallet or AI credits)
    uncovered: Decimal = ZERO


def allocate(cost: Decimal, *, allowance_remaining: Decimal, balance: Decimal) -> Split:
    """Allowance first, then the funding balance, then uncovered; nothing goes negative."""
    from_allowance = min(cost, max(allowance_remaining, ZERO))
    rest = cost - from_allowance
    funded = min(rest, max(balance, ZERO))
    return Split(allowance=from_allowance, funded=funded, uncovered=rest - funded)
