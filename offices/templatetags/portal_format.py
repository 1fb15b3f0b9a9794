"""How the portal prints credits: thousands separators and 2 to 4 decimal places."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

from core.money import PLACES, q

register = template.Library()


@register.filter
def credits(value) -> str:
    """1234.5 → "1,234.50"; 0.1234 → "0.1234"; 0.125 → "0.125"; None → "—"."""
    try:
        if isinstance(value, Decimal):  # the usual case first: pages print many of them
            amount = value.quantize(PLACES, rounding=ROUND_HALF_UP)
        elif value is None or value == "":
            return "—"
        else:
            amount = q(Decimal(str(value)))
    except (InvalidOperation, ValueError, TypeError):
        return str(value)
    whole, frac = f"{amount:,.4f}".split(".")
    # Drop trailing zeros beyond the second decimal place.
    return f"{whole}.{frac[:2]}{frac[2:].rstrip('0')}"


@register.filter
def percent(value) -> str:
    if value is None:
        return "—"
    return f"{Decimal(value):,.1f} %"
