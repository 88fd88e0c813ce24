"""What the machine answers: a :class:`Decision` per event or timer, with its explanation.

A decision is structured (state, gate, timers, cycle, quantities) so a test or an auditor can
compare it field by field, and explained (clause, rule ids, inputs, comparison, result, reason)
so a person can follow it. ``counterfactual`` tells the holder what would have kept the capacity
("accept by 2025-03-13T12:00:00Z at <= 2.50 USD/GPU-h for 100000 GPUs").

Note codes (``note`` starts with one of them, details may follow in parentheses) are listed in
:class:`Note`; the ones from specs/ROFR.md keep their spelling there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from firstright.domain.rofr.states import Gate, RofrState


class Via(StrEnum):
    """Which timer made a decision (absent for decisions made by an event)."""

    EXERCISE_EXPIRED = "timer_exercise_expired"
    RELEASE_EXPIRED = "timer_release_expired"
    HOLDER_CLOSING_EXPIRED = "timer_holder_closing_expired"
    RIGHT_TERMINATED = "timer_right_terminated"


class Note(StrEnum):
    NONCONFORMING_RESPONSE_RECORDED = "NONCONFORMING_RESPONSE_RECORDED"
    REOFFER_REQUIRED_FOR_THESE_TERMS = "REOFFER_REQUIRED_FOR_THESE_TERMS"
    LATE_RESPONSE_IGNORED = "LATE_RESPONSE_IGNORED"
    NOTICE_INEFFECTIVE_NO_BONA_FIDE_OFFER = "NOTICE_INEFFECTIVE_NO_BONA_FIDE_OFFER"
    CHANGE_WITHIN_TOLERANCE = "CHANGE_WITHIN_TOLERANCE"
    OFFER_RECORDED = "OFFER_RECORDED"
    OFFER_NOT_BONA_FIDE = "OFFER_NOT_BONA_FIDE"
    NOTICE_IGNORED = "NOTICE_IGNORED"
    REQUEST_RECORDED = "REQUEST_RECORDED"
    HOLDER_SIGNATURE_WITHOUT_EXERCISE = "HOLDER_SIGNATURE_WITHOUT_EXERCISE"
    HOLDER_SIGNED_PART = "HOLDER_SIGNED_PART"
    THIRD_PARTY_SIGNED_REMAINDER = "THIRD_PARTY_SIGNED_REMAINDER"
    SIGNATURE_RECORDED = "SIGNATURE_RECORDED"
    REQUEST_CLOSED = "REQUEST_CLOSED"
    AMENDMENT_APPLIED = "AMENDMENT_APPLIED"
    AMENDMENT_NOT_APPLIED_IN_FLIGHT = "AMENDMENT_NOT_APPLIED_IN_FLIGHT"
    CAPABILITY_RECORDED = "CAPABILITY_RECORDED"


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why one clause decided what it did."""

    clause_id: str
    rule_ids: tuple[str, ...]
    result: str
    reason: str
    inputs: Mapping[str, str] = field(default_factory=dict)
    comparison: tuple[str, ...] = ()
    counterfactual: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "clause": self.clause_id,
            "rule": list(self.rule_ids),
            "result": self.result,
            "reason": self.reason,
            "inputs": dict(self.inputs),
        }
        if self.comparison:
            out["comparison"] = list(self.comparison)
        if self.counterfactual:
            out["counterfactual"] = self.counterfactual
        return out


@dataclass(frozen=True, slots=True)
class Decision:
    """The answer to one event (or one timer) for one request."""

    t: datetime
    request_id: str
    state: RofrState
    explanation: Explanation
    gate: Gate | None = None
    via: Via | None = None
    note: str | None = None
    needs_review: bool = False
    deadline: datetime | None = None
    closing_deadline: datetime | None = None
    release_until: datetime | None = None
    cycle: int | None = None
    baseline_price: Decimal | None = None
    timely: bool | None = None
    holder_quantity: int | None = None
    released_quantity: int | None = None
    missing: tuple[str, ...] | None = None
    event: str = ""
    """The event type (or ``timer``) that produced this decision."""
    also: tuple[Explanation, ...] = ()
    """Other clauses consulted for a gate (API exclusivity, ship-first), in order."""

    def __post_init__(self) -> None:
        assert self.t.tzinfo is not None, "decision instants are aware"

    @property
    def note_code(self) -> str | None:
        return self.note.split(" ", 1)[0] if self.note else None

    @property
    def trace(self) -> tuple[Explanation, ...]:
        """The clause-level trace: the first-refusal clause first, then the others consulted."""
        return (self.explanation, *self.also)
