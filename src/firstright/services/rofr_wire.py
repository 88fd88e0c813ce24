"""The desk's wire format: JSON command bodies (pydantic, shared by HTTP and CLI), their
translation into machine events, and decisions as JSON.

Terms travel as plain JSON scalars (``{"price_per_gpu_hour": "2.40", "quantity_gpus": 100000,
"gpu_type": "H100", "region": "us-east", "start_date": "2025-06-01"}``) and are typed by the
contract's ``terms_order`` when the event is built (:func:`terms_of`). Prices are decimal
strings (or integers); floats are refused so no binary rounding sneaks in.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from firstright.domain.contracts.model import RofrParams
from firstright.domain.placement.request import PlacementRequest
from firstright.domain.rofr.decision import Decision
from firstright.domain.rofr.events import (
    BonaFide,
    CapacityRequest,
    Event,
    HolderCapabilityResponse,
    HolderDefinitiveAgreementSigned,
    HolderResponse,
    LaunchRequest,
    NoticeDelivered,
    RequestWithdrawn,
    ResponseKind,
    Timer,
    TimerFired,
    TimerKind,
    TpContractRequest,
    TpContractSigned,
    TpOfferReceived,
    TpTermsChanged,
    WorkloadPlacementRequest,
)
from firstright.domain.rofr.terms import NonCash, TermSet, parse_terms
from firstright.errors import InputError
from firstright.limits import ROFR_LIST_PAGE_MAX

RequestId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.-]{0,127}$")]
Label = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,127}$")]
TermName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:/-]{0,127}$")]
TermRaw = Annotated[str, StringConstraints(max_length=256)] | int
Terms = Annotated[dict[TermName, TermRaw], Field(max_length=100)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NonCashBody(Body):
    kind: Name
    cash_equivalent_usd: Annotated[Decimal, Field(ge=0, max_digits=30)]


class BonaFideBody(Body):
    written: bool = True
    signed: bool = True
    material_terms_complete: bool = True
    arms_length: bool = True
    good_faith: bool = True


class OfferBody(Body):
    """A third party's offer (or a change of its terms) reported by the owner."""

    party: Name
    terms: Terms
    non_cash: NonCashBody | None = None
    bona_fide: BonaFideBody = BonaFideBody()
    package: bool = False


class OpenBody(Body):
    """Open a capacity request (and, optionally, record the third-party offer behind it)."""

    request_id: RequestId
    category: Name
    quantity_gpus: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    contract_id: Name | None = None
    clause_id: Name | None = None
    offer: OfferBody | None = None
    at: AwareDatetime | None = None


class OfferEventBody(OfferBody):
    at: AwareDatetime | None = None
    change: bool = False
    """True: the third party changed its terms (``tp_terms_changed``), not a new offer."""


class NoticeBody(Body):
    """The owner's notice to the holder; completeness is judged against the contract's
    ``required_notice_fields`` (a required field is a term name or ``offeror``)."""

    terms: Terms
    offeror: Name | None = None
    non_cash: NonCashBody | None = None
    at: AwareDatetime | None = None


class ResponseBody(Body):
    """The holder's answer to the notice."""

    kind: ResponseKind
    quantity_gpus: Annotated[int, Field(gt=0, le=10_000_000)] | None = None
    terms: Terms | None = None
    condition: Annotated[str, StringConstraints(max_length=2000)] | None = None
    at: AwareDatetime | None = None


class GateBody(Body):
    """May the owner contract with ``party`` on ``terms`` (None: the notified terms) now?"""

    party: Name
    terms: Terms | None = None
    non_cash: NonCashBody | None = None
    workload: Name | None = None
    at: AwareDatetime | None = None


class SignedBody(Body):
    """A signature: the owner with a third party, or the holder's definitive agreement."""

    signer: Literal["third_party", "holder"] = "third_party"
    party: Name | None = None
    terms: Terms | None = None
    non_cash: NonCashBody | None = None
    at: AwareDatetime | None = None


class WithdrawBody(Body):
    reason: Annotated[str, StringConstraints(max_length=2000)] | None = None
    at: AwareDatetime | None = None


class PlacementGateBody(Body):
    """May ``workload`` run on ``party``'s cloud (for ``customer_segment``)? Decided by API
    exclusivity and its exceptions (R19)."""

    party: Name
    workload: Name
    customer_segment: Name | None = None
    at: AwareDatetime | None = None


class LaunchGateBody(Body):
    """May a product launch (first, unless ``first_launch`` is false) on ``party``'s cloud?
    Decided by ship-first and its escape (R20), and API exclusivity for ``workload``."""

    party: Name
    first_launch: bool = True
    product: Name | None = None
    workload: Name | None = None
    at: AwareDatetime | None = None


class CapabilityBody(Body):
    """The holder's answer on supporting a launch: the facts ship-first's escape reads."""

    can_support: bool
    chooses_to_support: bool
    committed_date: Annotated[str, StringConstraints(max_length=64)] | None = None
    at: AwareDatetime | None = None


class FromPlacementBody(Body):
    """Placement requests whose owed first refusals the desk opens (``at``: the instant of
    requests that carry none; default: now)."""

    requests: Annotated[list[PlacementRequest], Field(min_length=1, max_length=ROFR_LIST_PAGE_MAX)]
    at: AwareDatetime | None = None


class InstructionBody(Body):
    """A holder's standing instruction: match any notice at or below ``price_per_gpu_hour_max``
    for the listed GPU types and regions (empty: any), up to ``quantity_gpus_max`` GPUs
    (partially, where the contract allows partial exercise); decline the rest."""

    instruction_id: RequestId
    price_per_gpu_hour_max: Annotated[Decimal, Field(ge=0, max_digits=30)]
    gpu_types: Annotated[list[Label], Field(max_length=100)] = []
    regions: Annotated[list[Label], Field(max_length=100)] = []
    quantity_gpus_max: Annotated[int, Field(gt=0, le=10_000_000)]
    otherwise: Literal["decline", "ignore"] = "decline"
    at: AwareDatetime | None = None


def _non_cash(body: NonCashBody | None) -> NonCash | None:
    return NonCash(body.kind, body.cash_equivalent_usd) if body is not None else None


def terms_of(
    raw: dict[str, Any], params: RofrParams, non_cash: NonCashBody | None = None, *, field: str
) -> TermSet:
    """Typed terms; InputError naming the field and the term when a value does not fit."""
    try:
        return parse_terms(raw, params, _non_cash(non_cash))
    except ValueError as exc:
        raise InputError(f"{field}: {exc}") from exc


def notice_missing(terms: TermSet, offeror: str | None, params: RofrParams) -> tuple[str, ...]:
    """Required notice fields the notice lacks (``offeror`` counts as a field)."""
    present = {name for name, _ in terms}
    if offeror:
        present.add("offeror")
    return tuple(name for name in params.required_notice_fields if name not in present)


PROVENANCE_KEYS = frozenset({"instruction", "provenance", "placement"})
"""Keys of a stored event body that record where it came from (kept out of the event)."""


def provenance_steps(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The trace steps a stored body carries about its own origin (shown before the decision's
    own trace)."""
    steps: list[dict[str, Any]] = []
    instruction = body.get("instruction")
    if isinstance(instruction, dict):
        steps.append(instruction)
    extra = body.get("provenance")
    if isinstance(extra, list):
        steps.extend(step for step in extra if isinstance(step, dict))
    return steps


def event_from(event_type: str, body: dict[str, Any], params: RofrParams) -> Event:
    """The machine event of a stored ``(type, body)``; InputError when the body does not fit.

    ``instruction`` (the standing instruction that produced a holder response), ``provenance``
    (trace steps of where a body came from) and ``placement`` (the placement a request was
    opened from) are provenance, not part of the event."""
    fields = {key: value for key, value in body.items() if key not in PROVENANCE_KEYS}
    try:
        return _event_from(event_type, fields, params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in item['loc'])}: {item['msg']}" for item in exc.errors()
        )
        raise InputError(f"{event_type}: {problems}") from exc


def _event_from(event_type: str, body: dict[str, Any], params: RofrParams) -> Event:
    if event_type == CapacityRequest.TYPE:
        return CapacityRequest(
            category=body.get("category"),
            party=body.get("party"),
            quantity_gpus=body.get("quantity_gpus"),
        )
    if event_type in (TpOfferReceived.TYPE, TpTermsChanged.TYPE):
        offer = OfferBody.model_validate(
            {k: v for k, v in body.items() if k in OfferBody.model_fields}
        )
        terms = terms_of(offer.terms, params, offer.non_cash, field="terms")
        if event_type == TpTermsChanged.TYPE:
            return TpTermsChanged(party=offer.party, terms=terms)
        return TpOfferReceived(
            party=offer.party,
            terms=terms,
            bona_fide=BonaFide(**offer.bona_fide.model_dump()),
            package=offer.package,
        )
    if event_type == NoticeDelivered.TYPE:
        notice = NoticeBody.model_validate(body)
        terms = terms_of(notice.terms, params, notice.non_cash, field="terms")
        missing = notice_missing(terms, notice.offeror, params)
        return NoticeDelivered(
            terms=terms, offeror=notice.offeror, complete=not missing, missing=missing
        )
    if event_type == HolderResponse.TYPE:
        answer = ResponseBody.model_validate(body)
        holder_terms = terms_of(answer.terms, params, field="terms") if answer.terms else None
        return HolderResponse(
            kind=answer.kind,
            quantity_gpus=answer.quantity_gpus,
            terms=holder_terms,
            condition=answer.condition,
        )
    if event_type == TpContractRequest.TYPE:
        gate = GateBody.model_validate(body)
        gate_terms = (
            terms_of(gate.terms, params, gate.non_cash, field="terms") if gate.terms else None
        )
        return TpContractRequest(party=gate.party, terms=gate_terms, workload=gate.workload)
    if event_type == TpContractSigned.TYPE:
        signed = SignedBody.model_validate(body)
        if signed.party is None:
            raise InputError("party: a third-party signature names the third party")
        signed_terms = (
            terms_of(signed.terms, params, signed.non_cash, field="terms") if signed.terms else None
        )
        return TpContractSigned(party=signed.party, terms=signed_terms)
    if event_type == WorkloadPlacementRequest.TYPE:
        placement = PlacementGateBody.model_validate(body)
        return WorkloadPlacementRequest(
            party=placement.party,
            workload=placement.workload,
            customer_segment=placement.customer_segment,
        )
    if event_type == LaunchRequest.TYPE:
        launch = LaunchGateBody.model_validate(body)
        return LaunchRequest(
            party=launch.party,
            first_launch=launch.first_launch,
            product=launch.product,
            workload=launch.workload,
        )
    if event_type == HolderCapabilityResponse.TYPE:
        answer_ = CapabilityBody.model_validate(body)
        return HolderCapabilityResponse(
            can_support=answer_.can_support,
            chooses_to_support=answer_.chooses_to_support,
            committed_date=answer_.committed_date,
        )
    if event_type == HolderDefinitiveAgreementSigned.TYPE:
        return HolderDefinitiveAgreementSigned()
    if event_type == RequestWithdrawn.TYPE:
        return RequestWithdrawn()
    if event_type == TimerFired.TYPE:
        return TimerFired(
            Timer(
                kind=TimerKind(body["kind"]),
                deadline=datetime.fromisoformat(body["deadline"]),
                request_id=body["request_id"],
            )
        )
    raise InputError(f"unknown first-refusal event type {event_type!r}")


def iso(at: datetime) -> str:
    """ISO-8601 UTC ending in ``Z``."""
    text = at.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def decision_json(decision: Decision) -> dict[str, Any]:
    """A decision as JSON: structured fields (None left out), then the clause-level trace."""
    out: dict[str, Any] = {
        "t": iso(decision.t),
        "request_id": decision.request_id,
        "event": decision.event,
        "state": decision.state.value,
    }
    optional: dict[str, Any] = {
        "gate": decision.gate.value if decision.gate else None,
        "via": decision.via.value if decision.via else None,
        "note": decision.note,
        "needs_review": decision.needs_review or None,
        "deadline": iso(decision.deadline) if decision.deadline else None,
        "closing_deadline": iso(decision.closing_deadline) if decision.closing_deadline else None,
        "release_until": iso(decision.release_until) if decision.release_until else None,
        "cycle": decision.cycle,
        "baseline_price": str(decision.baseline_price)
        if decision.baseline_price is not None
        else None,
        "timely": decision.timely,
        "holder_quantity": decision.holder_quantity,
        "released_quantity": decision.released_quantity,
        "missing": list(decision.missing) if decision.missing is not None else None,
    }
    out.update({key: value for key, value in optional.items() if value is not None})
    out["reason"] = decision.explanation.reason
    out["trace"] = [step.to_json() for step in decision.trace]
    return out
