"""The answer to one placement request: the choice, the runners-up and why they lost, the trace,
the first-refusal notice due (if any) and the counterfactual. ``to_json`` is the wire shape of
``firstright place --json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any, Literal

from firstright.domain.contracts.trace import TraceStep
from firstright.domain.money import micros_to_decimal
from firstright.domain.placement.candidates import Candidate
from firstright.domain.placement.request import PlacementRequest

PRICE_PLACES = Decimal("0.000001")
Outcome = Literal["chosen", "lost_on_price", "lost_on_cash", "excluded"]


def usd(amount_micros: int) -> str:
    return str(micros_to_decimal(amount_micros))


def rate(value: Decimal) -> str:
    """A price as a plain decimal string, at most six places, half to even."""
    quantized = value.quantize(PRICE_PLACES, rounding=ROUND_HALF_EVEN)
    text = format(quantized.normalize(), "f")
    return text


@dataclass(frozen=True, slots=True)
class RankedCandidate:
    candidate: Candidate
    outcome: Outcome
    price_difference_micros: int
    """Its total minus the choice's total (negative: it was cheaper in list price)."""
    clause_ids: tuple[str, ...] = ()
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        offer = self.candidate.offer
        return {
            "provider": offer.provider,
            "region": offer.region,
            "zone": offer.zone,
            "instance_type": offer.instance_type,
            "hourly_price_usd": rate(self.candidate.hourly_usd),
            "total_usd": usd(self.candidate.total_micros),
            "outcome": self.outcome,
            "price_difference_usd": usd(self.price_difference_micros),
            "clause_ids": list(self.clause_ids),
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class RefusalTerms:
    """The terms the owner must notify the holder of, for the chosen third-party offer."""

    offeror: str
    quantity_gpus: int
    gpu_type: str
    region: str
    price_per_gpu_hour: Decimal
    start: datetime
    commit_months: int

    def to_json(self) -> dict[str, Any]:
        return {
            "offeror": self.offeror,
            "quantity_gpus": self.quantity_gpus,
            "gpu_type": self.gpu_type,
            "region": self.region,
            "price_per_gpu_hour": rate(self.price_per_gpu_hour),
            "start": self.start.isoformat(),
            "commit_months": self.commit_months,
        }


@dataclass(frozen=True, slots=True)
class FirstRefusalNotice:
    clause_id: str
    contract: str
    holder: str
    owner: str
    holder_providers: tuple[str, ...]
    terms: RefusalTerms
    holder_best: Candidate | None
    """The holder's cheapest own offer for the same GPUs (any region), if it sells them."""

    def to_json(self) -> dict[str, Any]:
        best: dict[str, Any] | None = None
        if self.holder_best is not None:
            per_gpu = self.holder_best.hourly_usd / self.terms.quantity_gpus
            offer = self.holder_best.offer
            best = {
                "provider": offer.provider,
                "region": offer.region,
                "zone": offer.zone,
                "instance_type": offer.instance_type,
                "price_per_gpu_hour": rate(per_gpu),
                "discount_needed_per_gpu_hour": rate(
                    max(Decimal(0), per_gpu - self.terms.price_per_gpu_hour)
                ),
            }
        return {
            "holder": self.holder,
            "owner": self.owner,
            "clause_id": self.clause_id,
            "contract": self.contract,
            "holder_providers": list(self.holder_providers),
            "terms": self.terms.to_json(),
            "holder_best_offer": best,
            "counterfactual": (
                f"{self.holder} would win at <= {rate(self.terms.price_per_gpu_hour)} "
                f"USD per GPU-hour for {self.terms.quantity_gpus} {self.terms.gpu_type}"
            ),
        }


@dataclass(frozen=True, slots=True)
class Counterfactual:
    kind: Literal["clause_excluded", "commitment_shift"]
    candidate: Candidate
    difference_micros: int
    """What the counterfactual offer would have saved in list price (positive)."""
    clause_ids: tuple[str, ...]
    explanation: str

    def to_json(self) -> dict[str, Any]:
        offer = self.candidate.offer
        return {
            "kind": self.kind,
            "provider": offer.provider,
            "region": offer.region,
            "zone": offer.zone,
            "instance_type": offer.instance_type,
            "hourly_price_usd": rate(self.candidate.hourly_usd),
            "total_usd": usd(self.candidate.total_micros),
            "list_price_saving_usd": usd(self.difference_micros),
            "clause_ids": list(self.clause_ids),
            "explanation": self.explanation,
        }


@dataclass(frozen=True, slots=True)
class PlacementAnswer:
    request: PlacementRequest
    index: int
    """Position of the request in its file (0-based)."""
    at: datetime
    choice: Candidate | None
    """``None`` when nothing may serve the request (``reason`` says why)."""
    candidates: tuple[RankedCandidate, ...]
    trace: tuple[TraceStep, ...]
    first_refusal: FirstRefusalNotice | None
    counterfactual: Counterfactual | None
    method: str
    reason: str = ""

    @property
    def request_id(self) -> str:
        return self.request.id if self.request.id is not None else f"request-{self.index + 1}"

    @property
    def placed(self) -> bool:
        return self.choice is not None

    def to_json(self) -> dict[str, Any]:
        req = self.request
        choice: dict[str, Any] | None = None
        if self.choice is not None:
            offer = self.choice.offer
            choice = {
                "provider": offer.provider,
                "region": offer.region,
                "zone": offer.zone,
                "instance_type": offer.instance_type,
                "accelerator": offer.accelerator,
                "count": req.count,
                "num_nodes": req.num_nodes,
                "use_spot": req.use_spot,
                "hourly_price_usd": rate(self.choice.hourly_usd),
                "total_usd": usd(self.choice.total_micros),
            }
        return {
            "id": self.request_id,
            "at": self.at.isoformat(),
            "request": {
                "party": req.party,
                "workload": req.workload,
                "category": req.category,
                "channel": req.channel,
                "accelerator": req.accelerator,
                "count": req.count,
                "num_nodes": req.num_nodes,
                "hours": str(req.hours),
                "use_spot": req.use_spot,
            },
            "status": "placed" if self.placed else "no_offer",
            "reason": self.reason or None,
            "choice": choice,
            "candidates": [c.to_json() for c in self.candidates],
            "trace": [step.to_json() for step in self.trace],
            "first_refusal": None if self.first_refusal is None else self.first_refusal.to_json(),
            "counterfactual": (
                None if self.counterfactual is None else self.counterfactual.to_json()
            ),
            "solver": self.method,
        }
