"""Booking by difference: what to post so the ledger reaches the targets.

For every obligation (a :class:`Line` key) about a month up to the one being settled, the entry
to post is ``target - already posted`` (quantity and amount), booked in the obligation's own month
when that month is open, else in the first open month after it (an ``ADJUSTMENT`` naming the
closed month). Posting nothing when nothing differs is what makes a second settlement a no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from firstright.domain.ledger.entries import Entry, Line, obligation_entry
from firstright.domain.ledger.periods import months_between
from firstright.domain.ledger.usage_lines import Target


@dataclass(frozen=True, slots=True)
class Posted:
    """What the ledger already holds for one obligation key."""

    line: Line
    quantity: int
    amount_micros: int
    entries: int


def booking_month(about: str, through: str, closed: frozenset[str]) -> str | None:
    for month in months_between(about, through):
        if month not in closed:
            return month
    return None


def plan_entries(
    targets: Mapping[str, Target],
    posted: Mapping[str, Posted],
    *,
    through_month: str,
    closed_months: Iterable[str],
) -> list[Entry]:
    """The entries that bring every obligation about a month <= ``through_month`` to target."""
    closed = frozenset(closed_months)
    assert through_month not in closed, "settle books into an open month"
    entries: list[Entry] = []
    for key in sorted(set(targets) | set(posted)):
        target = targets.get(key)
        done = posted.get(key)
        line = target.line if target is not None else done.line if done is not None else None
        assert line is not None
        if line.about_period > through_month:
            continue
        quantity = (target.quantity if target else 0) - (done.quantity if done else 0)
        amount = (target.amount_micros if target else 0) - (done.amount_micros if done else 0)
        if quantity == 0 and amount == 0:
            continue
        month = booking_month(line.about_period, through_month, closed)
        assert month is not None, "through_month is open, so some month can take the entry"
        entries.append(
            obligation_entry(
                line,
                period=month,
                quantity=quantity,
                amount_micros=amount,
                seq=done.entries if done else 0,
            )
        )
    return entries
