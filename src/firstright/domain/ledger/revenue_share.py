"""Revenue shares: every ``revenue_share`` clause, in whichever direction it points.

The basis of a clause is the revenue its payer reports (usage records of source ``revenue``)
that the clause's ``basis`` selector matches, while the clause is in force. Per clause period
(month, quarter or year) the share is ``rate x basis``, or with tiers the marginal sum
``sum(rate_i x part of the basis inside tier i)``; a period's share is never negative. ``cap_usd``
bounds the total over the clause's life (across versions that repeat it unchanged).

Shares are computed cumulatively and booked by difference: the amount about month ``m`` is
``R(m) - R(m-1)`` where ``R(m)`` is the capped life-to-date share through ``m``, rounded once.
So a quarterly clause settled monthly, a tier crossed mid-quarter and a cap reached mid-year all
land exactly, and the monthly amounts always sum to the rounded total.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from fractions import Fraction

from firstright.domain.contracts.model import RevenueShareClause, RevenueShareParams
from firstright.domain.ledger.entries import Kind, Line
from firstright.domain.ledger.periods import clause_period_of, months_between, previous_month
from firstright.domain.ledger.terms import (
    MoneyTerms,
    describe_selector,
    identity,
    selector_matches,
)
from firstright.domain.ledger.usage_lines import Target, UsageGroup
from firstright.domain.money import MICROS_PER_UNIT, round_to_micros


def share_of(basis_micros: int, params: RevenueShareParams) -> Fraction:
    """The share (in micros, exact) of one clause period's basis."""
    if basis_micros <= 0:
        return Fraction(0)
    basis = Fraction(basis_micros)
    if params.rate is not None:
        return basis * Fraction(params.rate)
    owed = Fraction(0)
    lower = Fraction(0)
    for tier in params.tiers:
        upper = None if tier.up_to_usd is None else Fraction(tier.up_to_usd) * MICROS_PER_UNIT
        top = basis if upper is None else min(basis, upper)
        if top > lower:
            owed += (top - lower) * Fraction(tier.rate)
        if upper is None or basis <= upper:
            break
        lower = upper
    return owed


def _rate_text(params: RevenueShareParams) -> str:
    if params.rate is not None:
        return f"{params.rate.normalize():f}"
    tiers = ", ".join(
        f"{t.rate.normalize():f} to {t.up_to_usd.normalize():f}"
        if t.up_to_usd is not None
        else f"{t.rate.normalize():f} above"
        for t in params.tiers
    )
    cap = f" cap {params.cap_usd.normalize():f} USD" if params.cap_usd is not None else ""
    return f"tiers [{tiers}]{cap}"


@dataclass(slots=True)
class _Share:
    contract_id: str
    clause: RevenueShareClause
    by_month: dict[str, int]


def share_targets(
    terms: MoneyTerms, revenue: list[UsageGroup], through_month: str
) -> dict[str, Target]:
    """REV_SHARE targets about every month up to ``through_month``."""
    shares: dict[str, _Share] = {}
    for group in revenue:
        assert group.source == "revenue"
        if group.month > through_month:
            continue
        for contract_id, clause in terms.terms(group.segment).shares:
            if clause.payer != group.party or not selector_matches(
                clause.params.basis,
                channel=group.channel,
                product=group.product,
                tenant=group.tenant,
            ):
                continue
            found = shares.setdefault(
                identity(contract_id, clause), _Share(contract_id, clause, defaultdict(int))
            )
            found.by_month[group.month] += group.amount_micros
    targets: dict[str, Target] = {}
    for share in shares.values():
        params = share.clause.params
        cap = None if params.cap_usd is None else Fraction(params.cap_usd) * MICROS_PER_UNIT
        first = min(share.by_month)
        basis_in_period: dict[str, int] = defaultdict(int)
        closed_periods_total = Fraction(0)
        current_period = clause_period_of(first, params.period)
        previous_rounded = 0
        for month in months_between(first, through_month):
            period = clause_period_of(month, params.period)
            if period != current_period:
                closed_periods_total += share_of(basis_in_period[current_period], params)
                current_period = period
            added = share.by_month.get(month, 0)
            basis_in_period[period] += added
            life = closed_periods_total + share_of(basis_in_period[period], params)
            if cap is not None:
                life = min(life, cap)
            rounded = round_to_micros(life / MICROS_PER_UNIT)
            amount = rounded - previous_rounded
            previous_rounded = rounded
            if amount == 0 and added == 0:
                continue
            clause = share.clause
            line = Line(
                kind=Kind.REV_SHARE,
                about_period=month,
                payer=clause.payer,
                payee=clause.payee,
                contract=share.contract_id,
                clause_id=clause.id,
                basis=(
                    f"revenue of {clause.payer} ({describe_selector(params.basis)}) in {period}"
                ),
                unit="usd_micros",
                rate=_rate_text(params),
            )
            assert previous_month(month) < month
            targets[line.key()] = Target(line, added, amount)
    return targets
