"""Prometheus metrics of the gateway, kept as plain counters updated in batches by the metering
thread (no lock or object per request on the hot path) and exposed by a collector at scrape time.

    firstright_gateway_requests_total{endpoint,status}
    firstright_gateway_backend_requests_total{backend,status}
    firstright_gateway_tokens_total{backend,kind}          kind = input | output
    firstright_gateway_refusals_total{backend,reason}
    firstright_gateway_spills_total
    firstright_gateway_partial_streams_total
    firstright_gateway_request_latency_seconds{endpoint}   histogram
    firstright_gateway_usage_records_stored_total
    firstright_gateway_in_flight{backend}                  gauge, read live
    firstright_gateway_circuit_open{backend}               gauge, read live
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

if TYPE_CHECKING:
    from firstright.gateway.backends import Backend
    from firstright.gateway.metering import Outcome

LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


class GatewayMetrics:
    def __init__(self, backends: Callable[[], Sequence[Backend]]) -> None:
        self._backends = backends
        self._lock = threading.Lock()
        self.requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.backend_requests: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.tokens: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.refusals: defaultdict[tuple[str, str], int] = defaultdict(int)
        self.spills = 0
        self.partials = 0
        self.stored = 0
        self.latency_counts: defaultdict[str, list[int]] = defaultdict(
            lambda: [0] * (len(LATENCY_BUCKETS_S) + 1)
        )
        self.latency_sums: defaultdict[str, float] = defaultdict(float)

    def observe_batch(self, batch: Sequence[Outcome]) -> None:
        with self._lock:
            for o in batch:
                status = str(o.status)
                self.requests[(o.endpoint, status)] += 1
                counts = self.latency_counts[o.endpoint]
                counts[bisect.bisect_left(LATENCY_BUCKETS_S, o.latency_ms / 1000)] += 1
                self.latency_sums[o.endpoint] += o.latency_ms / 1000
                if o.backend is not None:
                    self.backend_requests[(o.backend.id, status)] += 1
                    if o.input_tokens:
                        self.tokens[(o.backend.id, "input")] += o.input_tokens
                    if o.output_tokens:
                        self.tokens[(o.backend.id, "output")] += o.output_tokens
                for refusal in o.refusals or ():
                    backend, _, reason = refusal.partition(":")
                    self.refusals[(backend, reason)] += 1
                self.spills += o.spill
                self.partials += o.partial

    def records_stored(self, count: int) -> None:
        with self._lock:
            self.stored += count

    def collect(self) -> Iterator[Any]:
        with self._lock:
            requests = CounterMetricFamily(
                "firstright_gateway_requests",
                "Model requests answered",
                labels=["endpoint", "status"],
            )
            for (endpoint, status), value in sorted(self.requests.items()):
                requests.add_metric([endpoint, status], value)
            per_backend = CounterMetricFamily(
                "firstright_gateway_backend_requests",
                "Requests answered per serving backend",
                labels=["backend", "status"],
            )
            for (backend, status), value in sorted(self.backend_requests.items()):
                per_backend.add_metric([backend, status], value)
            tokens = CounterMetricFamily(
                "firstright_gateway_tokens", "Tokens metered", labels=["backend", "kind"]
            )
            for (backend, kind), value in sorted(self.tokens.items()):
                tokens.add_metric([backend, kind], value)
            refusals = CounterMetricFamily(
                "firstright_gateway_refusals",
                "Backends that refused or failed a request, by reason",
                labels=["backend", "reason"],
            )
            for (backend, reason), value in sorted(self.refusals.items()):
                refusals.add_metric([backend, reason], value)
            spills = CounterMetricFamily(
                "firstright_gateway_spills", "Requests served past the first-refusal holder"
            )
            spills.add_metric([], self.spills)
            partials = CounterMetricFamily(
                "firstright_gateway_partial_streams", "Streams cut by the upstream"
            )
            partials.add_metric([], self.partials)
            stored = CounterMetricFamily(
                "firstright_gateway_usage_records_stored", "Usage records written to the store"
            )
            stored.add_metric([], self.stored)
            latency = HistogramMetricFamily(
                "firstright_gateway_request_latency_seconds",
                "Time from request to the last byte sent",
                labels=["endpoint"],
            )
            for endpoint, counts in sorted(self.latency_counts.items()):
                cumulative = 0
                buckets = []
                for bound, count in zip((*LATENCY_BUCKETS_S, float("inf")), counts, strict=True):
                    cumulative += count
                    buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
                latency.add_metric([endpoint], buckets, self.latency_sums[endpoint])
        in_flight = GaugeMetricFamily(
            "firstright_gateway_in_flight", "Requests in flight per backend", labels=["backend"]
        )
        circuit = GaugeMetricFamily(
            "firstright_gateway_circuit_open",
            "1 when the backend's circuit is open or half-open",
            labels=["backend"],
        )
        for live in self._backends():
            in_flight.add_metric([live.id], live.load.in_flight)
            circuit.add_metric([live.id], 0 if live.breaker.state == "closed" else 1)
        yield from (requests, per_backend, tokens, refusals, spills, partials, stored, latency)
        yield from (in_flight, circuit)
