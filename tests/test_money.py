"""Exact money: the one rounding function and largest-remainder splits."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from firstright.domain.money import (
    format_usd,
    micros_to_decimal,
    parse_decimal,
    round_to_micros,
    split_largest_remainder,
)


def test_round_half_even_on_decimal_and_fraction_agree() -> None:
    assert round_to_micros(Decimal("0.0000005")) == 0
    assert round_to_micros(Decimal("0.0000015")) == 2
    assert round_to_micros(Fraction(1, 2_000_000)) == 0
    assert round_to_micros(Fraction(3, 2_000_000)) == 2
    assert round_to_micros(Decimal("-1.2345675")) == -1234568


@given(st.fractions(min_value=-(10**9), max_value=10**9))
def test_fraction_rounding_matches_decimal_rounding(value: Fraction) -> None:
    as_decimal = Decimal(value.numerator) / Decimal(value.denominator)
    # Decimal division is itself rounded at 28 digits; compare only where it is exact enough.
    if Fraction(as_decimal) == value:
        assert round_to_micros(value) == round_to_micros(as_decimal)


@given(
    st.integers(min_value=-(10**15), max_value=10**15),
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=12),
)
def test_split_sums_to_whole_and_stays_within_one_micro(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        with pytest.raises(ValueError):
            split_largest_remainder(total, weights)
        return
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact = Fraction(total * weight, sum(weights))
        assert abs(part - exact) < 1


def test_split_ties_go_to_the_earlier_part() -> None:
    assert split_largest_remainder(10, [1, 1, 1]) == [4, 3, 3]
    assert split_largest_remainder(-10, [1, 1, 1]) == [-4, -3, -3]


def test_parse_and_format() -> None:
    assert parse_decimal("2.50") == Decimal("2.50")
    with pytest.raises(ValueError):
        parse_decimal("NaN")
    with pytest.raises(ValueError):
        parse_decimal("two")
    assert micros_to_decimal(1_500_000) == Decimal("1.500000")
    assert format_usd(-1_234_567_890) == "-$1,234.57"
