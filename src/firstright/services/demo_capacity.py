"""The capacity part of the demo scenario: the contract versions over time and the demand placed
under the version in force when each request was decided.

Inputs are the embedded examples (``examples/contracts``, ``examples/demand/msft-openai.yaml``)
plus two stated assumptions, each marked ``assumption`` wherever it is shown:

* :data:`ASSUMED_OFFERS`: clouds without a public catalog (CoreWeave) get an offer at an assumed
  list price, so a request that weighed CoreWeave against Azure can land on CoreWeave;
* :func:`commitments_on_track`: every commitment in the contracts counts as already drawn down
  by spend outside the scenario. Otherwise the hundreds of billions committed to Azure would make
  Azure free at the margin (the shortfall is paid as a true-up anyway) and every request would go
  there; in reality marginal capacity went through the first refusal to third parties.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from firstright.domain.contracts.model import CommitmentClause, Contract, ExemptionClause
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.market.catalog import Market
from firstright.domain.market.offer import Offer
from firstright.domain.money import micros_to_decimal
from firstright.domain.placement.answer import PlacementAnswer
from firstright.domain.placement.request import PlacementRequest
from firstright.services.placement import commitment_key, place_requests

DEMO_CONTRACT_ID = "msft-openai"


@dataclass(frozen=True, slots=True)
class AssumedOffer:
    """An offer of a cloud without a public catalog, at an assumed price."""

    offer: Offer
    note: str


ASSUMED_OFFERS: tuple[AssumedOffer, ...] = (
    AssumedOffer(
        offer=Offer(
            provider="coreweave",
            region="us-east-04",
            zone=None,
            instance_type="gd-8xh100ib-i128",
            accelerator="H100",
            accelerator_count=Decimal(8),
            on_demand_usd_per_hour=Decimal("49.24"),
            spot_usd_per_hour=None,
        ),
        note=(
            "assumption: CoreWeave publishes no catalog in SkyPilot's format; 49.24 USD per "
            "hour for an 8x H100 HGX node is CoreWeave's advertised on-demand rate, not the "
            "undisclosed price of OpenAI's contract"
        ),
    ),
)


def demand_path() -> Path:
    """The demo's demand file (placement requests, 2019–2026)."""
    return Path(__file__).resolve().parent.parent / "examples" / "demand" / "msft-openai.yaml"


def load_demand(path: Path | None = None) -> list[PlacementRequest]:
    """The placement requests of a demand file (one request or ``requests: [...]``)."""
    from firstright.adapters.yaml_source import (  # noqa: PLC0415 - edge
        load_yaml_file,
        validate_document,
    )
    from firstright.domain.placement.request import (  # noqa: PLC0415
        PlacementRequestFile,
        is_request_list,
    )

    doc = load_yaml_file(path or demand_path())
    if is_request_list(doc.data):
        return list(validate_document(doc, PlacementRequestFile).requests)
    return [validate_document(doc, PlacementRequest)]


def demo_market(base: Market | None = None) -> Market:
    """The shipped catalogs plus :data:`ASSUMED_OFFERS`."""
    if base is None:
        from firstright.adapters.catalogs import load_market  # noqa: PLC0415 - edge

        base = load_market()
    return Market(
        offers=base.offers + tuple(a.offer for a in ASSUMED_OFFERS), corrections=base.corrections
    )


COMMITMENTS_ON_TRACK_NOTE = (
    "assumption: every Azure commitment counts as drawn down by OpenAI's existing spend outside "
    "this scenario, so it does not pull marginal capacity to Azure (the amounts drawn by the "
    "scenario itself are settled and shown in the commitment burn-down)"
)


def commitments_on_track(contracts: ContractSet | Sequence[Contract]) -> dict[str, Decimal]:
    """``spent_usd`` for :func:`place_requests`: each commitment fully drawn by outside spend."""
    spent: dict[str, Decimal] = {}
    for contract in contracts:
        for clause in contract.clauses:
            if isinstance(clause, CommitmentClause):
                spent[commitment_key(contract.key, clause.id)] = clause.params.amount_usd
    return spent


# ---------------------------------------------------------------------------------------------
# The contract timeline


@dataclass(frozen=True, slots=True)
class VersionSpan:
    """One contract version and the interval it was in force."""

    contract: Contract
    start: datetime
    end: datetime | None
    """Exclusive; ``None`` while it is the version in force."""

    def to_json(self) -> dict[str, Any]:
        contract = self.contract
        kinds: dict[str, int] = {}
        for clause in contract.clauses:
            kinds[clause.kind] = kinds.get(clause.kind, 0) + 1
        return {
            "key": contract.key,
            "contract_id": contract.contract_id,
            "version": contract.version,
            "title": contract.title,
            "effective_from": self.start.isoformat(),
            "effective_until": None if self.end is None else self.end.isoformat(),
            "parties": sorted(contract.parties),
            "clause_kinds": dict(sorted(kinds.items())),
            "clauses": len(contract.clauses),
            "assumptions": sum(1 for c in contract.clauses if c.source.assumption),
        }


def timeline(contracts: ContractSet, contract_id: str) -> list[VersionSpan]:
    """Every version of ``contract_id`` with the interval it was in force, oldest first."""
    versions = contracts.versions(contract_id)
    spans: list[VersionSpan] = []
    for index, contract in enumerate(versions):
        end = contract.effective_until
        if index + 1 < len(versions):
            following = versions[index + 1].effective_from
            end = following if end is None else min(end, following)
        spans.append(VersionSpan(contract=contract, start=contract.effective_from, end=end))
    return spans


# ---------------------------------------------------------------------------------------------
# Placement under the version in force


def why(answer: PlacementAnswer, contracts: ContractSet | None = None) -> str:
    """One line: the clauses that decided where this request went (or "cheapest offer").
    With ``contracts``, a carve-out whose category the request names is cited too."""
    if not answer.placed:
        return answer.reason or "no offer"
    reasons: list[str] = []
    if contracts is not None:
        reasons.extend(_carve_outs(answer, contracts))
    rules = {(step.clause_id, step.rule) for step in answer.trace}
    for clause_id, rule in sorted(rules):
        if rule == "first_refusal.applies":
            reasons.append(f"{clause_id}: offered to the holder first")
        elif rule in ("carve_out.lift", "exception.lift"):
            reasons.append(f"{clause_id}: lifts a restriction")
        elif rule in ("carve_out.extend", "exception.extend"):
            reasons.append(f"{clause_id}: allows more providers")
        elif rule == "first_refusal.exempt":
            reasons.append(f"{clause_id}: exempt from the first refusal")
        elif rule == "ship_first.applies":
            reasons.append(f"{clause_id}: ship first on the holder's cloud")
    restricting = sorted(
        {step.clause_id for step in answer.trace if step.rule == "exclusivity.restrict"}
    )
    if restricting:
        reasons.insert(0, f"{', '.join(restricting)}: only on {_allowed(answer)}")
    if answer.request.clouds:
        reasons.append(f"weighed {', '.join(answer.request.clouds)}")
    if not reasons or all(r.startswith("weighed") for r in reasons):
        reasons.insert(0, "cheapest offer allowed")
    return "; ".join(reasons)


def _allowed(answer: PlacementAnswer) -> str:
    for step in reversed(answer.trace):
        if step.rule == "exclusivity.restrict":
            return step.result.removeprefix("only on ").replace(",", ", ")
    return "?"


def _carve_outs(answer: PlacementAnswer, contracts: ContractSet) -> list[str]:
    """Carve-outs in force whose categories name the request's category."""
    category = answer.request.category
    if category is None:
        return []
    found = []
    for contract in contracts.in_force_at(answer.at):
        for clause in contract.clauses:
            if (
                isinstance(clause, ExemptionClause)
                and category in clause.params.categories
                and not any(step.clause_id == clause.id for step in answer.trace)
            ):
                found.append(
                    f"{clause.id}: {category} is exempt from {', '.join(clause.overrides)}"
                )
    return found


def clause_ids_of(answer: PlacementAnswer) -> list[str]:
    """Clauses named in the answer's trace, in order of first appearance."""
    seen: dict[str, None] = {}
    for step in answer.trace:
        for clause_id in step.clause_id.split(","):
            seen.setdefault(clause_id, None)
    return list(seen)


def contract_keys_of(answer: PlacementAnswer) -> list[str]:
    seen: dict[str, None] = {}
    for step in answer.trace:
        seen.setdefault(step.contract, None)
    return list(seen)


def place_demand(
    requests: Sequence[PlacementRequest],
    contracts: ContractSet,
    *,
    market: Market | None = None,
    spent_usd: Mapping[str, Decimal] | None = None,
) -> list[PlacementAnswer]:
    """Each request under the contract versions in force at its ``at``, on the demo market,
    with commitments on track unless ``spent_usd`` says otherwise."""
    return place_requests(
        requests,
        contracts=contracts,
        market=market if market is not None else demo_market(),
        spent_usd=commitments_on_track(contracts) if spent_usd is None else spent_usd,
    )


def total_usd(answers: Sequence[PlacementAnswer]) -> Decimal:
    return micros_to_decimal(sum(a.choice.total_micros for a in answers if a.choice is not None))
