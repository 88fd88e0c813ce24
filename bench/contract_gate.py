"""Latency of ``Policy.gate()`` with 50 clauses in force (target: p99 <= 50 us).

Builds one contract version with 50 clauses (20 exclusivity clauses over channels and workloads,
15 exceptions with and without providers and GPU bounds, first refusal with a carve-out,
ship-first and money clauses; a demand on ``openai-api`` is matched by 3 exclusivity clauses and
their exceptions, the rest by 0 or 1), compiles
the policy once, then times ``gate()`` call by call with ``time.perf_counter_ns`` over a rotating
mix of demands: ``uncached`` compiles with the per-demand cache off (every call evaluates every
matching clause), ``cached`` is the steady state of a router that sees the same demands again.

Run: ``.venv/bin/python -m bench.contract_gate`` (or through ``make bench``).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from datetime import UTC, datetime
from typing import Any

from firstright.domain.contracts.demand import Demand
from firstright.domain.contracts.model import Contract
from firstright.domain.contracts.policy import Policy

CLAUSES = 50
ITERATIONS = 40_000
ROUNDS = 5
AT = datetime(2025, 6, 1, tzinfo=UTC)
SOURCE = {"assumption": True, "note": "benchmark"}


def build_contract(clauses: int = CLAUSES) -> Contract:
    """One contract version with ``clauses`` clauses of every kind the gate looks at."""
    items: list[dict[str, Any]] = []
    exclusivities = clauses * 2 // 5
    for i in range(exclusivities):
        items.append(
            {
                "id": f"excl-{i}",
                "kind": "exclusivity",
                "holder": "microsoft",
                "owner": "openai",
                "params": {
                    "channels": [f"channel-{i}", *(["openai-api"] if i % 8 == 0 else [])],
                    "workloads": ["api_serving", f"workload-{i % 5}"],
                    "providers": ["azure", f"cloud-{i % 4}"],
                },
                "source": SOURCE,
            }
        )
    exceptions = clauses * 3 // 10
    for i in range(exceptions):
        params: dict[str, Any] = {"customers": [f"customer-{i % 6}"]}
        if i % 2:
            params["providers"] = ["oci"]
            params["max_gpus"] = 1000
        items.append(
            {
                "id": f"exc-{i}",
                "kind": "exception",
                "overrides": [f"excl-{i % exclusivities}"],
                "params": params,
                "source": SOURCE,
            }
        )
    items.append(
        {
            "id": "rofr",
            "kind": "first_refusal",
            "holder": "microsoft",
            "owner": "openai",
            "params": {
                "scope": {"covered_categories": ["new_capacity"], "exempt": ["research"]},
                "exercise_period": "P10D",
                "release_window": "P90D",
                "holder_closing_window": "P30D",
                "terms_order": {"price_per_gpu_hour": "lower"},
            },
            "source": SOURCE,
        }
    )
    items.append(
        {
            "id": "carve-research",
            "kind": "carve_out",
            "overrides": ["rofr"],
            "params": {"categories": ["owner_built_research_training"]},
            "source": SOURCE,
        }
    )
    while len(items) < clauses - 3:
        n = len(items)
        items.append(
            {
                "id": f"ship-{n}",
                "kind": "ship_first",
                "holder": "microsoft",
                "owner": "openai",
                "params": {"products": [f"product-{n}"], "providers": ["azure"]},
                "source": SOURCE,
            }
        )
    while len(items) < clauses:
        n = len(items)
        items.append(
            {
                "id": f"share-{n}",
                "kind": "revenue_share",
                "payer": "openai",
                "payee": "microsoft",
                "params": {"basis": {"channels": ["openai-api"]}, "rate": "0.20"},
                "source": SOURCE,
            }
        )
    return Contract.model_validate(
        {
            "contract_id": "bench",
            "version": "1",
            "effective_from": "2025-01-01T00:00:00Z",
            "parties": {"microsoft": {"clouds": ["azure"]}, "openai": {}},
            "clauses": items,
        }
    )


def demands() -> list[Demand]:
    """A mix: API calls on restricted channels (with and without exempt customers), capacity
    requests under the right, carve-outs and unrelated demand."""
    found: list[Demand] = []
    for i in range(64):
        found.append(
            Demand(
                "openai",
                "api_serving",
                channel="openai-api" if i % 2 else f"channel-{i % 24}",
                customer=f"customer-{i % 9}",
                gpus=(i * 37) % 2000,
            )
        )
    found.append(Demand("openai", "training", category="new_capacity", gpus=100_000))
    found.append(Demand("openai", "training", category="owner_built_research_training"))
    found.append(Demand("openai", "product_serving", product="product-45"))
    found.append(Demand("anthropic", "api_serving", channel="openai-api"))
    return found


def _measure(policy: Policy, mix: list[Demand], iterations: int) -> list[int]:
    gate = policy.gate
    clock = time.perf_counter_ns
    samples = [0] * iterations
    size = len(mix)
    for i in range(iterations):
        demand = mix[i % size]
        start = clock()
        gate(demand)
        samples[i] = clock() - start
    return samples


def _percentiles(samples: list[int]) -> tuple[float, float]:
    ordered = sorted(samples)
    p50 = ordered[len(ordered) // 2] / 1000
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000
    return p50, p99


def main(iterations: int = ITERATIONS, rounds: int = ROUNDS) -> dict[str, object]:
    contract = build_contract()
    assert len(contract.clauses) == CLAUSES
    mix = demands()
    figures: dict[str, list[float]] = {
        "uncached_p50_us": [],
        "uncached_p99_us": [],
        "cached_p50_us": [],
        "cached_p99_us": [],
    }
    compile_ms: list[float] = []
    gc.disable()
    try:
        for _ in range(rounds):
            start = time.perf_counter_ns()
            uncached = Policy.compile([contract], AT, cache_entries_max=0)
            compile_ms.append((time.perf_counter_ns() - start) / 1e6)
            _measure(uncached, mix, 2_000)  # warm-up
            p50, p99 = _percentiles(_measure(uncached, mix, iterations))
            figures["uncached_p50_us"].append(p50)
            figures["uncached_p99_us"].append(p99)
            cached = Policy.compile([contract], AT)
            _measure(cached, mix, 2_000)
            p50, p99 = _percentiles(_measure(cached, mix, iterations))
            figures["cached_p50_us"].append(p50)
            figures["cached_p99_us"].append(p99)
    finally:
        gc.enable()
    result: dict[str, object] = {
        "clauses": CLAUSES,
        "demands_in_mix": len(mix),
        "calls_per_round": iterations,
        "rounds": rounds,
        "compile_ms_median": round(statistics.median(compile_ms), 3),
    }
    for name, values in figures.items():
        result[f"{name}_median"] = round(statistics.median(values), 2)
    result["target_p99_us"] = 50
    return result


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value}")
    sys.exit(0)
