"""How the portal prints credits: thousands separators and 2 to 4 decimal places."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from django import template

from core.money import q

register = template.Library()


@register.filter
def credits(value) -> str:
    """1234.5 → "1,234.50"; 0.1234 → "0.1234"; 0.125 → "0.125"; None → "—"."""
    if value is None or value == "":
        return "—"
    try:
        # A Decimal (the usual case) needs no round trip through str.
        amount = q(value if isinstance(value, Decimal) else Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return str(value)
    text = f"{amount:,.4f}"
    # Drop trailing zeros beyond the second decimal place.
    whole, frac = text.split(".")
    frac = frac.rstrip("0").ljust(2, "0")
    return f"{whole}.{frac}"


@register.filter
def percent(value) -> str:
    if value is None:
        return "—"
    return f"{Decimal(value):,.1f} %"
