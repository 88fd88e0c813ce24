"""Alerts of the first-refusal desk: a log line and a webhook POST per alert.

    alerter = Alerter(webhook_url="https://ops.example/hooks/rofr")
    alerter.emit("state_changed", {"request_id": "cr-1", "state": "OFFER_OPEN", ...})
    alerter.close(timeout_s=5)    # deliver what is queued (bounded), then stop

``emit`` never blocks and never fails the caller: it writes one log line, then queues the alert
for a worker thread that POSTs it as JSON ``{"kind": ..., "alert_id": ..., **payload}`` with
retries and exponential backoff (``ALERT_ATTEMPTS_MAX`` attempts, 0.5 s doubling, at most 30 s).
A full queue drops the alert with a warning (the log line is still written). ``alert_id`` is
deterministic (kind + request + what happened) so receivers can de-duplicate retries.

Kinds: ``notice_received``, ``state_changed``, ``deadline_approaching``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx

from firstright.limits import ALERT_ATTEMPTS_MAX, ALERT_QUEUE_DEPTH_MAX

log = logging.getLogger("firstright.alerts")

BACKOFF_S_FIRST = 0.5
BACKOFF_S_MAX = 30.0
WEBHOOK_TIMEOUT_S = 10.0

_STOP = object()


class Alerter:
    """Log + webhook alerts; thread-safe; one worker thread when a webhook is configured."""

    def __init__(
        self,
        webhook_url: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        attempts_max: int = ALERT_ATTEMPTS_MAX,
        backoff_s_first: float = BACKOFF_S_FIRST,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        assert attempts_max >= 1
        if webhook_url is not None and not webhook_url.startswith(("http://", "https://")):
            raise ValueError(f"alert webhook must be an http(s) URL, got {webhook_url!r}")
        self.webhook_url = webhook_url
        self.attempts_max = attempts_max
        self.backoff_s_first = backoff_s_first
        self._sleep = sleep
        self._queue: queue.Queue[object] = queue.Queue(maxsize=ALERT_QUEUE_DEPTH_MAX)
        self._transport = transport
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.delivered = 0
        self.failed = 0
        self.dropped = 0

    def emit(self, kind: str, payload: Mapping[str, Any]) -> None:
        """Log the alert and queue it for the webhook; never raises, never waits."""
        alert_id = ":".join(
            str(payload.get(name, ""))
            for name in ("request_id", "state", "seq", "deadline", "lead_s")
        )
        body = {"kind": kind, "alert_id": f"{kind}:{alert_id}", **payload}
        fields = " ".join(f"{k}={v}" for k, v in body.items() if not isinstance(v, dict | list))
        log.info("alert %s", fields)
        if self.webhook_url is None:
            return
        self._ensure_worker()
        try:
            self._queue.put_nowait(body)
        except queue.Full:
            self.dropped += 1
            log.warning(
                "alert queue full (%d); dropped %s", ALERT_QUEUE_DEPTH_MAX, body["alert_id"]
            )

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._work, name="firstright-alerts", daemon=True
                )
                self._thread.start()

    def _work(self) -> None:
        assert self.webhook_url is not None
        with httpx.Client(transport=self._transport, timeout=WEBHOOK_TIMEOUT_S) as client:
            while True:
                item = self._queue.get()
                try:
                    if item is _STOP:
                        return
                    assert isinstance(item, dict)
                    self._deliver(client, item)
                finally:
                    self._queue.task_done()

    def _deliver(self, client: httpx.Client, body: dict[str, Any]) -> None:
        assert self.webhook_url is not None
        delay_s = self.backoff_s_first
        for attempt in range(1, self.attempts_max + 1):
            try:
                response = client.post(self.webhook_url, json=body)
                if response.status_code < 500 and response.status_code != 429:
                    if response.status_code >= 400:
                        self.failed += 1
                        log.warning(
                            "alert %s refused by webhook: HTTP %d",
                            body["alert_id"],
                            response.status_code,
                        )
                        return
                    self.delivered += 1
                    return
                reason = f"HTTP {response.status_code}"
            except httpx.HTTPError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            if attempt == self.attempts_max:
                break
            log.info(
                "alert %s attempt %d failed (%s); retry in %.1fs",
                body["alert_id"],
                attempt,
                reason,
                delay_s,
            )
            self._sleep(delay_s)
            delay_s = min(delay_s * 2, BACKOFF_S_MAX)
        self.failed += 1
        log.warning("alert %s not delivered after %d attempts", body["alert_id"], self.attempts_max)

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued, waiting at most ``timeout_s``, then stop the worker."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            return
        thread.join(timeout_s)
