"""Term sets and how they compare, for the owner (specs/ROFR.md "Direction", R3, R7, R8, R13, R18).

A term set is what an offer, a notice, a holder response or a third-party contract says: the
quantity, the identity terms (GPU type, region) and the ordered terms of the contract's
``terms_order`` (price lower, start earlier, SLA higher, ...). "Better" always means better for
the owner.

Two comparisons, with different slack:

* **matching** (:func:`check_match`, the holder's exercise): every ordered term equal or better
  than the baseline, identity terms equal. Tolerances give the holder no slack.
* **release** (:func:`check_release`, a third-party deal after a release): no ordered term worse
  for the owner than the baseline beyond ``reoffer_tolerance`` (``pct`` in percent of the
  baseline, ``abs`` in the term's unit, ``days`` for dates), identity terms equal, quantity at
  most the released quantity. In ROFO mode the price may instead rise up to
  ``rofo_max_price_pct_of_offered`` percent of the last offered price.

Non-cash consideration is compared at its cash equivalent (R13)::

    effective_price = price_per_gpu_hour
                      - cash_equivalent_usd / (quantity_gpus * commit_months * 730)

a month being 730 hours. Everything is exact (``Decimal``); nothing here rounds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from firstright.domain.contracts.model import RofrParams
from firstright.domain.money import parse_decimal

PRICE_TERM = "price_per_gpu_hour"
QUANTITY_TERM = "quantity_gpus"
COMMIT_TERM = "commit_months"
HOURS_PER_MONTH = 730

TermValue = Decimal | int | date | str


@dataclass(frozen=True, slots=True)
class NonCash:
    """Consideration that is not cash (service credits, equity, ...), at its cash value."""

    kind: str
    cash_equivalent_usd: Decimal


@dataclass(frozen=True, slots=True)
class TermSet:
    """One set of terms. ``values`` is kept sorted by name so equal sets compare equal."""

    values: tuple[tuple[str, TermValue], ...]
    non_cash: NonCash | None = None

    @staticmethod
    def of(values: Mapping[str, TermValue], non_cash: NonCash | None = None) -> TermSet:
        return TermSet(tuple(sorted(values.items())), non_cash)

    def as_dict(self) -> dict[str, TermValue]:
        return dict(self.values)

    def get(self, name: str) -> TermValue | None:
        for key, value in self.values:
            if key == name:
                return value
        return None

    def __iter__(self) -> Iterator[tuple[str, TermValue]]:
        return iter(self.values)

    @property
    def quantity_gpus(self) -> int | None:
        value = self.get(QUANTITY_TERM)
        return value if isinstance(value, int) else None

    @property
    def price(self) -> Decimal | None:
        value = self.get(PRICE_TERM)
        return value if isinstance(value, Decimal) else None

    def with_quantity(self, quantity_gpus: int) -> TermSet:
        values = self.as_dict()
        values[QUANTITY_TERM] = quantity_gpus
        return TermSet.of(values, self.non_cash)


def effective_price(terms: TermSet) -> Decimal | None:
    """The price per GPU-hour net of the non-cash consideration's cash equivalent (R13)."""
    price = terms.price
    if price is None or terms.non_cash is None:
        return price
    quantity = terms.quantity_gpus
    months = terms.get(COMMIT_TERM)
    assert quantity is not None and quantity > 0, "non-cash terms need quantity_gpus"
    assert isinstance(months, int | Decimal) and months > 0, "non-cash terms need commit_months"
    hours = Decimal(quantity) * Decimal(months) * HOURS_PER_MONTH
    return price - terms.non_cash.cash_equivalent_usd / hours


# ---------------------------------------------------------------------------------------------
# Typing raw values (the edges hand us YAML/JSON scalars)


def parse_term(name: str, raw: object, params: RofrParams) -> TermValue:
    """Type one raw term value by what the contract says about it; ``ValueError`` if it can't."""
    direction = params.terms_order.get(name)
    if name == QUANTITY_TERM:
        if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
            raise ValueError(f"{name} must be a positive integer, got {raw!r}")
        return raw
    if direction in ("earlier", "later"):
        if isinstance(raw, date):
            return raw
        if isinstance(raw, str):
            try:
                return date.fromisoformat(raw)
            except ValueError as exc:
                raise ValueError(f"{name} must be a date YYYY-MM-DD, got {raw!r}") from exc
        raise ValueError(f"{name} must be a date YYYY-MM-DD, got {raw!r}")
    if direction in ("lower", "higher"):
        if isinstance(raw, bool) or not isinstance(raw, int | Decimal | str):
            raise ValueError(f"{name} must be a number, got {raw!r}")
        try:
            return parse_decimal(raw)
        except ValueError as exc:
            raise ValueError(f"{name} must be a finite number, got {raw!r}") from exc
    if isinstance(raw, bool) or raw is None:
        raise ValueError(f"{name} must be a value, got {raw!r}")
    if isinstance(raw, int | Decimal | str | date):
        return raw
    raise ValueError(f"{name} must be a scalar, got {type(raw).__name__}")


def parse_terms(
    raw: Mapping[str, object], params: RofrParams, non_cash: NonCash | None = None
) -> TermSet:
    """A typed :class:`TermSet` from raw values; ``ValueError`` names the bad term."""
    values = {str(name): parse_term(str(name), value, params) for name, value in raw.items()}
    terms = TermSet.of(values, non_cash)
    if non_cash is not None:
        if terms.quantity_gpus is None or not isinstance(terms.get(COMMIT_TERM), int | Decimal):
            raise ValueError("non-cash consideration needs quantity_gpus and commit_months")
        if terms.price is None:
            raise ValueError(f"non-cash consideration needs {PRICE_TERM}")
    return terms


# ---------------------------------------------------------------------------------------------
# Comparison


class Verdict(StrEnum):
    BETTER = "better"
    EQUAL = "equal"
    WORSE = "worse"
    WITHIN_TOLERANCE = "within_tolerance"
    DIFFERS = "differs"
    MISSING = "missing"
    ABOVE_RELEASED = "above_released"


BAD_VERDICTS = frozenset({Verdict.WORSE, Verdict.DIFFERS, Verdict.MISSING, Verdict.ABOVE_RELEASED})


@dataclass(frozen=True, slots=True)
class TermComparison:
    """One line of a comparison: the term, both values, and what it means for the owner."""

    term: str
    baseline: str
    candidate: str
    verdict: Verdict
    allowed: str = ""

    @property
    def ok(self) -> bool:
        return self.verdict not in BAD_VERDICTS

    def render(self) -> str:
        text = f"{self.term}: {self.candidate} vs {self.baseline} -> {self.verdict.value}"
        return f"{text} ({self.allowed})" if self.allowed else text


@dataclass(frozen=True, slots=True)
class Comparison:
    lines: tuple[TermComparison, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return all(line.ok for line in self.lines)

    @property
    def failures(self) -> tuple[TermComparison, ...]:
        return tuple(line for line in self.lines if not line.ok)

    def render(self) -> tuple[str, ...]:
        return tuple(line.render() for line in self.lines)


def show(value: TermValue | None) -> str:
    """A value for people (display only; comparisons use the exact value)."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        if value == value.to_integral():
            return format(value.normalize(), "f")
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -6:
            return str(value.quantize(Decimal("0.0001")))
        return str(value)
    return str(value)


def show_price(value: Decimal) -> str:
    """A price for people: at most four decimals, exact values kept as given."""
    if value.as_tuple().exponent in range(-4, 1) or value == value.to_integral():
        return show(value)
    return str(value.quantize(Decimal("0.0001")))


def _worsening(direction: str, base: TermValue, cand: TermValue) -> Decimal | None:
    """How much worse ``cand`` is than ``base`` for the owner (negative: better); None if the
    values cannot be compared."""
    if isinstance(base, date) and isinstance(cand, date):
        days = Decimal((cand - base).days)
        return days if direction == "earlier" else -days
    if isinstance(base, int | Decimal) and isinstance(cand, int | Decimal):
        diff = Decimal(cand) - Decimal(base)
        return diff if direction in ("lower", "earlier") else -diff
    return None


def _ordered_value(terms: TermSet, name: str) -> TermValue | None:
    return effective_price(terms) if name == PRICE_TERM else terms.get(name)


def _identity_lines(
    candidate: TermSet, baseline: TermSet, params: RofrParams
) -> list[TermComparison]:
    lines = []
    for name in params.identity_terms:
        base, cand = baseline.get(name), candidate.get(name)
        verdict = Verdict.EQUAL if base == cand else Verdict.DIFFERS
        lines.append(TermComparison(name, show(base), show(cand), verdict, "identity term"))
    return lines


def _ordered_terms(
    candidate: TermSet, baseline: TermSet, params: RofrParams, lines: list[TermComparison]
) -> Iterator[tuple[str, TermValue, TermValue, Decimal]]:
    """The ordered terms (quantity aside) the baseline states, with how much worse the candidate
    is for the owner on each; a term the candidate lacks or that cannot be compared is recorded
    in ``lines`` and not yielded."""
    for name, direction in params.terms_order.items():
        if name == QUANTITY_TERM:
            continue
        base, cand = _ordered_value(baseline, name), _ordered_value(candidate, name)
        if base is None:
            continue
        if cand is None:
            lines.append(TermComparison(name, show(base), "-", Verdict.MISSING))
            continue
        worse = _worsening(direction, base, cand)
        if worse is None:
            lines.append(TermComparison(name, show(base), show(cand), Verdict.DIFFERS))
            continue
        yield name, base, cand, worse


def check_match(holder: TermSet, baseline: TermSet, params: RofrParams) -> Comparison:
    """Does the holder's response meet or beat every ordered term and equal the identity terms?"""
    lines = _identity_lines(holder, baseline, params)
    for name, base, cand, worse in _ordered_terms(holder, baseline, params, lines):
        if worse > 0:
            lines.append(TermComparison(name, show(base), show(cand), Verdict.WORSE, "no slack"))
        else:
            verdict = Verdict.BETTER if worse < 0 else Verdict.EQUAL
            lines.append(TermComparison(name, show(base), show(cand), verdict))
    return Comparison(tuple(lines))


def _rofo_band(base: TermValue, cand: TermValue, pct_max: Decimal) -> TermComparison:
    """ROFO (R18): the third-party price may be at most ``pct_max`` percent of the offered one."""
    assert isinstance(base, Decimal) and isinstance(cand, Decimal)
    pct = cand * 100 / base if base else Decimal(0)
    shown = f"{pct.quantize(Decimal('0.01'))}% of offered, band {show(pct_max)}%"
    if pct > pct_max:
        verdict = Verdict.WORSE
    elif cand > base:
        verdict = Verdict.WITHIN_TOLERANCE
    else:
        verdict = Verdict.BETTER if cand < base else Verdict.EQUAL
    return TermComparison(PRICE_TERM, show(base), show(cand), verdict, shown)


def _allowance(name: str, base: TermValue, params: RofrParams) -> tuple[Decimal, str]:
    """How much worse a term may get after a release, and how to say so."""
    tolerance = params.reoffer_tolerance.get(name)
    if tolerance is None:
        return Decimal(0), "no tolerance"
    if tolerance.pct is not None:
        base_amount = Decimal(base) if isinstance(base, int | Decimal) else Decimal(0)
        return abs(base_amount) * tolerance.pct / 100, f"tolerance {show(tolerance.pct)}%"
    if tolerance.days is not None:
        return Decimal(tolerance.days), f"tolerance {tolerance.days} days"
    assert tolerance.abs is not None
    return tolerance.abs, f"tolerance {show(tolerance.abs)}"


def check_release(
    candidate: TermSet, baseline: TermSet, params: RofrParams, released_quantity: int | None
) -> Comparison:
    """Is a third-party deal on ``candidate`` no more favourable to the third party than the
    baseline, within tolerance (R7, R8), and inside the released quantity (R10)?"""
    lines = _identity_lines(candidate, baseline, params)
    quantity = candidate.quantity_gpus
    if released_quantity is not None and quantity is not None:
        verdict = Verdict.EQUAL if quantity <= released_quantity else Verdict.ABOVE_RELEASED
        lines.append(
            TermComparison(
                QUANTITY_TERM, str(released_quantity), str(quantity), verdict, "released"
            )
        )
    for name, base, cand, worse in _ordered_terms(candidate, baseline, params, lines):
        if name == PRICE_TERM and params.mode == "rofo" and params.rofo_max_price_pct_of_offered:
            lines.append(_rofo_band(base, cand, params.rofo_max_price_pct_of_offered))
            continue
        if worse <= 0:
            verdict = Verdict.BETTER if worse < 0 else Verdict.EQUAL
            lines.append(TermComparison(name, show(base), show(cand), verdict))
            continue
        allowed, why = _allowance(name, base, params)
        verdict = Verdict.WITHIN_TOLERANCE if worse <= allowed else Verdict.WORSE
        lines.append(TermComparison(name, show(base), show(cand), verdict, why))
    return Comparison(tuple(lines))
