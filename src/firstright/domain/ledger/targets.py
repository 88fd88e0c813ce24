"""Every obligation's target for a settlement through one month, from rated usage and revenue.

Also the input checks that must pass before anything is posted: every party known to the
contracts, every amount in the settlement currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from firstright.domain.ledger.commitment import commitment_targets
from firstright.domain.ledger.rating import PriceChoice
from firstright.domain.ledger.revenue_share import share_targets
from firstright.domain.ledger.terms import MoneyTerms
from firstright.domain.ledger.usage_lines import (
    RatedLine,
    Target,
    UsageGroup,
    fold_lines,
    rate_group,
)
from firstright.errors import InputError

SETTLEMENT_CURRENCY = "USD"


@dataclass(frozen=True, slots=True)
class PricedGroup:
    group: UsageGroup
    choice: PriceChoice
    input_pico: int | None = None
    output_pico: int | None = None
    gpu_pico: int | None = None


def check_groups(terms: MoneyTerms, groups: Iterable[UsageGroup]) -> None:
    """Refuse unknown parties and foreign currencies (nothing is posted when this raises)."""
    unknown: set[str] = set()
    currencies: set[str] = set()
    for group in groups:
        for party in (group.party, group.counterparty):
            if party is not None and party not in terms.parties:
                unknown.add(party)
        if group.currency != SETTLEMENT_CURRENCY:
            currencies.add(group.currency)
    if unknown:
        known = ", ".join(sorted(terms.parties)) or "none"
        raise InputError(
            f"usage names unknown part{'y' if len(unknown) == 1 else 'ies'} "
            f"{', '.join(sorted(unknown))}; the contracts know {known}"
        )
    if currencies:
        raise InputError(
            f"currency mismatch: usage in {', '.join(sorted(currencies))} but the contracts "
            f"settle in {SETTLEMENT_CURRENCY}"
        )


def settlement_targets(
    terms: MoneyTerms,
    priced: Sequence[PricedGroup],
    revenue: Sequence[UsageGroup],
    through_month: str,
) -> dict[str, Target]:
    """Targets of every USAGE, REV_SHARE, COMMIT_DRAWDOWN and TRUE_UP obligation about months
    up to ``through_month``."""
    pieces: list[RatedLine] = []
    for item in priced:
        if item.group.month > through_month:
            continue
        pieces.extend(
            rate_group(
                terms,
                item.group,
                item.choice,
                input_pico=item.input_pico,
                output_pico=item.output_pico,
                gpu_pico=item.gpu_pico,
            )
        )
    targets, spend = fold_lines(pieces)
    targets.update(share_targets(terms, list(revenue), through_month))
    targets.update(commitment_targets(terms, spend, through_month))
    return targets
