"""Credits are Decimal with 4 places, rounded half-up, never float."""

from decimal import ROUND_HALF_UP, Decimal

PLACES = Decimal("0.0001")
ZERO = Decimal("0.0000")
MAX_DIGITS = 18
DECIMAL_PLACES = 4


def q(value) -> Decimal:
    """Quantize to 4 places, half-up."""
    return Decimal(value).quantize(PLACES, rounding=ROUND_HALF_UP)


def credits_noun(amount) -> str:
    """ "credit" for exactly one, "credits" otherwise: "Add at least 1 credit"."""
    return "credit" if Decimal(str(amount)) == 1 else "credits"
