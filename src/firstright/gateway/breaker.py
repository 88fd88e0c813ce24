"""Circuit breaker per backend: closed → open → half-open → closed.

    closed     requests flow; ``failures_max`` consecutive failures open the circuit
    open       requests are refused (reason ``circuit_open``) until ``open_s`` has passed
    half_open  one probe request at a time is let through; success closes the circuit,
               failure opens it again for another ``open_s``

A 429 with Retry-After is not a failure of the backend's health but a signal to wait:
``back_off(until_s)`` refuses requests until then without touching the failure count.
Times are monotonic seconds passed by the caller (``now_s``); the breaker never reads a clock.
"""

from __future__ import annotations

from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


class CircuitBreaker:
    __slots__ = (
        "back_off_until_s",
        "failures",
        "failures_max",
        "open_s",
        "opened_at_s",
        "probe_in_flight",
        "state",
    )

    def __init__(self, failures_max: int = 5, open_s: float = 10.0) -> None:
        assert failures_max >= 1 and open_s > 0
        self.failures_max = failures_max
        self.open_s = open_s
        self.state: BreakerState = "closed"
        self.failures = 0
        self.opened_at_s = 0.0
        self.probe_in_flight = False
        self.back_off_until_s = 0.0

    def refusal(self, now_s: float) -> str | None:
        """Why a request may not go to this backend now (``None``: it may). Taking a half-open
        probe slot happens here, so call it once per attempt and report the outcome."""
        if now_s < self.back_off_until_s:
            return "rate_limited"
        if self.state == "closed":
            return None
        if self.state == "open":
            if now_s - self.opened_at_s < self.open_s:
                return "circuit_open"
            self.state = "half_open"
            self.probe_in_flight = False
        if self.probe_in_flight:
            return "circuit_open"
        self.probe_in_flight = True
        return None

    def succeeded(self) -> None:
        self.failures = 0
        self.probe_in_flight = False
        self.state = "closed"

    def failed(self, now_s: float) -> None:
        self.probe_in_flight = False
        if self.state == "half_open":
            self._open(now_s)
            return
        self.failures += 1
        if self.failures >= self.failures_max:
            self._open(now_s)

    def released(self) -> None:
        """The attempt ended without telling anything about health (e.g. the client left)."""
        self.probe_in_flight = False

    def back_off(self, until_s: float) -> None:
        self.back_off_until_s = max(self.back_off_until_s, until_s)

    def _open(self, now_s: float) -> None:
        self.state = "open"
        self.opened_at_s = now_s
        self.failures = 0
