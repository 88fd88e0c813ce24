"""The placement optimizer: choose one offer per request so that total cash out is smallest.

Notation. Requests ``r``; for each request its eligible offers ``o`` (already filtered by the
request and by the contracts' gates); ``c_ro`` the exact cash cost of placing ``r`` on ``o``
(hourly price of all nodes times hours, in micro-dollars). Commitments ``k`` (minimum spend with
a true-up): ``R_k`` the amount still to be spent in the period, ``providers(k)`` the providers
whose spend draws it down, ``D_k`` the requests whose spend counts toward it (the payer's demand
in the commitment's scope, inside its period).

The objective (all quantities exact integers of micro-dollars)::

    minimise    Σ_r Σ_o c_ro · x_ro  +  Σ_k s_k                       (total cash out)

    subject to  Σ_o x_ro = 1                          for every request r
                s_k ≥ R_k − Σ_{r ∈ D_k, o ∈ providers(k)} c_ro · x_ro   for every commitment k
                s_k ≥ 0
                x_ro ∈ {0, 1}

``s_k`` is the shortfall of commitment ``k`` that the payer pays as a true-up at the end of the
period anyway. So a commitment lowers the effective price of its providers until it is met: a
dollar spent there replaces a dollar of true-up. A request moves to a committed provider only
when that is cheaper in total cash, never because of the commitment alone.

Solving. Without commitments the problem separates and the answer is the per-request argmin
(:func:`solve_argmin`). With commitments it is a small mixed-integer program solved to proven
optimality by HiGHS (:func:`solve_milp`). Before building it, dominated offers are dropped
exactly: two offers of a request that draw down the same set of commitments ``K`` with ``|K| ≤ 1``
differ only in cost, and the cheaper one is never worse (spending Δ more lowers ``s_k`` by at
most Δ), so only the cheapest of each such class stays. Offers drawing two or more commitments
at once are all kept.

Ties. Candidates are ordered by (cost, provider, region, zone, instance). After HiGHS answers,
the exact objective is recomputed in integers and a deterministic polish moves each request to
an earlier candidate whenever that does not raise the exact objective, until nothing moves; the
result is optimal in exact arithmetic with ties broken by that order (the tests check it
against a brute-force oracle on seeded random instances).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import highspy
import numpy as np

# ``highspy.Highs`` prints a banner to stdout when constructed; the core class does not, and the
# model is passed whole, so the core class is all the solver needs.
from highspy._core import _Highs

from firstright.domain.placement.candidates import Candidate
from firstright.errors import RuntimeFailure
from firstright.limits import PLACEMENT_SOLVE_TIME_S_MAX

MICROS_PER_USD = 1_000_000.0
POLISH_PASSES_MAX = 50


@dataclass(frozen=True, slots=True)
class CommitmentTerm:
    """The solver's view of one commitment with a true-up."""

    key: str
    """``contract@version#clause`` — cited in traces."""
    providers: frozenset[str]
    remaining_micros: int

    def __post_init__(self) -> None:
        assert self.remaining_micros >= 0, self


@dataclass(frozen=True, slots=True)
class PlacementProblem:
    options: tuple[tuple[Candidate, ...], ...]
    """Per request, its eligible candidates sorted by ``rank_key`` (at least one each)."""
    draws: tuple[frozenset[int], ...]
    """Per request, the indexes of the commitments its spend counts toward."""
    commitments: tuple[CommitmentTerm, ...] = ()

    def __post_init__(self) -> None:
        assert len(self.options) == len(self.draws)
        for found in self.options:
            assert found, "every request needs at least one candidate"
            assert list(found) == sorted(found, key=lambda c: c.rank_key)
        for drawn in self.draws:
            assert all(0 <= k < len(self.commitments) for k in drawn)

    def counts_toward(self, request: int, option: int) -> frozenset[int]:
        """The commitments that this choice's spend draws down."""
        provider = self.options[request][option].provider
        return frozenset(
            k for k in self.draws[request] if provider in self.commitments[k].providers
        )


@dataclass(frozen=True, slots=True)
class Solution:
    chosen: tuple[int, ...]
    """Per request, the index of the chosen candidate in ``options``."""
    spend_micros: int
    """Σ c_ro x_ro."""
    shortfall_micros: tuple[int, ...]
    """Per commitment, s_k at the optimum."""
    method: Literal["argmin", "milp"]

    @property
    def cash_micros(self) -> int:
        """The objective: spend plus every true-up."""
        return self.spend_micros + sum(self.shortfall_micros)


def evaluate(problem: PlacementProblem, chosen: Sequence[int]) -> tuple[int, tuple[int, ...]]:
    """Exact (spend, shortfalls) of an assignment."""
    spend = 0
    drawn = [0] * len(problem.commitments)
    for r, o in enumerate(chosen):
        cost = problem.options[r][o].total_micros
        spend += cost
        for k in problem.counts_toward(r, o):
            drawn[k] += cost
    shortfalls = tuple(
        max(0, term.remaining_micros - drawn[k]) for k, term in enumerate(problem.commitments)
    )
    return spend, shortfalls


def solve(problem: PlacementProblem) -> Solution:
    """The exact optimum: argmin when no request draws a commitment, else the MILP."""
    if not any(problem.draws) or not problem.commitments:
        return solve_argmin(problem)
    return solve_milp(problem)


def solve_argmin(problem: PlacementProblem) -> Solution:
    """Each request on its first candidate (cheapest, ties by provider, region, zone, instance).
    Optimal when no commitment is drawn; with commitments it is the baseline that ignores them."""
    chosen = tuple(0 for _ in problem.options)
    spend, shortfalls = evaluate(problem, chosen)
    return Solution(chosen, spend, shortfalls, "argmin")


def solve_milp(problem: PlacementProblem, *, reduce: bool = True) -> Solution:
    """The objective above, solved by HiGHS, then polished in exact arithmetic."""
    drawn_by = [
        [problem.counts_toward(r, o) for o in range(len(found))]
        for r, found in enumerate(problem.options)
    ]
    kept = [_kept_options(drawn_by[r], reduce) for r in range(len(problem.options))]
    columns = [(r, o) for r in range(len(problem.options)) for o in kept[r]]
    num_x = len(columns)
    num_k = len(problem.commitments)
    num_r = len(problem.options)

    cost = np.empty(num_x + num_k, dtype=np.float64)
    starts = [0]
    index: list[int] = []
    value: list[float] = []
    for j, (r, o) in enumerate(columns):
        c = problem.options[r][o].total_micros / MICROS_PER_USD
        cost[j] = c
        index.append(r)  # assignment row of request r
        value.append(1.0)
        for k in sorted(drawn_by[r][o]):
            index.append(num_r + k)  # commitment row k: s_k + Σ c x ≥ R_k
            value.append(c)
        starts.append(len(index))
    for k in range(num_k):
        cost[num_x + k] = 1.0
        index.append(num_r + k)
        value.append(1.0)
        starts.append(len(index))

    lp = highspy.HighsLp()
    lp.num_col_ = num_x + num_k
    lp.num_row_ = num_r + num_k
    lp.col_cost_ = cost
    lp.col_lower_ = np.zeros(num_x + num_k)
    lp.col_upper_ = np.concatenate([np.ones(num_x), np.full(num_k, highspy.kHighsInf)])
    lp.row_lower_ = np.concatenate(
        [np.ones(num_r), [t.remaining_micros / MICROS_PER_USD for t in problem.commitments]]
    )
    lp.row_upper_ = np.concatenate([np.ones(num_r), np.full(num_k, highspy.kHighsInf)])
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = np.asarray(starts, dtype=np.int32)
    lp.a_matrix_.index_ = np.asarray(index, dtype=np.int32)
    lp.a_matrix_.value_ = np.asarray(value, dtype=np.float64)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * num_x + [
        highspy.HighsVarType.kContinuous
    ] * num_k

    solver = _Highs()
    solver.setOptionValue("output_flag", False)
    solver.setOptionValue("threads", 1)
    solver.setOptionValue("random_seed", 0)
    solver.setOptionValue("mip_rel_gap", 0.0)
    solver.setOptionValue("mip_abs_gap", 1e-7)
    solver.setOptionValue("time_limit", PLACEMENT_SOLVE_TIME_S_MAX)
    solver.passModel(lp)
    solver.run()
    status = solver.getModelStatus()
    if status != highspy.HighsModelStatus.kOptimal:
        raise RuntimeFailure(f"placement solver did not prove optimality: {status.name}")
    values = solver.getSolution().col_value
    chosen = [-1] * num_r
    best = [-1.0] * num_r
    for j, (r, o) in enumerate(columns):
        if values[j] > best[r]:
            best[r] = values[j]
            chosen[r] = o
    assert all(o >= 0 for o in chosen)
    final = _polish(problem, chosen, drawn_by, kept)
    spend, shortfalls = evaluate(problem, final)
    return Solution(tuple(final), spend, shortfalls, "milp")


def _kept_options(drawn_by: Sequence[frozenset[int]], reduce: bool) -> list[int]:
    """Option indexes that may be optimal (see "dominated offers" in the module docstring)."""
    if not reduce:
        return list(range(len(drawn_by)))
    kept = []
    seen: set[frozenset[int]] = set()
    for o, drawn in enumerate(drawn_by):
        if len(drawn) >= 2:
            kept.append(o)
        elif drawn not in seen:
            seen.add(drawn)
            kept.append(o)
    return kept


def _polish(
    problem: PlacementProblem,
    chosen: list[int],
    drawn_by: Sequence[Sequence[frozenset[int]]],
    kept: Sequence[Sequence[int]],
) -> list[int]:
    """Move requests to earlier candidates while the exact objective does not rise. Only kept
    options are tried: a dropped option's class leader is earlier and never costs more cash."""
    drawn = [0] * len(problem.commitments)
    for r, o in enumerate(chosen):
        for k in drawn_by[r][o]:
            drawn[k] += problem.options[r][o].total_micros

    def cash_delta(r: int, old: int, new: int) -> int:
        old_cost = problem.options[r][old].total_micros
        new_cost = problem.options[r][new].total_micros
        delta = new_cost - old_cost
        old_k = drawn_by[r][old]
        new_k = drawn_by[r][new]
        for k in old_k | new_k:
            remaining = problem.commitments[k].remaining_micros
            after = drawn[k] - (old_cost if k in old_k else 0) + (new_cost if k in new_k else 0)
            delta += max(0, remaining - after) - max(0, remaining - drawn[k])
        return delta

    for _ in range(POLISH_PASSES_MAX):
        moved = False
        for r in range(len(chosen)):
            current = chosen[r]
            for o in kept[r]:
                if o == current:
                    continue
                delta = cash_delta(r, current, o)
                if delta < 0 or (delta == 0 and o < current):
                    for k in drawn_by[r][current]:
                        drawn[k] -= problem.options[r][current].total_micros
                    for k in drawn_by[r][o]:
                        drawn[k] += problem.options[r][o].total_micros
                    chosen[r] = current = o
                    moved = True
        if not moved:
            break
    return chosen
