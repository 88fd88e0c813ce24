"""The clauses besides the first refusal that the desk applies to one workflow (R19, R20).

A desk request is judged by one contract version (the one holding its ``first_refusal`` clause,
in force when the request was opened). From that version this module maps, for the same owner
and holder, the contract language onto what the machine judges:

* API exclusivity: the ``exclusivity`` clauses that bind named workloads (``params.workloads``)
  to the holder's platform, in force at the instant. Several with the same platform merge (the
  union of their workloads, ids joined with ``+``). ``exception`` / ``carve_out`` clauses that
  override them add their ``customers`` as exempt customer segments, and remove their
  ``workloads`` from the bound set. An ``effective.until`` and an ``until_event`` carry over.
  Channel-only exclusivity (no workloads) is a gateway matter and is not mapped.
* Ship-first: the ``ship_first`` clause in force, its platform and its escape.

The platform is the holder's cloud when the clause lists it, else the clause's first provider.
"""

from __future__ import annotations

from datetime import datetime

from firstright.domain.contracts.model import (
    ClauseBase,
    Contract,
    ExclusivityClause,
    ExemptionClause,
    ShipFirstClause,
)
from firstright.domain.rofr.other_clauses import ApiExclusivity, ShipFirst


def clause_active(clause: ClauseBase, contract: Contract, at: datetime) -> bool:
    """Whether ``clause`` of ``contract`` is in force at ``at`` (named end events aside)."""
    if at < contract.effective_from:
        return False
    if contract.effective_until is not None and at >= contract.effective_until:
        return False
    start, until = clause.effective.from_, clause.effective.until
    return (start is None or at >= start) and (until is None or at < until)


def _platform(providers: list[str], holder_clouds: list[str]) -> str:
    for provider in providers:
        if provider in holder_clouds:
            return provider
    return providers[0]


def api_exclusivity_of(
    contract: Contract, *, owner: str, holder: str, at: datetime
) -> ApiExclusivity | None:
    """The workload exclusivity of ``owner`` toward ``holder`` in force at ``at``, or None."""
    clouds = contract.clouds_of(holder)
    bound = [
        clause
        for clause in contract.clauses
        if isinstance(clause, ExclusivityClause)
        and clause.owner == owner
        and clause.holder == holder
        and clause.params.workloads
        and clause_active(clause, contract, at)
    ]
    if not bound:
        return None
    platform = _platform(bound[0].params.providers, clouds)
    same = [c for c in bound if _platform(c.params.providers, clouds) == platform]
    ids = {c.id for c in same}
    workloads = {w for c in same for w in c.params.workloads}
    segments: set[str] = set()
    for clause in contract.clauses:
        if (
            isinstance(clause, ExemptionClause)
            and ids & set(clause.overrides)
            and clause_active(clause, contract, at)
        ):
            segments.update(clause.params.customers)
            workloads.difference_update(clause.params.workloads)
    if not workloads:
        return None
    until = min((c.effective.until for c in same if c.effective.until), default=None)
    until_event = next((c.effective.until_event for c in same if c.effective.until_event), None)
    return ApiExclusivity(
        clause_id="+".join(c.id for c in same),
        platform=platform,
        workloads=frozenset(workloads),
        exceptions=frozenset(segments),
        until=until,
        until_event=until_event,
    )


def ship_first_of(contract: Contract, *, owner: str, holder: str, at: datetime) -> ShipFirst | None:
    """The ship-first clause of ``owner`` toward ``holder`` in force at ``at``, or None."""
    for clause in contract.clauses:
        if (
            isinstance(clause, ShipFirstClause)
            and clause.owner == owner
            and clause.holder == holder
            and clause_active(clause, contract, at)
        ):
            return ShipFirst(
                clause_id=clause.id,
                platform=_platform(clause.params.providers, contract.clouds_of(holder)),
                escape=clause.params.escape,
            )
    return None
