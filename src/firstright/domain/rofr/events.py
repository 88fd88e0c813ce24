"""The closed vocabulary of events a first-refusal workflow understands (specs/ROFR.md).

An event says what happened; the instant it happened is the ``now`` passed to
:func:`firstright.domain.rofr.machine.step` with it. ``TYPE`` is the wire name used in case
files and by the desk's API. :class:`TimerFired` is the one internal event: the caller feeds it
back when a timer from :func:`~firstright.domain.rofr.machine.next_timer` comes due.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from firstright.domain.rofr.contract import RofrContract
from firstright.domain.rofr.terms import TermSet


@dataclass(frozen=True, slots=True)
class BonaFide:
    """R1: a bona fide offer is written, signed, states the material terms, at arm's length and
    in good faith. Each flag is what the offer record says; all must hold."""

    written: bool = True
    signed: bool = True
    material_terms_complete: bool = True
    arms_length: bool = True
    good_faith: bool = True

    def failures(self) -> tuple[str, ...]:
        checks = {
            "not written": self.written,
            "unsigned": self.signed,
            "material terms incomplete": self.material_terms_complete,
            "not at arm's length": self.arms_length,
            "not in good faith": self.good_faith,
        }
        return tuple(name for name, ok in checks.items() if not ok)


class ResponseKind(StrEnum):
    ACCEPT = "accept"
    DECLINE = "decline"
    WAIVE = "waive"
    COUNTER = "counter"
    CONDITIONAL_ACCEPT = "conditional_accept"


@dataclass(frozen=True, slots=True)
class CapacityRequest:
    TYPE: ClassVar[str] = "capacity_request"
    category: str | None = None
    party: str | None = None
    quantity_gpus: int | None = None


@dataclass(frozen=True, slots=True)
class TpOfferReceived:
    TYPE: ClassVar[str] = "tp_offer_received"
    party: str
    terms: TermSet | None
    """None for a package whose covered part has no price yet."""
    bona_fide: BonaFide = BonaFide()
    package: bool = False


@dataclass(frozen=True, slots=True)
class NoticeDelivered:
    TYPE: ClassVar[str] = "notice_delivered"
    terms: TermSet | None
    offeror: str | None
    complete: bool
    missing: tuple[str, ...] = ()
    sent_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class HolderResponse:
    TYPE: ClassVar[str] = "holder_response"
    kind: ResponseKind
    quantity_gpus: int | None = None
    terms: TermSet | None = None
    """The holder's terms (None: the notified terms)."""
    condition: str | None = None


@dataclass(frozen=True, slots=True)
class HolderDefinitiveAgreementSigned:
    TYPE: ClassVar[str] = "holder_definitive_agreement_signed"


@dataclass(frozen=True, slots=True)
class TpTermsChanged:
    TYPE: ClassVar[str] = "tp_terms_changed"
    party: str
    terms: TermSet


@dataclass(frozen=True, slots=True)
class TpContractRequest:
    """Gate: may the owner contract with ``party`` on ``terms`` now?"""

    TYPE: ClassVar[str] = "tp_contract_request"
    party: str
    terms: TermSet | None = None
    """None: the notified terms."""
    workload: str | None = None


@dataclass(frozen=True, slots=True)
class TpContractSigned:
    TYPE: ClassVar[str] = "tp_contract_signed"
    party: str
    terms: TermSet | None = None


@dataclass(frozen=True, slots=True)
class RequestWithdrawn:
    TYPE: ClassVar[str] = "request_withdrawn"


@dataclass(frozen=True, slots=True)
class ContractAmended:
    """The contract now reads ``contract`` (the whole amended clause set, not a patch)."""

    TYPE: ClassVar[str] = "contract_amended"
    contract: RofrContract


@dataclass(frozen=True, slots=True)
class WorkloadPlacementRequest:
    """Gate: may ``workload`` run on ``party``'s cloud? Decided by the other clauses (R19)."""

    TYPE: ClassVar[str] = "workload_placement_request"
    party: str
    workload: str
    customer_segment: str | None = None


@dataclass(frozen=True, slots=True)
class LaunchRequest:
    """Gate: may a product launch (first) on ``party``'s cloud? Decided by ship-first (R20)."""

    TYPE: ClassVar[str] = "launch_request"
    party: str
    first_launch: bool = True
    product: str | None = None
    workload: str | None = None


@dataclass(frozen=True, slots=True)
class HolderCapabilityResponse:
    TYPE: ClassVar[str] = "holder_capability_response"
    can_support: bool
    chooses_to_support: bool
    committed_date: str | None = None


class TimerKind(StrEnum):
    EXERCISE = "exercise"
    RELEASE = "release"
    HOLDER_CLOSING = "holder_closing"
    RIGHT_TERMINATED = "right_terminated"


@dataclass(frozen=True, slots=True)
class Timer:
    """A deadline the caller must watch. It fires just after ``deadline``: an event stamped
    exactly ``deadline`` is processed first."""

    kind: TimerKind
    deadline: datetime
    request_id: str


@dataclass(frozen=True, slots=True)
class TimerFired:
    TYPE: ClassVar[str] = "timer"
    timer: Timer


Event = (
    CapacityRequest
    | TpOfferReceived
    | NoticeDelivered
    | HolderResponse
    | HolderDefinitiveAgreementSigned
    | TpTermsChanged
    | TpContractRequest
    | TpContractSigned
    | RequestWithdrawn
    | ContractAmended
    | WorkloadPlacementRequest
    | LaunchRequest
    | HolderCapabilityResponse
    | TimerFired
)

EVENT_TYPES: tuple[str, ...] = (
    CapacityRequest.TYPE,
    TpOfferReceived.TYPE,
    NoticeDelivered.TYPE,
    HolderResponse.TYPE,
    HolderDefinitiveAgreementSigned.TYPE,
    TpTermsChanged.TYPE,
    TpContractRequest.TYPE,
    TpContractSigned.TYPE,
    RequestWithdrawn.TYPE,
    ContractAmended.TYPE,
    WorkloadPlacementRequest.TYPE,
    LaunchRequest.TYPE,
    HolderCapabilityResponse.TYPE,
)
"""The wire names of the closed vocabulary (without the internal ``timer``)."""
