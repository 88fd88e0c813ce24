"""Exact money. Amounts are integers of micro-units (``amount_micros``); rates are Decimals.

The one rounding function is :func:`round_to_micros` (banker's rounding, ROUND_HALF_EVEN);
splits use the largest-remainder method so the parts always sum to the whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction

MICROS_PER_UNIT = 1_000_000
ROUNDING_MODE = ROUND_HALF_EVEN


def parse_decimal(text: str | int | Decimal) -> Decimal:
    """Parse an exact decimal; floats are refused because they are not exact."""
    if isinstance(text, float):  # pragma: no cover - guarded by types, kept for callers without
        raise TypeError("money and rates are never floats; pass a string or Decimal")
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise ValueError(f"not a decimal number: {text!r}") from exc
    if not value.is_finite():
        raise ValueError(f"not a finite number: {text!r}")
    return value


def round_to_micros(amount_units: Decimal | Fraction) -> int:
    """Round an exact amount in currency units to integer micro-units, half to even."""
    if isinstance(amount_units, Fraction):
        scaled = amount_units * MICROS_PER_UNIT
        floor, rem = divmod(scaled.numerator, scaled.denominator)
        twice = 2 * rem
        if twice > scaled.denominator or (twice == scaled.denominator and floor % 2 == 1):
            floor += 1
        return floor
    return int((amount_units * MICROS_PER_UNIT).to_integral_value(rounding=ROUNDING_MODE))


def micros_to_decimal(amount_micros: int) -> Decimal:
    """Micro-units back to an exact Decimal in currency units (six places)."""
    return (Decimal(amount_micros) / MICROS_PER_UNIT).quantize(Decimal("0.000001"))


def format_usd(amount_micros: int, places: int = 2) -> str:
    """Human display, e.g. ``$1,234.57``; never used for arithmetic."""
    value = micros_to_decimal(amount_micros).quantize(
        Decimal(1).scaleb(-places), rounding=ROUNDING_MODE
    )
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{places}f}"


def split_largest_remainder(total_micros: int, weights: Sequence[Decimal | int]) -> list[int]:
    """Split ``total_micros`` in proportion to ``weights``; parts sum exactly to the total.

    Each part gets the floor of its exact share; the micros left over go one each to the parts
    with the largest fractional remainders (ties to the earlier part, so the result is stable).
    """
    assert weights, "split needs at least one weight"
    exact = [Fraction(w) for w in weights]
    assert all(w >= 0 for w in exact), "split weights must be non-negative"
    weight_sum = sum(exact, Fraction(0))
    if weight_sum == 0:
        raise ValueError("split weights sum to zero")
    sign = -1 if total_micros < 0 else 1
    magnitude = abs(total_micros)
    shares = [magnitude * w / weight_sum for w in exact]
    parts = [s.numerator // s.denominator for s in shares]
    left = magnitude - sum(parts)
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[:left]:
        parts[i] += 1
    result = [sign * p for p in parts]
    assert sum(result) == total_micros
    return result
