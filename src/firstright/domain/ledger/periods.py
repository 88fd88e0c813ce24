"""Settlement periods. The ledger's unit is the calendar month (UTC); a quarter is its three
months. ``parse_period("2025-03")`` and ``parse_period("2025-Q1")`` are the only spellings.

Months are strings ``YYYY-MM`` everywhere (they sort and compare correctly as text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from firstright.errors import InputError

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")
_YEAR_MIN = 1970
_YEAR_MAX = 9998


class PeriodError(InputError):
    """A period that does not parse or lies outside the supported years."""


@dataclass(frozen=True, slots=True)
class Period:
    """A settlement period: a label and the months it covers, in order."""

    label: str
    months: tuple[str, ...]

    @property
    def first(self) -> str:
        return self.months[0]

    @property
    def last(self) -> str:
        return self.months[-1]

    def start(self) -> datetime:
        return month_start(self.first)

    def end(self) -> datetime:
        """Exclusive end: the first instant after the period."""
        return month_start(next_month(self.last))


def parse_period(text: str) -> Period:
    """``YYYY-MM`` (a month) or ``YYYY-Qn`` (a quarter); anything else raises PeriodError."""
    cleaned = text.strip()
    found = _MONTH.match(cleaned)
    if found:
        _check_year(text, int(found.group(1)))
        return Period(cleaned, (cleaned,))
    found = _QUARTER.match(cleaned)
    if found:
        year = int(found.group(1))
        _check_year(text, year)
        first = 3 * (int(found.group(2)) - 1) + 1
        return Period(cleaned, tuple(f"{year:04d}-{m:02d}" for m in range(first, first + 3)))
    raise PeriodError(
        f"period {text!r} does not parse: expected a month YYYY-MM (e.g. 2025-03) "
        "or a quarter YYYY-Qn (e.g. 2025-Q1)"
    )


def _check_year(text: str, year: int) -> None:
    if not _YEAR_MIN <= year <= _YEAR_MAX:
        raise PeriodError(f"period {text!r}: year must be between {_YEAR_MIN} and {_YEAR_MAX}")


def month_of(moment: datetime) -> str:
    """The month (UTC) an aware instant falls in."""
    assert moment.tzinfo is not None
    utc = moment.astimezone(UTC)
    return f"{utc.year:04d}-{utc.month:02d}"


def month_start(month: str) -> datetime:
    assert _MONTH.match(month), month
    return datetime(int(month[:4]), int(month[5:7]), 1, tzinfo=UTC)


def next_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year + 1:04d}-01" if mon == 12 else f"{year:04d}-{mon + 1:02d}"


def previous_month(month: str) -> str:
    year, mon = int(month[:4]), int(month[5:7])
    return f"{year - 1:04d}-12" if mon == 1 else f"{year:04d}-{mon - 1:02d}"


def months_between(first: str, last: str) -> list[str]:
    """Every month from ``first`` to ``last`` inclusive (empty when ``last < first``)."""
    found: list[str] = []
    current = first
    while current <= last:
        found.append(current)
        current = next_month(current)
    return found


def quarter_of(month: str) -> str:
    return f"{month[:4]}-Q{(int(month[5:7]) - 1) // 3 + 1}"


def clause_period_of(month: str, unit: str) -> str:
    """The revenue-share period (``month``, ``quarter`` or ``year``) a month belongs to."""
    if unit == "month":
        return month
    if unit == "quarter":
        return quarter_of(month)
    assert unit == "year", unit
    return month[:4]
