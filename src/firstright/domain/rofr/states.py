"""The states of one first-refusal workflow (specs/ROFR.md, "States") and the gate answers."""

from __future__ import annotations

from enum import StrEnum


class RofrState(StrEnum):
    INIT = "INIT"
    NO_ROFR = "NO_ROFR"
    NOT_TRIGGERED = "NOT_TRIGGERED"
    TRIGGERED = "TRIGGERED"
    NOTICE_INCOMPLETE = "NOTICE_INCOMPLETE"
    OFFER_OPEN = "OFFER_OPEN"
    EXERCISED = "EXERCISED"
    PARTIALLY_EXERCISED = "PARTIALLY_EXERCISED"
    RELEASED = "RELEASED"
    REOFFER_REQUIRED = "REOFFER_REQUIRED"
    CLOSED_HOLDER = "CLOSED_HOLDER"
    CLOSED_THIRD_PARTY = "CLOSED_THIRD_PARTY"
    WITHDRAWN = "WITHDRAWN"
    VIOLATION = "VIOLATION"


class Gate(StrEnum):
    """The broker's answer to a gate event (a third-party contract, a placement, a launch)."""

    APPROVE = "APPROVE"
    BLOCK = "BLOCK"


TERMINAL_STATES = frozenset(
    {
        RofrState.CLOSED_HOLDER,
        RofrState.CLOSED_THIRD_PARTY,
        RofrState.WITHDRAWN,
        RofrState.VIOLATION,
    }
)
"""No event changes these states any more."""

NOTICE_STATES = frozenset(
    {
        RofrState.TRIGGERED,
        RofrState.NOTICE_INCOMPLETE,
        RofrState.REOFFER_REQUIRED,
        RofrState.RELEASED,
    }
)
"""States in which a notice starts (or restarts) the process (transitions 4 and 5)."""

RELEASE_STATES = frozenset({RofrState.RELEASED, RofrState.PARTIALLY_EXERCISED})
"""States in which the owner may contract with a third party, inside the release window."""

BLOCKING_STATES = frozenset(
    {
        RofrState.NOT_TRIGGERED,
        RofrState.TRIGGERED,
        RofrState.NOTICE_INCOMPLETE,
        RofrState.OFFER_OPEN,
        RofrState.EXERCISED,
        RofrState.REOFFER_REQUIRED,
    }
)
"""States in which third-party contracting is blocked (transition 12)."""

IN_FLIGHT_STATES = frozenset(
    {
        RofrState.TRIGGERED,
        RofrState.NOTICE_INCOMPLETE,
        RofrState.OFFER_OPEN,
        RofrState.EXERCISED,
        RofrState.PARTIALLY_EXERCISED,
        RofrState.RELEASED,
        RofrState.REOFFER_REQUIRED,
    }
)
"""Triggered and not finished: the states a contract amendment's ``in_flight`` policy governs."""


class Outcome(StrEnum):
    """What the final state means for the request (specs/ROFR.md, outcome table)."""

    ALLOCATE_HOLDER = "ALLOCATE_HOLDER"
    ALLOCATE_THIRD_PARTY = "ALLOCATE_THIRD_PARTY"
    SPLIT = "SPLIT"
    REOFFER_REQUIRED = "REOFFER_REQUIRED"
    VIOLATION = "VIOLATION"
    NO_ROFR = "NO_ROFR"
    NOT_TRIGGERED = "NOT_TRIGGERED"
    PENDING = "PENDING"


OUTCOME_OF_STATE: dict[RofrState, Outcome] = {
    RofrState.EXERCISED: Outcome.ALLOCATE_HOLDER,
    RofrState.CLOSED_HOLDER: Outcome.ALLOCATE_HOLDER,
    RofrState.RELEASED: Outcome.ALLOCATE_THIRD_PARTY,
    RofrState.CLOSED_THIRD_PARTY: Outcome.ALLOCATE_THIRD_PARTY,
    RofrState.PARTIALLY_EXERCISED: Outcome.SPLIT,
    RofrState.REOFFER_REQUIRED: Outcome.REOFFER_REQUIRED,
    RofrState.WITHDRAWN: Outcome.REOFFER_REQUIRED,
    RofrState.VIOLATION: Outcome.VIOLATION,
    RofrState.NO_ROFR: Outcome.NO_ROFR,
    RofrState.NOT_TRIGGERED: Outcome.NOT_TRIGGERED,
    RofrState.INIT: Outcome.PENDING,
    RofrState.TRIGGERED: Outcome.PENDING,
    RofrState.NOTICE_INCOMPLETE: Outcome.PENDING,
    RofrState.OFFER_OPEN: Outcome.PENDING,
}
assert set(OUTCOME_OF_STATE) == set(RofrState), "every state has an outcome"
