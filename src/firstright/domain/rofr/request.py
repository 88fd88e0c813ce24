"""The state of one first-refusal workflow: :class:`RofrRequest` (immutable; the machine returns
a new one per step) and the timers it has pending."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime

from firstright.domain.rofr.contract import RofrContract
from firstright.domain.rofr.events import Timer, TimerKind
from firstright.domain.rofr.other_clauses import CapabilityAnswer
from firstright.domain.rofr.states import IN_FLIGHT_STATES, RofrState
from firstright.domain.rofr.terms import TermSet


@dataclass(frozen=True, slots=True)
class Approval:
    """A third-party deal the gate approved: signing exactly this is compliant."""

    party: str
    terms: TermSet
    at: datetime

    @property
    def quantity_gpus(self) -> int:
        quantity = self.terms.quantity_gpus
        assert quantity is not None, "approved terms carry their quantity"
        return quantity


@dataclass(frozen=True, slots=True)
class Signature:
    party: str
    quantity_gpus: int
    at: datetime


@dataclass(frozen=True, slots=True)
class RofrRequest:
    """Everything the machine knows about one capacity request."""

    request_id: str
    contract: RofrContract
    category: str | None = None
    quantity_gpus: int | None = None
    state: RofrState = RofrState.INIT
    updated_at: datetime | None = None
    offer_party: str | None = None
    offer_terms: TermSet | None = None
    """The last bona fide third-party offer (what a notice would carry)."""
    baseline: TermSet | None = None
    """The terms of the last complete notice: the comparison baseline."""
    offeror: str | None = None
    """The offeror named in the last complete notice."""
    cycle: int = 0
    exercise_deadline: datetime | None = None
    closing_deadline: datetime | None = None
    release_start: datetime | None = None
    release_until: datetime | None = None
    holder_quantity: int = 0
    released_quantity: int | None = None
    needs_review: bool = False
    approvals: tuple[Approval, ...] = ()
    """Approved third-party deals of the current release."""
    signatures: tuple[Signature, ...] = ()
    """Compliant third-party signatures (or any, outside the right)."""
    violation: Signature | None = None
    holder_signed: bool = False
    capability: CapabilityAnswer | None = None
    terminate_at: datetime | None = None
    """When an amendment with ``in_flight: terminate`` ends the right for this request."""

    @property
    def full_quantity(self) -> int | None:
        """What the holder may take: the notified quantity (or the request's)."""
        if self.baseline is not None and self.baseline.quantity_gpus is not None:
            return self.baseline.quantity_gpus
        return self.quantity_gpus

    @property
    def signed_quantity(self) -> int:
        return sum(s.quantity_gpus for s in self.signatures)

    @property
    def available_quantity(self) -> int | None:
        """What a third party may still take after a release."""
        if self.released_quantity is None:
            return None
        return self.released_quantity - self.signed_quantity

    @property
    def named_offeror(self) -> str | None:
        return self.offeror or self.offer_party


def pending_timers(request: RofrRequest) -> tuple[Timer, ...]:
    """Every timer the request has pending, earliest first."""
    rid = request.request_id
    timers: list[Timer] = []
    state = request.state
    if state is RofrState.OFFER_OPEN:
        assert request.exercise_deadline is not None
        timers.append(Timer(TimerKind.EXERCISE, request.exercise_deadline, rid))
    elif state is RofrState.EXERCISED:
        assert request.closing_deadline is not None
        timers.append(Timer(TimerKind.HOLDER_CLOSING, request.closing_deadline, rid))
    elif state is RofrState.RELEASED or (
        state is RofrState.PARTIALLY_EXERCISED and (request.available_quantity or 0) > 0
    ):
        assert request.release_until is not None
        timers.append(Timer(TimerKind.RELEASE, request.release_until, rid))
    if request.terminate_at is not None and state in IN_FLIGHT_STATES:
        timers.append(Timer(TimerKind.RIGHT_TERMINATED, request.terminate_at, rid))
    return tuple(sorted(timers, key=lambda timer: timer.deadline))


_FIELDS = tuple(f.name for f in fields(RofrRequest))


def evolve(request: RofrRequest, **changes: object) -> RofrRequest:
    """``dataclasses.replace`` for the machine's hot path (no ``__init__`` round trip)."""
    assert all(name in _FIELDS for name in changes), sorted(set(changes) - set(_FIELDS))
    new = object.__new__(RofrRequest)
    for name in _FIELDS:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(request, name))
    return new
