"""Metering: exactly one usage record per model request, written in batches off the hot path.

The request handler appends one ``Outcome`` (a plain named tuple, no validation, no clock reads
beyond the two it already made) to a deque. A background thread wakes every
``USAGE_FLUSH_INTERVAL_S``, turns outcomes into ``UsageRecord`` s (prices in exact decimals),
writes them with the sink (``UsageStore.insert_many``), updates the metrics and writes the
canonical log lines. ``close()`` drains everything before returning, so a graceful shutdown
(SIGTERM) stores one record per answered request. A failing store is retried with back-off;
records wait in memory (at most ``USAGE_QUEUE_RECORDS_MAX``, then the oldest are dropped and
counted as lost).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple, TextIO

from pydantic import ValidationError
from sqlalchemy.engine import Engine

from firstright.adapters.usage_store import UsageStore
from firstright.domain.money import round_to_micros
from firstright.domain.usage import UsageRecord
from firstright.errors import FirstrightError
from firstright.gateway.backends import Backend
from firstright.gateway.limits import (
    USAGE_BATCH_RECORDS_MAX,
    USAGE_FLUSH_INTERVAL_S,
    USAGE_QUEUE_RECORDS_MAX,
)
from firstright.gateway.metrics import GatewayMetrics
from firstright.limits import USAGE_CLAUSE_IDS_MAX, USAGE_QUANTITY_MAX, USAGE_REFUSALS_MAX

log = logging.getLogger("firstright.gateway")

LABEL_CHARS_MAX = 200
MICROS_PER_MTOK = Decimal(1_000_000)
RETRY_BACKOFF_S_MAX = 5.0
CLOSE_ATTEMPTS = 5

UsageSink = Callable[[Sequence[UsageRecord]], object]


class Outcome(NamedTuple):
    """What the hot path knows when a request ends."""

    record_id: str
    started_s: float
    """Wall-clock start (UNIX seconds)."""
    endpoint: str
    tenant: str | None
    party: str
    channel: str | None
    product: str | None
    backend: Backend | None
    model: str | None
    stream: bool
    status: int
    input_tokens: int
    output_tokens: int
    latency_ms: float
    upstream_ms: float
    partial: bool
    attempts: int
    spill: bool
    refusals: list[str] | None
    clause_ids: tuple[str, ...]
    error_code: str | None


class Meter:
    """The batcher: ``record`` on the event loop, everything else on its own thread."""

    def __init__(
        self,
        sink: UsageSink,
        metrics: GatewayMetrics,
        log_stream: TextIO | None,
        flush_interval_s: float = USAGE_FLUSH_INTERVAL_S,
    ) -> None:
        self._sink = sink
        self._metrics = metrics
        self._log_stream = log_stream
        self._interval_s = flush_interval_s
        self._queue: deque[Outcome] = deque()
        self._unsent: list[UsageRecord] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="firstright-meter", daemon=True)
        self._backoff_s = 0.0
        self.stored = 0
        self.lost = 0

    def start(self) -> None:
        self._thread.start()

    def record(self, outcome: Outcome) -> None:
        self._queue.append(outcome)

    def close(self) -> None:
        """Stop the thread and write everything recorded so far (blocks; a failing store is
        tried ``CLOSE_ATTEMPTS`` times before the rest is counted as lost)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        for attempt in range(CLOSE_ATTEMPTS):
            if self._drain():
                return
            time.sleep(min(RETRY_BACKOFF_S_MAX, 0.1 * 2**attempt))
        log.error("%d usage records could not be stored", len(self._unsent) + len(self._queue))
        self.lost += len(self._unsent) + len(self._queue)
        self._unsent = []
        self._queue.clear()

    def flush(self) -> bool:
        """Write everything recorded so far now; ``False`` when the store failed (the records
        are kept for the next try)."""
        return self._drain()

    # -- background ------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s + self._backoff_s):
            try:
                self._drain()
            except Exception:  # keep metering alive whatever a record does
                log.exception("metering batch failed")

    def _drain(self) -> bool:
        with self._lock:
            queue = self._queue
            while queue or self._unsent:
                batch: list[Outcome] = []
                while queue and len(batch) < USAGE_BATCH_RECORDS_MAX:
                    batch.append(queue.popleft())
                records = self._unsent + [self._to_record(o) for o in batch]
                self._unsent = []
                self._metrics.observe_batch(batch)
                self._write_log(batch)
                try:
                    self._sink(records)
                except FirstrightError as error:
                    self._keep(records)
                    self._backoff_s = min(RETRY_BACKOFF_S_MAX, self._backoff_s * 2 or 0.1)
                    log.error("storing %d usage records failed: %s", len(records), error.message)
                    return False
                self._backoff_s = 0.0
                self.stored += len(records)
                self._metrics.records_stored(len(records))
            return True

    def _keep(self, records: list[UsageRecord]) -> None:
        overflow = len(records) - USAGE_QUEUE_RECORDS_MAX
        if overflow > 0:
            self.lost += overflow
            records = records[overflow:]
        self._unsent = records

    def _to_record(self, o: Outcome) -> UsageRecord:
        backend = o.backend
        amount_micros = 0
        if backend is not None and o.model is not None:
            price = backend.price_of(o.model)
            if price is not None and (o.input_tokens or o.output_tokens):
                amount_micros = round_to_micros(
                    (price[0] * o.input_tokens + price[1] * o.output_tokens) / MICROS_PER_MTOK
                )
        fields: dict[str, Any] = {
            "record_id": o.record_id,
            "source": "gateway",
            "occurred_at": datetime.fromtimestamp(o.started_s, UTC),
            "party": o.party,
            "counterparty": backend.operator if backend is not None else None,
            "tenant": o.tenant,
            "channel": o.channel,
            "product": o.product,
            "provider": backend.provider if backend is not None else None,
            "backend": backend.id if backend is not None else None,
            "operator": backend.operator if backend is not None else None,
            "vendor": backend.vendor if backend is not None else None,
            "model": o.model[:LABEL_CHARS_MAX] if o.model else None,
            "input_tokens": o.input_tokens,
            "output_tokens": o.output_tokens,
            "amount_micros": amount_micros,
            "latency_ms": int(o.latency_ms),
            "status": o.status,
            "partial": o.partial,
            "refusals": [r[:LABEL_CHARS_MAX] for r in (o.refusals or ())][:USAGE_REFUSALS_MAX],
            "clause_ids": list(o.clause_ids[:USAGE_CLAUSE_IDS_MAX]),
        }
        if _trusted(fields):
            # every value comes from validated configuration or from this module: skip the
            # validators (the hot path's share of the batcher's CPU)
            return UsageRecord.model_construct(**fields)
        try:
            return UsageRecord.model_validate(fields)
        except ValidationError as exc:
            # e.g. an operator id that is not a party id: keep the record, drop the bad labels
            log.warning("usage record %s: %s", o.record_id, exc.errors()[0]["msg"])
            for key in ("counterparty", "operator", "vendor", "provider", "backend", "model"):
                fields[key] = None
            return UsageRecord.model_validate(fields)

    def _write_log(self, batch: list[Outcome]) -> None:
        stream = self._log_stream
        if stream is None or not batch:
            return
        stream.write("".join(canonical_line(o) for o in batch))
        stream.flush()


_PARTY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_RECORD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")


def _trusted(fields: dict[str, Any]) -> bool:
    """Whether ``fields`` already satisfy ``UsageRecord`` (cheap checks of the values that
    are not generated here)."""
    counterparty = fields["counterparty"]
    status = fields["status"]
    return (
        _RECORD_ID.match(fields["record_id"]) is not None
        and _PARTY.match(fields["party"]) is not None
        and (counterparty is None or _PARTY.match(counterparty) is not None)
        and all(
            value is None or (isinstance(value, str) and 0 < len(value) <= LABEL_CHARS_MAX)
            for value in (
                fields["tenant"],
                fields["channel"],
                fields["product"],
                fields["provider"],
                fields["backend"],
                fields["operator"],
                fields["vendor"],
                fields["model"],
            )
        )
        and 0 <= fields["latency_ms"] <= 86_400_000
        and 100 <= status <= 599
        and 0 <= fields["input_tokens"] <= USAGE_QUANTITY_MAX
        and 0 <= fields["output_tokens"] <= USAGE_QUANTITY_MAX
        and abs(fields["amount_micros"]) <= USAGE_QUANTITY_MAX
    )


def canonical_line(o: Outcome) -> str:
    """One logfmt line per request (the canonical log line)."""
    backend = o.backend.id if o.backend is not None else "-"
    refusals = ",".join(o.refusals) if o.refusals else "-"
    return (
        f"request_id={o.record_id} endpoint={o.endpoint} status={o.status}"
        f" tenant={o.tenant or '-'} party={o.party} channel={o.channel or '-'}"
        f" model={_quote(o.model)} backend={backend} stream={'true' if o.stream else 'false'}"
        f" latency_ms={o.latency_ms:.2f} upstream_ms={o.upstream_ms:.2f}"
        f" input_tokens={o.input_tokens} output_tokens={o.output_tokens}"
        f" attempts={o.attempts} spill={'true' if o.spill else 'false'}"
        f" partial={'true' if o.partial else 'false'} refusals={refusals}"
        f" clauses={','.join(o.clause_ids) or '-'} error={o.error_code or '-'}\n"
    )


def _quote(value: str | None) -> str:
    if not value:
        return "-"
    if value.isascii() and value.isprintable() and " " not in value and '"' not in value:
        return value[:LABEL_CHARS_MAX]
    return '"' + value[:LABEL_CHARS_MAX].replace("\\", "\\\\").replace('"', '\\"') + '"'


def store_sink(engine: Engine) -> UsageSink:
    """A sink writing to the usage store of ``engine``."""
    store = UsageStore(engine)

    def write(records: Sequence[UsageRecord]) -> object:
        return store.insert_many(list(records))

    return write
