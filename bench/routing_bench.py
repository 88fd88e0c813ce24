"""Latency of one gateway routing decision with 100 backends and 50 clauses (target: p99 <= 50 us).

The route table is compiled once from a policy with 50 clauses in force (the contract of
``bench.contract_gate``) for 8 tenant profiles and 10 models served by 100 backends over seven
providers. One routing decision is what the hot path does per request: look the route up by
(profile, model) and walk it with ``Route.pick`` until a backend takes the request, checking every
refusal signal (price cap, in-flight limit, tokens-per-minute, deadline, back-off, circuit). A
quarter of the backends are saturated, so most decisions record refusals before they pick.

Run: ``.venv/bin/python -m bench.routing_bench`` (or through ``make bench``).
"""

from __future__ import annotations

import gc
import statistics
import time
from datetime import UTC, datetime
from decimal import Decimal

from bench.contract_gate import AT, build_contract
from firstright.domain.contracts.policy import Policy
from firstright.gateway.backends import Backend
from firstright.gateway.config import BreakerConfig, Timeouts
from firstright.gateway.contracts_view import ContractRules
from firstright.gateway.routing import Profile, RouteTable

BACKENDS = 100
MODELS = 10
ITERATIONS = 50_000
ROUNDS = 5
PROVIDERS = ("azure", "aws", "gcp", "oci", "cloud-0", "cloud-1", "openai")


def build_backends(count: int = BACKENDS) -> tuple[Backend, ...]:
    backends = []
    for i in range(count):
        provider = PROVIDERS[i % len(PROVIDERS)]
        models = frozenset(f"model-{(i + k) % MODELS}" for k in range(3))
        price = (Decimal(1) + Decimal(i % 13) / 2, Decimal(4 + (i % 7) * 2))
        backends.append(
            Backend(
                backend_id=f"b{i:03d}-{provider}",
                operator="microsoft" if provider == "azure" else "openai",
                vendor="openai",
                provider=provider,
                region=None,
                models=models,
                base_url=f"http://127.0.0.1:9/b{i}/v1",
                api_key=None,
                forward_client_auth=False,
                in_flight_max=4,
                tokens_per_minute=None,
                timeouts=Timeouts(),
                breaker=BreakerConfig(),
                prices=dict.fromkeys(models, price),
                expected_latency_ms=10 + i % 50,
            )
        )
    for backend in backends[::4]:
        backend.load.in_flight = backend.load.in_flight_max or 0  # saturated: refuses
    return tuple(backends)


def profiles() -> list[Profile]:
    channels = [
        "openai-api",
        "chatgpt",
        "channel-3",
        "channel-8",
        "copilot",
        None,
        "channel-16",
        "x",
    ]
    return [
        Profile(name=f"tenant-{i}", party="openai", channel=channel, default_deadline_ms=40)
        for i, channel in enumerate(channels)
    ]


def main() -> dict[str, object]:
    contract = build_contract()
    policy = Policy.compile([contract], AT)
    rules = ContractRules(policy, "api_serving")
    backends = build_backends()
    table = RouteTable(backends, rules.rules_for, rules.may_serve)
    tenants = profiles()
    started = time.perf_counter()
    table.compile(tenants)
    compile_ms = (time.perf_counter() - started) * 1000
    requests = [(p, f"model-{m}") for p in tenants for m in range(MODELS)]
    samples: list[int] = []
    picked = refused = 0
    gc.disable()
    try:
        for _ in range(ROUNDS):
            for i in range(ITERATIONS):
                profile, model = requests[i % len(requests)]
                refusals: list[str] = []
                t0 = time.perf_counter_ns()
                route = table.get(profile, model)
                backend = None
                if route is not None:
                    backend, _ = route.pick(0, 1000.0, profile.default_deadline_ms, refusals)
                samples.append(time.perf_counter_ns() - t0)
                picked += backend is not None
                refused += len(refusals)
    finally:
        gc.enable()
    samples.sort()
    count = len(samples)
    return {
        "backends": len(backends),
        "clauses": len(contract.clauses),
        "routes": table.route_count,
        "compile_ms": round(compile_ms, 1),
        "decisions": count,
        "picked_share": round(picked / count, 3),
        "refusals_per_decision": round(refused / count, 2),
        "p50_us": round(samples[count // 2] / 1000, 2),
        "p99_us": round(samples[int(count * 0.99)] / 1000, 2),
        "mean_us": round(statistics.fmean(samples) / 1000, 2),
        "at": AT.isoformat(),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value}")
