"""Commitments: spend drawn down against a minimum, and the true-up of a shortfall.

A ``commitment`` clause obliges its payer to spend ``amount_usd`` with its payee on ``providers``
between ``period_start`` and ``period_end``. Spend is the payer's rated USAGE with the payee on
those providers (and, when ``workloads`` is given, whose product or channel is listed), in
segments where the commitment is in force and inside its period.

- ``COMMIT_DRAWDOWN`` (memo, moves no money) about month ``m``: ``D(m) - D(m-1)`` with
  ``D(m) = min(commitment, spend through m)``.
- ``TRUE_UP`` about the month holding the last instant of the period, when ``true_up`` is set and
  the commitment is still in force at that instant: ``max(0, commitment - spend)``.

Late usage changes both targets; settlement books the difference like any other.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import timedelta

from firstright.domain.contracts.model import CommitmentClause
from firstright.domain.ledger.entries import Kind, Line
from firstright.domain.ledger.periods import month_of, months_between
from firstright.domain.ledger.terms import MoneyTerms, identity, to_us
from firstright.domain.ledger.usage_lines import RatedLine, Target
from firstright.domain.money import round_to_micros


@dataclass(slots=True)
class _Commitment:
    contract_id: str
    clause: CommitmentClause
    segments: set[int]


def _in_window(terms: MoneyTerms, segment: int, clause: CommitmentClause) -> bool:
    at = terms.segment_instant(segment)
    return clause.params.period_start <= at < clause.params.period_end


def commitment_targets(
    terms: MoneyTerms, spend_lines: list[RatedLine], through_month: str
) -> dict[str, Target]:
    found: dict[str, _Commitment] = {}
    for segment in range(terms.segment_count):
        for contract_id, clause in terms.terms(segment).commitments:
            known = found.setdefault(
                identity(contract_id, clause), _Commitment(contract_id, clause, set())
            )
            if _in_window(terms, segment, clause):
                known.segments.add(segment)
    targets: dict[str, Target] = {}
    for key, commitment in found.items():
        clause = commitment.clause
        params = clause.params
        committed = round_to_micros(params.amount_usd)
        spend_by_month: dict[str, int] = defaultdict(int)
        for rated in spend_lines:
            line = rated.line
            if (
                rated.segment in commitment.segments
                and line.payer == clause.payer
                and line.payee == clause.payee
                and rated.provider in params.providers
                and (
                    not params.workloads
                    or rated.product in params.workloads
                    or rated.channel in params.workloads
                )
                and line.about_period <= through_month
            ):
                spend_by_month[line.about_period] += int(rated.amount_exact_micros)
        first = month_of(params.period_start)
        last_instant = params.period_end - timedelta(microseconds=1)
        last = month_of(last_instant)
        window = f"{params.period_start.date().isoformat()}..{params.period_end.date().isoformat()}"
        basis = (
            f"commitment {params.amount_usd.normalize():f} USD of {clause.payer} with "
            f"{clause.payee} on {','.join(params.providers)} {window}"
        )
        spent = 0
        drawn_before = 0
        for month in months_between(first, min(last, through_month)):
            added = spend_by_month.get(month, 0)
            spent += added
            drawn = min(committed, spent)
            if added or drawn != drawn_before:
                line = Line(
                    kind=Kind.COMMIT_DRAWDOWN,
                    about_period=month,
                    payer=clause.payer,
                    payee=clause.payee,
                    contract=commitment.contract_id,
                    clause_id=clause.id,
                    basis=basis,
                    unit="usd_micros",
                    rate="1",
                )
                targets[line.key()] = Target(line, added, drawn - drawn_before)
            drawn_before = drawn
        still_in_force = terms.segment_of_us(to_us(last_instant)) in commitment.segments
        if params.true_up and last <= through_month and still_in_force:
            shortfall = max(0, committed - spent)
            line = Line(
                kind=Kind.TRUE_UP,
                about_period=last,
                payer=clause.payer,
                payee=clause.payee,
                contract=commitment.contract_id,
                clause_id=clause.id,
                basis=f"shortfall of {basis}",
                unit="usd_micros",
                rate="1",
            )
            targets[line.key()] = Target(line, committed, shortfall)
        assert key
    return targets
