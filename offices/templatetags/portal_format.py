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


@register.filter
def units(value, unit: str) -> str:
    """A quantity with its unit, as people count: (3, "message") → "3 messages";
    (1, "minute") → "1 minute"; (2.5, "minute") → "2.5 minutes"; (1234, "page") → "1,234 pages"."""
    try:
        amount = Decimal(str(value)).quantize(PLACES, rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError, TypeError):
        return f"{value} {unit}"
    whole, frac = f"{amount:,.4f}".split(".")
    frac = frac.rstrip("0")
    number = f"{whole}.{frac}" if frac else whole
    return f"{number} {unit if amount == 1 else unit + 's'}"
