"""Errors of the first-refusal machine.

ConflictError (firstright.errors)
└── RofrTransitionError      the (state, event) pair is not a transition of the machine
    ├── EventOutOfOrder      ``now`` is before the last event the request saw
    └── TimerOverdue         a timer due before ``now`` has not been fired first
"""

from __future__ import annotations

from firstright.errors import ConflictError


class RofrTransitionError(ConflictError):
    code = "rofr_transition_refused"

    def __init__(self, message: str, *, request_id: str, state: str, event: str) -> None:
        super().__init__(f"request {request_id}: {message} (state {state}, event {event})")
        self.request_id = request_id
        self.state = state
        self.event = event


class EventOutOfOrder(RofrTransitionError):
    code = "rofr_event_out_of_order"


class TimerOverdue(RofrTransitionError):
    code = "rofr_timer_overdue"
