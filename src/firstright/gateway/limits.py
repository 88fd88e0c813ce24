"""Gateway limits and per-backend load signals.

Every limit of the request path is named here (units last); the defaults can be changed in the
gateway configuration's ``limits`` section. ``BackendLoad`` holds the live load of one backend:
requests in flight and a tokens-per-minute budget (a token bucket refilled continuously).
"""

from __future__ import annotations

REQUEST_BODY_BYTES_MAX = 8 * 1024 * 1024
MAX_TOKENS_MAX = 1_000_000
QUEUE_DEPTH_MAX = 4_096
"""Requests the gateway holds at once (all routes); beyond it new requests get a 503."""
ATTEMPTS_MAX = 3
"""Upstream attempts per request (the first try plus fallbacks and retries)."""
RETRY_AFTER_S_MAX = 300.0
CONNECT_TIMEOUT_S = 5.0
FIRST_BYTE_TIMEOUT_S = 120.0
READ_IDLE_TIMEOUT_S = 120.0
UPSTREAM_IDLE_CONNECTIONS_MAX = 256
STREAM_BUFFER_BYTES_MAX = 1024 * 1024
"""Upstream bytes buffered for a slow client before reading from the upstream pauses."""
USAGE_QUEUE_RECORDS_MAX = 1_000_000
USAGE_FLUSH_INTERVAL_S = 0.2
USAGE_BATCH_RECORDS_MAX = 500
DEADLINE_MS_MAX = 3_600_000
API_KEYS_MAX = 100_000
BACKENDS_MAX = 10_000


class BackendLoad:
    """Live load of one backend: in-flight count and a tokens-per-minute bucket.

    ``now_s`` is a monotonic time in seconds passed by the caller.
    """

    __slots__ = ("in_flight", "in_flight_max", "tokens", "tokens_per_minute", "updated_s")

    def __init__(self, in_flight_max: int | None, tokens_per_minute: int | None) -> None:
        assert in_flight_max is None or in_flight_max > 0
        assert tokens_per_minute is None or tokens_per_minute > 0
        self.in_flight = 0
        self.in_flight_max = in_flight_max
        self.tokens_per_minute = tokens_per_minute
        self.tokens = float(tokens_per_minute or 0)
        self.updated_s = 0.0

    def saturated(self) -> bool:
        return self.in_flight_max is not None and self.in_flight >= self.in_flight_max

    def tokens_exhausted(self, now_s: float) -> bool:
        """True when the tokens-per-minute budget is used up."""
        if self.tokens_per_minute is None:
            return False
        self._refill(now_s)
        return self.tokens <= 0.0

    def spend_tokens(self, tokens: int, now_s: float) -> None:
        if self.tokens_per_minute is None or tokens <= 0:
            return
        self._refill(now_s)
        self.tokens -= tokens

    def _refill(self, now_s: float) -> None:
        assert self.tokens_per_minute is not None
        elapsed = now_s - self.updated_s
        if elapsed > 0:
            self.tokens = min(
                float(self.tokens_per_minute), self.tokens + elapsed * self.tokens_per_minute / 60
            )
            self.updated_s = now_s
