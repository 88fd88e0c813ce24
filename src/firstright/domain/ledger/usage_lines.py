"""From aggregated usage to the USAGE statement lines they are billed on.

Settlement aggregates usage records into :class:`UsageGroup` rows (one per month, segment and
dimensions; done in SQL at scale), prices each group (:mod:`rating`) and folds the groups into
lines. Each line is rounded to micros exactly once, from its exact pico-USD total.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from fractions import Fraction

from firstright.domain.ledger.entries import Kind, Line
from firstright.domain.ledger.periods import month_start
from firstright.domain.ledger.rating import (
    PriceChoice,
    choose_price,
    discounted_micros_exact,
    rate_text,
)
from firstright.domain.ledger.terms import MoneyTerms
from firstright.domain.money import round_to_micros


@dataclass(frozen=True, slots=True)
class UsageGroup:
    """Sums of the usage records sharing every dimension below (one month, one segment)."""

    month: str
    segment: int
    source: str
    party: str
    counterparty: str | None
    provider: str | None
    model: str | None
    gpu_type: str | None
    channel: str | None
    product: str | None
    tenant: str | None
    currency: str
    records: int
    input_tokens: int
    output_tokens: int
    gpu_hours_micros: int
    amount_micros: int


@dataclass(frozen=True, slots=True)
class RatedLine:
    """One USAGE line before rounding, with the facts commitments select on."""

    line: Line
    segment: int
    provider: str | None
    channel: str | None
    product: str | None
    quantity: int
    amount_exact_micros: Fraction


@dataclass(frozen=True, slots=True)
class Target:
    """What an obligation should amount to in total, all entries of its key together."""

    line: Line
    quantity: int
    amount_micros: int


def rating_key(
    group: UsageGroup,
) -> tuple[int, str, str, str | None, str | None, str | None, str | None]:
    return (
        group.segment,
        group.source,
        group.party,
        group.counterparty,
        group.provider,
        group.model,
        group.gpu_type,
    )


def price_group(terms: MoneyTerms, group: UsageGroup) -> PriceChoice:
    return choose_price(
        terms.terms(group.segment),
        source=group.source,
        buyer=group.party,
        counterparty=group.counterparty,
        provider=group.provider,
        model=group.model,
        gpu_type=group.gpu_type,
    )


def _basis(group: UsageGroup, what: str, segment_start: datetime | None) -> str:
    parts = [group.source, f"provider={group.provider or '-'}"]
    if group.source == "gateway":
        parts.append(f"model={group.model or '-'}")
    else:
        parts.append(f"gpu={group.gpu_type or '-'}")
    if group.channel:
        parts.append(f"channel={group.channel}")
    if group.product:
        parts.append(f"product={group.product}")
    parts.append(what)
    if segment_start is not None and segment_start > month_start(group.month):
        parts.append(f"from {segment_start.isoformat()}")
    return " ".join(parts)


def rate_group(
    terms: MoneyTerms,
    group: UsageGroup,
    choice: PriceChoice,
    *,
    input_pico: int | None = None,
    output_pico: int | None = None,
    gpu_pico: int | None = None,
) -> list[RatedLine]:
    """The lines of one priced group. Pico totals computed elsewhere (SQL) may be passed in;
    they must equal what the rates give."""
    assert group.source in ("gateway", "capacity")
    if choice.mode == "unbilled":
        return []
    assert choice.seller is not None
    start = terms.segment_start(group.segment)

    def line(what: str, unit: str, rate: str, quantity: int, exact: Fraction) -> RatedLine:
        assert choice.seller is not None
        return RatedLine(
            Line(
                kind=Kind.USAGE,
                about_period=group.month,
                payer=group.party,
                payee=choice.seller,
                contract=choice.contract,
                clause_id=choice.clause_id,
                basis=_basis(group, what, start),
                unit=unit,
                rate=rate,
                currency=group.currency,
            ),
            group.segment,
            group.provider,
            group.channel,
            group.product,
            quantity,
            exact,
        )

    if choice.mode == "tokens":
        assert choice.input_usd_per_mtok is not None and choice.output_usd_per_mtok is not None
        in_pico = group.input_tokens * choice.input_pico_per_token
        out_pico = group.output_tokens * choice.output_pico_per_token
        assert input_pico is None or input_pico == in_pico
        assert output_pico is None or output_pico == out_pico
        return [
            line(
                "input tokens",
                "tokens",
                rate_text(choice.input_usd_per_mtok, "USD/Mtok"),
                group.input_tokens,
                Fraction(in_pico, 10**6),
            ),
            line(
                "output tokens",
                "tokens",
                rate_text(choice.output_usd_per_mtok, "USD/Mtok"),
                group.output_tokens,
                Fraction(out_pico, 10**6),
            ),
        ]
    if choice.mode == "gpu":
        assert choice.usd_per_gpu_hour is not None
        pico = group.gpu_hours_micros * choice.micro_per_gpu_hour
        assert gpu_pico is None or gpu_pico == pico
        return [
            line(
                "GPU-hours",
                "gpu_hour_micros",
                rate_text(choice.usd_per_gpu_hour, "USD/GPU-hour"),
                group.gpu_hours_micros,
                Fraction(pico, 10**6),
            )
        ]
    if choice.mode == "discount":
        assert choice.discount_pct is not None
        return [
            line(
                "at list price",
                "usd_micros",
                f"list less {choice.discount_pct.normalize():f}%",
                group.amount_micros,
                discounted_micros_exact(group.amount_micros, choice.discount_pct),
            )
        ]
    assert choice.mode == "list"
    return [
        line(
            "at list price",
            "usd_micros",
            "list",
            group.amount_micros,
            Fraction(group.amount_micros),
        )
    ]


def fold_lines(rated: list[RatedLine]) -> tuple[dict[str, Target], list[RatedLine]]:
    """Sum rated pieces per line key and round each line once.

    Returns the targets by key and one :class:`RatedLine` per key (with the rounded amount as
    its exact amount), which commitments use as spend.
    """
    totals: dict[str, RatedLine] = {}
    for piece in rated:
        key = piece.line.key()
        known = totals.get(key)
        if known is None:
            totals[key] = piece
        else:
            totals[key] = replace(
                known,
                quantity=known.quantity + piece.quantity,
                amount_exact_micros=known.amount_exact_micros + piece.amount_exact_micros,
            )
    targets: dict[str, Target] = {}
    folded: list[RatedLine] = []
    for key, total in totals.items():
        amount = round_to_micros(total.amount_exact_micros / 10**6)
        targets[key] = Target(total.line, total.quantity, amount)
        folded.append(replace(total, amount_exact_micros=Fraction(amount)))
    return targets, folded
