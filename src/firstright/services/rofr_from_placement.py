"""From placement to desk: a first refusal a placement owes, opened on the desk, and where the
capacity finally goes once the workflow has an outcome.

    desk.open_from_placement(actor, answer, at=answer.at, key=None)
        opens the request (``capacity_request`` + the chosen third party's catalog offer as a
        bona fide ``tp_offer_received``) and delivers the complete notice on those terms
    place_and_open(desk, actor, requests, at=..., key=None) -> list[dict]
        places requests under the desk's contracts and opens every first refusal owed (the
        ``firstright rofr open-from-placement`` command and ``POST /api/rofr/from-placement``)
    final_placement(desk, request_id) -> FinalPlacement
        ALLOCATE_HOLDER → the holder's best catalog offer (the answer's ``holder_best``);
        ALLOCATE_THIRD_PARTY / NO_ROFR → the placement's choice; SPLIT → both, with quantities;
        PENDING → pending, with the next deadline; REOFFER_REQUIRED / VIOLATION /
        NOT_TRIGGERED → blocked, with the reason

Notice terms come from the placement's ``first_refusal.terms`` (offeror, quantity, GPU type,
region, price per GPU-hour, start date, commitment in months). A catalog offer has no SLA,
prepayment or offer documents, so when the clause's ``required_notice_fields`` ask for them the
documented defaults below fill them, and the notice's trace says which were defaulted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from firstright.domain.contracts.model import Contract, RofrParams
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.placement.answer import PlacementAnswer, rate
from firstright.domain.placement.request import PlacementRequest
from firstright.errors import Forbidden, InputError, NotFound

if TYPE_CHECKING:
    from firstright.services.auth import Principal
    from firstright.services.rofr_desk import RofrDesk

NOTICE_DEFAULTS: dict[str, str | int] = {
    "sla_pct": "99.5",
    "prepay_pct": 0,
    "offer_documents": "catalog-list-price",
}
"""Terms a catalog offer lacks, as the notice states them: the catalog providers' usual
single-region availability SLA (99.5 %), no prepayment (list prices are pay-as-you-go), and the
catalog price list as the offer document."""

PLACEMENT_CLAUSE = "placement"
DEFAULTS_CLAUSE = "placement-notice-defaults"


def offeror_party(contract: Contract, provider: str) -> str:
    """The party behind a provider (a cloud listed under a party of the contract), else the
    provider's own name."""
    return contract.owner_of_cloud(provider) or provider


def notice_terms(
    answer: PlacementAnswer, params: RofrParams
) -> tuple[dict[str, str | int], dict[str, Any]]:
    """The catalog terms of the placement's first refusal, completed for the clause's
    ``required_notice_fields``, and the trace step naming the defaults used.

    InputError when a required field has neither a catalog value nor a documented default."""
    notice = answer.first_refusal
    assert notice is not None
    terms = notice.terms
    out: dict[str, str | int] = {
        "quantity_gpus": terms.quantity_gpus,
        "gpu_type": terms.gpu_type,
        "region": terms.region,
        "start_date": terms.start.date().isoformat(),
        "commit_months": terms.commit_months,
        "price_per_gpu_hour": rate(terms.price_per_gpu_hour),
    }
    defaulted: dict[str, str] = {}
    unknown: list[str] = []
    for name in params.required_notice_fields:
        if name == "offeror" or name in out:
            continue
        if name in NOTICE_DEFAULTS:
            out[name] = NOTICE_DEFAULTS[name]
            defaulted[name] = str(NOTICE_DEFAULTS[name])
        else:
            unknown.append(name)
    if unknown:
        raise InputError(
            f"placement {answer.request_id}: the clause {notice.clause_id} requires notice "
            f"fields the catalog offer cannot give and that have no default: {', '.join(unknown)}"
        )
    step = {
        "clause": DEFAULTS_CLAUSE,
        "rule": [],
        "result": "DEFAULTED" if defaulted else "CATALOG",
        "reason": (
            "notice terms from the catalog offer; defaults (not from the offer): "
            + ", ".join(f"{k}={v}" for k, v in defaulted.items())
            if defaulted
            else "notice terms from the catalog offer"
        ),
        "inputs": {"defaulted": ",".join(defaulted) or "-", **defaulted},
    }
    return out, step


def placement_record(answer: PlacementAnswer, offeror: str) -> dict[str, Any]:
    """What the desk keeps of the placement (on the ``capacity_request`` event)."""
    notice = answer.first_refusal
    choice = answer.choice
    assert notice is not None and choice is not None
    gpus = answer.request.gpus
    best = notice.holder_best
    return {
        "placement_id": answer.request_id,
        "at": answer.at.isoformat(),
        "party": answer.request.party,
        "quantity_gpus": gpus,
        "choice": {
            "party": offeror,
            "provider": choice.offer.provider,
            "region": choice.offer.region,
            "instance_type": choice.offer.instance_type,
            "price_per_gpu_hour": rate(choice.hourly_usd / gpus),
        },
        "holder_best": None
        if best is None
        else {
            "party": notice.holder,
            "provider": best.offer.provider,
            "region": best.offer.region,
            "instance_type": best.offer.instance_type,
            "price_per_gpu_hour": rate(best.hourly_usd / gpus),
        },
    }


def placement_step(answer: PlacementAnswer, offeror: str) -> dict[str, Any]:
    notice = answer.first_refusal
    choice = answer.choice
    assert notice is not None and choice is not None
    return {
        "clause": PLACEMENT_CLAUSE,
        "rule": [],
        "result": "FIRST_REFUSAL_OWED",
        "reason": (
            f"placement {answer.request_id} chose {choice.offer.provider} "
            f"({choice.offer.region}, {choice.offer.instance_type}); {notice.holder} holds "
            f"{notice.clause_id} of {notice.contract}: the catalog offer of {offeror} is the "
            "bona fide third-party offer"
        ),
        "inputs": {
            "placement_id": answer.request_id,
            "provider": choice.offer.provider,
            "offeror": offeror,
            "contract": notice.contract,
        },
    }


# ---------------------------------------------------------------------------------------------
# Where the capacity goes


@dataclass(frozen=True, slots=True)
class Allocation:
    party: str
    provider: str | None
    region: str | None
    instance_type: str | None
    quantity_gpus: int
    price_per_gpu_hour: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "party": self.party,
            "provider": self.provider,
            "region": self.region,
            "instance_type": self.instance_type,
            "quantity_gpus": self.quantity_gpus,
            "price_per_gpu_hour": self.price_per_gpu_hour,
        }


@dataclass(frozen=True, slots=True)
class FinalPlacement:
    """Where the capacity of a placement goes, given its first-refusal workflow's outcome."""

    request_id: str
    placement_id: str
    outcome: str
    state: str
    status: str
    """``allocated``, ``split``, ``pending`` or ``blocked``."""
    allocations: tuple[Allocation, ...] = field(default=())
    deadline: str | None = None
    """The next deadline of the workflow (the exercise deadline while pending)."""
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "placement_id": self.placement_id,
            "outcome": self.outcome,
            "state": self.state,
            "status": self.status,
            "allocations": [a.to_json() for a in self.allocations],
            "deadline": self.deadline,
            "reason": self.reason,
        }


def _line(offer: dict[str, Any] | None, party: str, quantity: int) -> Allocation:
    if offer is None:
        return Allocation(party, None, None, None, quantity, None)
    return Allocation(
        party=party,
        provider=str(offer["provider"]),
        region=offer.get("region"),
        instance_type=offer.get("instance_type"),
        quantity_gpus=quantity,
        price_per_gpu_hour=offer.get("price_per_gpu_hour"),
    )


def final_placement(desk: RofrDesk, request_id: str) -> FinalPlacement:
    """Where the capacity of a request opened from a placement goes now (operator view)."""
    shown = desk.show(None, request_id)
    events = shown["events"]
    record = events[0]["body"].get("placement") if events else None
    if not isinstance(record, dict):
        raise NotFound(f"first-refusal request {request_id!r} was not opened from a placement")
    outcome, state = str(shown["outcome"]), str(shown["state"])
    quantity = int(record["quantity_gpus"])
    choice = record["choice"]
    best = record.get("holder_best")
    holder_party = str(shown["holder"])
    timers = shown["timers"]
    deadline = str(timers[0]["deadline"]) if timers else None
    last_reason = str(shown["decisions"][-1]["reason"]) if shown["decisions"] else ""
    placement_id = str(record["placement_id"])

    def answer(status: str, reason: str, *lines: Allocation) -> FinalPlacement:
        return FinalPlacement(
            request_id=request_id,
            placement_id=placement_id,
            outcome=outcome,
            state=state,
            status=status,
            allocations=lines,
            deadline=deadline,
            reason=reason,
        )

    if outcome == "ALLOCATE_HOLDER":
        line = _line(best, holder_party, quantity)
        reason = f"{holder_party} matched; the capacity goes to its best catalog offer"
        if best is None:
            reason += " (the catalog lists none for these GPUs; terms as notified)"
        return answer("allocated", reason, line)
    if outcome in ("ALLOCATE_THIRD_PARTY", "NO_ROFR"):
        why = (
            "released by the holder: the placement's choice stands"
            if outcome == "ALLOCATE_THIRD_PARTY"
            else "no first refusal applies: the placement's choice stands"
        )
        line = _line(choice, str(choice["party"]), quantity)
        return answer("allocated", why, line)
    if outcome == "SPLIT":
        held = int(shown["allocation"].get(shown["holder_cloud"], 0))
        lines = (
            _line(best, holder_party, held),
            _line(choice, str(choice["party"]), quantity - held),
        )
        reason = f"{holder_party} exercised for {held} of {quantity} GPUs; the rest is released"
        return answer("split", reason, *lines)
    if outcome == "PENDING":
        reason = f"waiting for the holder ({state})" + (f" until {deadline}" if deadline else "")
        return answer("pending", reason)
    return answer("blocked", f"{outcome}: {last_reason}")


# ---------------------------------------------------------------------------------------------
# Place, then open what is owed (the CLI and HTTP entry point)


def place_and_open(
    desk: RofrDesk,
    actor: Principal | None,
    requests: Sequence[PlacementRequest],
    *,
    at: datetime,
    key: str | None = None,
) -> list[dict[str, Any]]:
    """Place ``requests`` under the desk's contracts and open every first refusal owed.

    ``at``: the instant of requests that carry none. One result per request, in order:
    ``placement`` (the placement answer), ``desk`` (what the desk did, or None when no first
    refusal is owed) and ``final`` (where the capacity goes now). ``key``: idempotency key
    prefix (``<key>:<placement id>``; default ``placement:<placement id>``). A party key may
    only place its own requests."""
    from firstright.services.placement import place_requests  # noqa: PLC0415 - heavy import

    if actor is not None:
        others = sorted({r.party for r in requests if r.party != actor.party})
        if actor.role != "party" or others:
            raise Forbidden(
                f"key {actor.key_id} ({actor.role} {actor.party!r}) may only open first "
                f"refusals for its own placements"
                + (f"; not {', '.join(others)}" if others else "")
            )
    answers = place_requests(requests, contracts=ContractSet(desk.contracts), at=at)
    results: list[dict[str, Any]] = []
    for answer in answers:
        item: dict[str, Any] = {"placement": answer.to_json(), "desk": None}
        if answer.first_refusal is not None and answer.choice is not None:
            opened = desk.open_from_placement(
                actor,
                answer,
                at=answer.at,
                key=f"{key}:{answer.request_id}" if key else None,
            )
            item["desk"] = opened
            item["final"] = opened["final"]
        else:
            item["final"] = _unowed(answer).to_json()
        results.append(item)
    return results


def _unowed(answer: PlacementAnswer) -> FinalPlacement:
    choice = answer.choice
    if choice is None:
        return FinalPlacement(
            request_id="",
            placement_id=answer.request_id,
            outcome="NO_OFFER",
            state="-",
            status="blocked",
            reason=answer.reason or "nothing may serve this request",
        )
    gpus = answer.request.gpus
    line = Allocation(
        party=answer.request.party,
        provider=choice.offer.provider,
        region=choice.offer.region,
        instance_type=choice.offer.instance_type,
        quantity_gpus=gpus,
        price_per_gpu_hour=rate(choice.hourly_usd / gpus),
    )
    return FinalPlacement(
        request_id="",
        placement_id=answer.request_id,
        outcome="NO_FIRST_REFUSAL",
        state="-",
        status="allocated",
        allocations=(line,),
        reason="no first refusal is owed: the placement's choice stands",
    )
