"""Placing a batch of requests: candidates, contract admission, the exact optimum, explanations.

Pure: the offers, each request's admission (what the contracts allow it, computed by the policy
gate at the request's instant) and the commitments are passed in. See ``solver.py`` for the
objective.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, Decimal

from firstright.domain.contracts.trace import TraceStep
from firstright.domain.market.catalog import Market
from firstright.domain.money import format_usd
from firstright.domain.placement.answer import (
    Counterfactual,
    FirstRefusalNotice,
    PlacementAnswer,
    RankedCandidate,
    RefusalTerms,
    usd,
)
from firstright.domain.placement.candidates import Candidate, matching_candidates
from firstright.domain.placement.request import PlacementRequest
from firstright.domain.placement.solver import (
    CommitmentTerm,
    PlacementProblem,
    Solution,
    solve,
)
from firstright.limits import PLACEMENT_CANDIDATES_SHOWN_MAX

HOURS_PER_MONTH = Decimal(730)


@dataclass(frozen=True, slots=True)
class RefusalRight:
    """A first-refusal right that covers the request: the holder must be offered third-party
    capacity first."""

    clause_id: str
    contract: str
    holder: str
    owner: str
    holder_providers: frozenset[str]
    waived_providers: frozenset[str] = frozenset()
    """Third-party providers a carve-out lets the owner use without offering first."""


@dataclass(frozen=True, slots=True)
class Admission:
    """What the contracts in force say about one request."""

    allowed_providers: frozenset[str] | None = None
    """``None``: any provider."""
    trace: tuple[TraceStep, ...] = ()
    restricting_clauses: tuple[str, ...] = ()
    """Clause ids that narrowed the providers (cited when an offer is excluded)."""
    first_refusal: RefusalRight | None = None

    def allows(self, provider: str) -> bool:
        return self.allowed_providers is None or provider in self.allowed_providers


UNRESTRICTED = Admission()


@dataclass(frozen=True, slots=True)
class Commitment:
    """A commitment with a true-up in the batch."""

    term: CommitmentTerm
    clause_id: str
    contract: str


@dataclass(frozen=True, slots=True)
class PlacementJob:
    request: PlacementRequest
    at: datetime
    admission: Admission = UNRESTRICTED
    draws: frozenset[int] = field(default_factory=frozenset)
    """Indexes of the batch commitments this request's spend counts toward."""


def place_batch(
    jobs: Sequence[PlacementJob],
    market: Market,
    commitments: Sequence[Commitment] = (),
) -> list[PlacementAnswer]:
    """Place every job at the exact optimum of total cash out; explain each choice."""
    allowed: list[list[Candidate]] = []
    excluded: list[list[Candidate]] = []
    for job in jobs:
        req = job.request
        found = matching_candidates(req, market.offers_for(req.accelerator, req.count))
        allowed.append([c for c in found if job.admission.allows(c.provider)])
        excluded.append([c for c in found if not job.admission.allows(c.provider)])

    placeable = [i for i, job in enumerate(jobs) if allowed[i]]
    problem = PlacementProblem(
        options=tuple(tuple(allowed[i]) for i in placeable),
        draws=tuple(jobs[i].draws for i in placeable),
        commitments=tuple(c.term for c in commitments),
    )
    solution = solve(problem)
    chosen_of = {i: solution.chosen[n] for n, i in enumerate(placeable)}

    answers = []
    for i, job in enumerate(jobs):
        if i in chosen_of:
            answers.append(
                _explain(
                    job,
                    i,
                    market=market,
                    allowed=allowed[i],
                    excluded=excluded[i],
                    chosen=chosen_of[i],
                    commitments=commitments,
                    solution=solution,
                )
            )
        else:
            answers.append(_unplaced(job, i, excluded[i]))
    return answers


def _unplaced(job: PlacementJob, index: int, excluded: list[Candidate]) -> PlacementAnswer:
    req = job.request
    where = f" in {', '.join(req.clouds)}" if req.clouds else ""
    where += f" (regions {', '.join(req.regions)})" if req.regions else ""
    market_kind = "spot " if req.use_spot else ""
    if not excluded:
        reason = (
            f"no {market_kind}catalog offer has {req.count} x {req.accelerator} per node{where}"
        )
    else:
        allowed = sorted(job.admission.allowed_providers or ())
        clauses = ", ".join(job.admission.restricting_clauses) or "the contracts"
        reason = (
            f"{clauses} allow only {allowed or 'no provider'}; none of them offers "
            f"{req.count} x {req.accelerator}{where}"
        )
    ranked = tuple(
        _excluded(c, c.total_micros, job.admission) for c in _best_per_provider(excluded)
    )
    return PlacementAnswer(
        request=req,
        index=index,
        at=job.at,
        choice=None,
        candidates=ranked[:PLACEMENT_CANDIDATES_SHOWN_MAX],
        trace=job.admission.trace,
        first_refusal=None,
        counterfactual=None,
        method="none",
        reason=reason,
    )


def _best_per_provider(found: Sequence[Candidate]) -> list[Candidate]:
    best: dict[str, Candidate] = {}
    for candidate in found:  # sorted by rank_key, so the first per provider is its best
        best.setdefault(candidate.provider, candidate)
    return sorted(best.values(), key=lambda c: c.rank_key)


def _excluded(candidate: Candidate, choice_micros: int, admission: Admission) -> RankedCandidate:
    clauses = admission.restricting_clauses
    allowed = sorted(admission.allowed_providers or ())
    return RankedCandidate(
        candidate=candidate,
        outcome="excluded",
        price_difference_micros=candidate.total_micros - choice_micros,
        clause_ids=clauses,
        reason=(
            f"excluded by {', '.join(clauses) or 'the contracts'}: "
            f"this demand may use only {', '.join(allowed) or 'no provider'}"
        ),
    )


def _explain(
    job: PlacementJob,
    index: int,
    *,
    market: Market,
    allowed: list[Candidate],
    excluded: list[Candidate],
    chosen: int,
    commitments: Sequence[Commitment],
    solution: Solution,
) -> PlacementAnswer:
    choice = allowed[chosen]
    cheapest = allowed[0]
    drawn = [k for k in sorted(job.draws) if choice.provider in commitments[k].term.providers]
    drawn_ids = tuple(commitments[k].clause_id for k in drawn)

    ranked: list[RankedCandidate] = [RankedCandidate(choice, "chosen", 0)]
    for candidate in _best_per_provider(allowed + excluded):
        if candidate.provider == choice.provider:
            continue
        diff = candidate.total_micros - choice.total_micros
        if not job.admission.allows(candidate.provider):
            ranked.append(_excluded(candidate, choice.total_micros, job.admission))
        elif diff < 0:
            ranked.append(
                RankedCandidate(
                    candidate,
                    "lost_on_cash",
                    diff,
                    drawn_ids,
                    f"{format_usd(-diff)} cheaper in list price, but the chosen spend draws down "
                    f"{', '.join(drawn_ids)}, whose shortfall is paid as a true-up anyway",
                )
            )
        else:
            why = f"{format_usd(diff)} more" if diff > 0 else "same price; later in tie order"
            ranked.append(RankedCandidate(candidate, "lost_on_price", diff, (), why))
    ranked.sort(key=lambda r: (r.outcome != "chosen", r.candidate.rank_key))

    trace = list(job.admission.trace)
    for k in sorted(job.draws):
        commitment = commitments[k]
        term = commitment.term
        uses = choice.provider in term.providers
        trace.append(
            TraceStep(
                clause_id=commitment.clause_id,
                contract=commitment.contract,
                kind="commitment",
                rule="commitment.effective_price",
                inputs={
                    "providers": ",".join(sorted(term.providers)),
                    "remaining_usd": usd(term.remaining_micros),
                    "shortfall_after_batch_usd": usd(solution.shortfall_micros[k]),
                    "chosen_provider": choice.provider,
                },
                result=(
                    f"draws down the commitment by {format_usd(choice.total_micros)}"
                    if uses
                    else "not drawn: no committed provider is cheaper in total cash"
                ),
            )
        )

    counterfactual: Counterfactual | None = None
    cheaper_excluded = [c for c in excluded if c.total_micros < choice.total_micros]
    if cheaper_excluded:
        best = cheaper_excluded[0]
        counterfactual = Counterfactual(
            kind="clause_excluded",
            candidate=best,
            difference_micros=choice.total_micros - best.total_micros,
            clause_ids=job.admission.restricting_clauses,
            explanation=(
                f"without {', '.join(job.admission.restricting_clauses) or 'the contracts'} "
                f"{best.provider} {best.offer.instance_type} in {best.offer.region} would cost "
                f"{format_usd(choice.total_micros - best.total_micros)} less"
            ),
        )
    elif cheapest is not choice and cheapest.total_micros < choice.total_micros:
        counterfactual = Counterfactual(
            kind="commitment_shift",
            candidate=cheapest,
            difference_micros=choice.total_micros - cheapest.total_micros,
            clause_ids=drawn_ids,
            explanation=(
                f"{cheapest.provider} is {format_usd(choice.total_micros - cheapest.total_micros)} "
                f"cheaper in list price, but {', '.join(drawn_ids)} would then leave that much "
                "more shortfall to true up: the chosen offer costs less total cash"
            ),
        )

    return PlacementAnswer(
        request=job.request,
        index=index,
        at=job.at,
        choice=choice,
        candidates=tuple(ranked[:PLACEMENT_CANDIDATES_SHOWN_MAX]),
        trace=tuple(trace),
        first_refusal=_first_refusal(job, market, choice),
        counterfactual=counterfactual,
        method=solution.method,
    )


def _first_refusal(
    job: PlacementJob, market: Market, choice: Candidate
) -> FirstRefusalNotice | None:
    right = job.admission.first_refusal
    if right is None or choice.provider in right.holder_providers | right.waived_providers:
        return None
    req = job.request
    anywhere = req.model_copy(update={"clouds": None, "regions": None})
    own = [
        c
        for c in matching_candidates(anywhere, market.offers_for(req.accelerator, req.count))
        if c.provider in right.holder_providers
    ]
    months = (req.hours / HOURS_PER_MONTH).to_integral_value(rounding=ROUND_CEILING)
    terms = RefusalTerms(
        offeror=choice.provider,
        quantity_gpus=req.gpus,
        gpu_type=req.accelerator,
        region=choice.offer.region,
        price_per_gpu_hour=choice.hourly_usd / req.gpus,
        start=job.at,
        commit_months=max(1, int(months)),
    )
    return FirstRefusalNotice(
        clause_id=right.clause_id,
        contract=right.contract,
        holder=right.holder,
        owner=right.owner,
        holder_providers=tuple(sorted(right.holder_providers)),
        terms=terms,
        holder_best=own[0] if own else None,
    )
