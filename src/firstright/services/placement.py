"""Use case: place capacity requests on the market under the contracts in force.

``place_requests`` is the one entry point (the CLI, the demo and the first-refusal desk call it):
each request is decided at its own instant (``request.at``, else the ``at`` argument); the
contracts in force then gate its providers (exclusivity, carve-outs, exceptions, API
exclusivity) and say whether a first refusal is due; commitments with a true-up in force then
shape the batch optimum (see ``domain/placement/solver.py`` for the objective).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal

from firstright.domain.contracts.demand import Demand
from firstright.domain.contracts.model import CommitmentClause
from firstright.domain.contracts.policy import Gate, Policy
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.market.catalog import Market
from firstright.domain.money import round_to_micros
from firstright.domain.placement.answer import PlacementAnswer
from firstright.domain.placement.plan import (
    Admission,
    Commitment,
    PlacementJob,
    RefusalRight,
    place_batch,
)
from firstright.domain.placement.request import PlacementRequest
from firstright.domain.placement.solver import CommitmentTerm
from firstright.errors import InputError
from firstright.limits import PLACEMENT_REQUESTS_MAX


def commitment_key(contract: str, clause_id: str) -> str:
    """How a commitment is named in ``spent_usd`` and in traces: ``contract@version#clause``."""
    return f"{contract}#{clause_id}"


def place_requests(
    requests: Sequence[PlacementRequest],
    *,
    contracts: ContractSet | None = None,
    at: datetime | None = None,
    market: Market | None = None,
    spent_usd: Mapping[str, Decimal] | None = None,
    events_happened: frozenset[str] = frozenset(),
) -> list[PlacementAnswer]:
    """Place every request at the exact optimum of total cash out and explain each answer.

    ``contracts``: ``None`` means no contract applies (plain cheapest placement). ``at``: the
    instant for requests that carry none. ``market``: the shipped catalogs by default.
    ``spent_usd``: what each commitment (by :func:`commitment_key`) has already drawn, so only
    the remainder shapes the choice. Answers come back in request order.
    """
    if len(requests) > PLACEMENT_REQUESTS_MAX:
        raise InputError(f"at most {PLACEMENT_REQUESTS_MAX} requests per batch")
    if market is None:
        from firstright.adapters.catalogs import load_market  # noqa: PLC0415 - edge only

        market = load_market()
    instants = []
    for number, request in enumerate(requests, start=1):
        instant = request.at or at
        if instant is None:
            raise InputError(f"request {number}: no 'at' in the request and no --at given")
        if instant.tzinfo is None:
            raise InputError(f"request {number}: the instant must carry a time zone")
        instants.append(instant)

    policies: dict[datetime, Policy] = {}
    commitments: list[Commitment] = []
    commitment_index: dict[str, int] = {}
    jobs = []
    spent = spent_usd or {}
    for request, instant in zip(requests, instants, strict=True):
        if contracts is None:
            jobs.append(PlacementJob(request=request, at=instant))
            continue
        policy = policies.get(instant)
        if policy is None:
            policy = Policy.compile(contracts, instant, events_happened=events_happened)
            policies[instant] = policy
        gate = policy.gate(_demand(request))
        draws = set()
        for contract, clause in policy.commitments():
            if not _draws(clause, request, instant):
                continue
            key = commitment_key(contract, clause.id)
            if key not in commitment_index:
                amount = clause.params.amount_usd - spent.get(key, Decimal(0))
                commitment_index[key] = len(commitments)
                commitments.append(
                    Commitment(
                        term=CommitmentTerm(
                            key=key,
                            providers=frozenset(clause.params.providers),
                            remaining_micros=max(0, round_to_micros(amount)),
                        ),
                        clause_id=clause.id,
                        contract=contract,
                    )
                )
            draws.add(commitment_index[key])
        jobs.append(
            PlacementJob(
                request=request, at=instant, admission=_admission(gate), draws=frozenset(draws)
            )
        )
    return place_batch(jobs, market, commitments)


def _demand(request: PlacementRequest) -> Demand:
    return Demand(
        party=request.party,
        workload=request.workload,
        category=request.category,
        channel=request.channel,
        product=request.product,
        customer=request.customer,
        gpus=request.gpus,
    )


def _draws(clause: CommitmentClause, request: PlacementRequest, at: datetime) -> bool:
    """Whether this request's spend counts toward the commitment (and its true-up is owed)."""
    params = clause.params
    return (
        params.true_up
        and clause.payer == request.party
        and params.period_start <= at < params.period_end
        and (not params.workloads or request.workload in params.workloads)
    )


def _admission(gate: Gate) -> Admission:
    right = gate.first_refusal
    refusal = None
    if right is not None:
        refusal = RefusalRight(
            clause_id=right.clause_id,
            contract=right.contract,
            holder=right.holder,
            owner=right.owner,
            holder_providers=right.holder_providers,
            waived_providers=right.waived_providers,
        )
    return Admission(
        allowed_providers=gate.allowed_providers,
        trace=gate.trace,
        restricting_clauses=gate.restricting_clause_ids,
        first_refusal=refusal,
    )
