"""Rating: which price applies to a group of usage, and the statement lines it produces.

Price rules, for usage of ``buyer`` served by ``seller`` (the record's counterparty, else the
party owning the record's provider) in one segment:

1. a ``price`` clause in force with that seller and buyer and a matching rate: tokens by model
   (exact name before the longest ``*`` prefix, a rate for the provider before a rate for any
   provider) or GPU-hours by provider and accelerator (a rate without region first);
2. else a ``price`` clause with ``discount_pct``: the list price less the discount;
3. else the list price carried by the record (``amount_micros``).

Usage with no seller, or whose seller is the buyer itself, is not billed. Revenue records are
not usage: they are the basis of revenue shares.

Rates are exact: USD per million tokens must have at most 6 decimals (an integer number of
pico-USD per token), USD per GPU-hour at most 6 decimals. Amounts are summed exactly in pico-USD
and rounded to micros once per statement line with :func:`round_to_micros`.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from typing import Literal

from firstright.domain.contracts.model import GpuRate, PriceClause, TokenRate
from firstright.domain.ledger.terms import SegmentTerms
from firstright.domain.money import round_to_micros
from firstright.errors import InputError

PICO_PER_MICRO = 1_000_000
PriceMode = Literal["tokens", "gpu", "discount", "list", "unbilled"]


@dataclass(frozen=True, slots=True)
class PriceChoice:
    mode: PriceMode
    seller: str | None = None
    contract: str | None = None
    clause_id: str | None = None
    input_usd_per_mtok: Decimal | None = None
    output_usd_per_mtok: Decimal | None = None
    usd_per_gpu_hour: Decimal | None = None
    discount_pct: Decimal | None = None

    @property
    def input_pico_per_token(self) -> int:
        assert self.input_usd_per_mtok is not None
        return exact_scaled(self.input_usd_per_mtok, self)

    @property
    def output_pico_per_token(self) -> int:
        assert self.output_usd_per_mtok is not None
        return exact_scaled(self.output_usd_per_mtok, self)

    @property
    def micro_per_gpu_hour(self) -> int:
        """USD per GPU-hour in micro-USD; times ``gpu_hours_micros`` gives pico-USD."""
        assert self.usd_per_gpu_hour is not None
        return exact_scaled(self.usd_per_gpu_hour, self)


def exact_scaled(rate: Decimal, choice: PriceChoice) -> int:
    scaled = rate * 1_000_000
    if scaled != scaled.to_integral_value():
        raise InputError(
            f"price clause {choice.clause_id} of {choice.contract}: rate {rate} has more than "
            "6 decimal places; settlement rates are exact to 1e-6"
        )
    return int(scaled)


def seller_of(terms: SegmentTerms, counterparty: str | None, provider: str | None) -> str | None:
    if counterparty is not None:
        return counterparty
    if provider is None:
        return None
    return terms.cloud_owner.get(provider)


def _token_rank(rate: TokenRate, model: str, provider: str | None) -> tuple[int, int, int] | None:
    if rate.provider is not None and rate.provider != provider:
        return None
    if rate.model == model:
        specificity = 1_000_000
    elif rate.model.endswith("*") and model.startswith(rate.model[:-1]):
        specificity = len(rate.model) - 1
    else:
        return None
    return (specificity, 1 if rate.provider is not None else 0, 0)


def _best_token_rate(clause: PriceClause, model: str, provider: str | None) -> TokenRate | None:
    best: TokenRate | None = None
    best_rank: tuple[int, int, int] | None = None
    for rate in clause.params.token_rates:
        rank = _token_rank(rate, model, provider)
        if rank is not None and (best_rank is None or rank > best_rank):
            best, best_rank = rate, rank
    return best


def _best_gpu_rate(clause: PriceClause, provider: str, gpu_type: str) -> GpuRate | None:
    found = [
        r for r in clause.params.gpu_rates if r.provider == provider and r.accelerator == gpu_type
    ]
    without_region = [r for r in found if r.region is None]
    ranked = without_region or found
    return ranked[0] if ranked else None


def choose_price(
    terms: SegmentTerms,
    *,
    source: str,
    buyer: str,
    counterparty: str | None,
    provider: str | None,
    model: str | None,
    gpu_type: str | None,
) -> PriceChoice:
    """The price of a usage group (see the module docstring for the rules)."""
    assert source in ("gateway", "capacity"), source
    seller = seller_of(terms, counterparty, provider)
    if seller is None or seller == buyer:
        return PriceChoice("unbilled", seller=seller)
    candidates = [
        (key, clause)
        for key, clause in terms.prices
        if clause.seller == seller and clause.buyer == buyer
    ]
    for key, clause in candidates:
        if source == "gateway" and model is not None:
            token = _best_token_rate(clause, model, provider)
            if token is not None:
                return PriceChoice(
                    "tokens",
                    seller,
                    key,
                    clause.id,
                    input_usd_per_mtok=token.input_usd_per_mtok,
                    output_usd_per_mtok=token.output_usd_per_mtok,
                )
        if source == "capacity" and provider is not None and gpu_type is not None:
            gpu = _best_gpu_rate(clause, provider, gpu_type)
            if gpu is not None:
                return PriceChoice(
                    "gpu", seller, key, clause.id, usd_per_gpu_hour=gpu.usd_per_gpu_hour
                )
    for key, clause in candidates:
        if clause.params.discount_pct is not None:
            return PriceChoice(
                "discount", seller, key, clause.id, discount_pct=clause.params.discount_pct
            )
    return PriceChoice("list", seller)


def discounted_micros_exact(list_micros: int, discount_pct: Decimal) -> Fraction:
    """The list amount less ``discount_pct`` percent, exact (in micros)."""
    return Fraction(list_micros) * (1 - Fraction(discount_pct) / 100)


def round_pico_to_micros(amount_pico: int | Fraction) -> int:
    """Pico-USD (exact) to micro-USD with the one rounding function."""
    return round_to_micros(Fraction(amount_pico) / 10**12)


def rate_text(value: Decimal, unit: str) -> str:
    return f"{value.normalize():f} {unit}"
