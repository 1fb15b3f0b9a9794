"""Which balance funds a credit kind (SPEC §2, §3): the one routing rule.

Standard credits live in the company pool while pooling is on and in each office's own
wallet while it is off; AI agent credits always live in the company's AI agent account,
held by the primary office. Usage draws, purchases, grants and adjustments all ask here."""

from __future__ import annotations

from credits.models import AccountKind
from offices.models import CreditKind


def funding_kind(credit_kind: str, *, pooling: bool) -> str:
    """The kind of account that holds (and pays) credits of `credit_kind`."""
    if credit_kind == CreditKind.AI_AGENT:
        return AccountKind.AI_AGENT
    return AccountKind.POOL if pooling else AccountKind.WALLET


def funds_usage(account_kind: str, *, pooling: bool) -> bool:
    """Whether a balance of `account_kind` pays for usage under this pooling state."""
    return account_kind in {
        funding_kind(k, pooling=pooling) for k in (CreditKind.STANDARD, CreditKind.AI_AGENT)
    }
