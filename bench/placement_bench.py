"""Placement: 1,000 requests under contracts with commitments, solved to the exact optimum
(target <= 5 s on 2 cores), and our plain choice next to SkyPilot 0.14.1's on the same catalog.

Timing: ``place_requests`` end to end (candidates from the shipped catalog, one policy compiled
per instant, gates, the MILP, explanations), median of ``RUNS`` runs; the MILP alone on the full
model (every matching offer a binary column, no dominance reduction) is timed too, to show the
reduction is a speed-up and not a condition for exactness.

SkyPilot: when ``.bench/sky-venv`` exists (``python3 -m venv .bench/sky-venv &&
.bench/sky-venv/bin/pip install 'skypilot==0.14.1'``) and the offline harness
``skypilot_choice.py`` is found (``SKYPILOT_CHOICE`` or ``../shared/bench/placement/``), it is
rerun live on ``tests/fixtures/skypilot_tasks.json`` against our copied catalogs; otherwise the
committed answers in ``tests/fixtures/skypilot_choices.json`` are used.

Run: ``.venv/bin/python -m bench.placement_bench``.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from firstright.adapters.catalogs import default_catalog_dir, load_market
from firstright.domain.contracts.model import Contract
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.placement.answer import rate
from firstright.domain.placement.candidates import matching_candidates
from firstright.domain.placement.request import PlacementRequest
from firstright.domain.placement.solver import PlacementProblem, solve_milp
from firstright.services.placement import place_requests

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = 1_000
RUNS = 5
SEED = 20250121
START = datetime(2025, 3, 1, tzinfo=UTC)
SKY_VENV = ROOT / ".bench" / "sky-venv"
TASKS = ROOT / "tests" / "fixtures" / "skypilot_tasks.json"
CHOICES = ROOT / "tests" / "fixtures" / "skypilot_choices.json"
SHAPES = (
    ("H100", 8),
    ("H100", 1),
    ("A100", 8),
    ("A100-80GB", 8),
    ("A100-80GB", 4),
    ("H200", 8),
    ("B200", 8),
    ("V100", 8),
    ("L40S", 4),
)
WORKLOADS = ("training", "training", "new_capacity", "api_serving", "research", "product_inference")


def _contracts() -> ContractSet:
    source = {"assumption": True, "note": "benchmark"}
    contract = Contract.model_validate(
        {
            "contract_id": "bench-lab-cloud",
            "version": "1",
            "effective_from": "2025-01-01T00:00:00Z",
            "parties": {
                "cloudco": {"kind": "cloud", "clouds": ["azure"]},
                "neocloud": {"kind": "cloud", "clouds": ["oci"]},
                "lab": {"kind": "lab"},
            },
            "clauses": [
                {
                    "id": "api-on-azure",
                    "kind": "exclusivity",
                    "holder": "cloudco",
                    "owner": "lab",
                    "params": {"workloads": ["api_serving"], "providers": ["azure"]},
                    "source": source,
                },
                {
                    "id": "rofr",
                    "kind": "first_refusal",
                    "holder": "cloudco",
                    "owner": "lab",
                    "params": {
                        "scope": {"covered_categories": ["new_capacity"]},
                        "exercise_period": "P10D",
                        "release_window": "P90D",
                        "holder_closing_window": "P30D",
                        "terms_order": {"price_per_gpu_hour": "lower"},
                    },
                    "source": source,
                },
                {
                    "id": "azure-commitment",
                    "kind": "commitment",
                    "payer": "lab",
                    "payee": "cloudco",
                    "params": {
                        "amount_usd": "20000000",
                        "providers": ["azure"],
                        "period_start": "2025-01-01T00:00:00Z",
                        "period_end": "2026-01-01T00:00:00Z",
                        "workloads": ["training", "product_inference"],
                    },
                    "source": source,
                },
                {
                    "id": "oci-commitment",
                    "kind": "commitment",
                    "payer": "lab",
                    "payee": "neocloud",
                    "params": {
                        "amount_usd": "8000000",
                        "providers": ["oci"],
                        "period_start": "2025-01-01T00:00:00Z",
                        "period_end": "2026-01-01T00:00:00Z",
                    },
                    "source": source,
                },
            ],
        }
    )
    return ContractSet([contract])


def _requests(rng: random.Random) -> list[PlacementRequest]:
    out = []
    for i in range(REQUESTS):
        accelerator, count = rng.choice(SHAPES)
        out.append(
            PlacementRequest(
                id=f"r{i}",
                party="lab",
                workload=rng.choice(WORKLOADS),
                accelerator=accelerator,
                count=count,
                num_nodes=rng.choice((1, 1, 2, 4, 8)),
                hours=Decimal(rng.choice((24, 168, 730, 2190))),
                use_spot=rng.random() < 0.1,
                at=START + timedelta(days=rng.randint(0, 270)),
            )
        )
    return out


def _time_placement() -> dict[str, Any]:
    market = load_market()
    contracts = _contracts()
    requests = _requests(random.Random(SEED))
    seconds = []
    answers = []
    for _ in range(RUNS):
        started = time.perf_counter()
        answers = place_requests(requests, contracts=contracts, market=market)
        seconds.append(time.perf_counter() - started)
    placed = [a for a in answers if a.choice is not None]
    by_provider: dict[str, int] = {}
    for answer in placed:
        assert answer.choice is not None
        by_provider[answer.choice.provider] = by_provider.get(answer.choice.provider, 0) + 1

    # The MILP alone on the full model: every matching offer of every request a binary column.
    options = []
    for request in requests:
        found = matching_candidates(request, market.offers_for(request.accelerator, request.count))
        if found:
            options.append(tuple(found))
    full = PlacementProblem(
        options=tuple(options), draws=tuple(frozenset() for _ in options), commitments=()
    )
    columns = sum(len(o) for o in options)
    full_seconds = []
    for _ in range(3):
        started = time.perf_counter()
        solve_milp(full, reduce=False)
        full_seconds.append(time.perf_counter() - started)
    return {
        "requests": REQUESTS,
        "placed": len(placed),
        "solver": sorted({a.method for a in answers}),
        "placement_s_median": round(statistics.median(seconds), 3),
        "placement_s_runs": [round(s, 3) for s in seconds],
        "target_s": 5.0,
        "chosen_providers": dict(sorted(by_provider.items())),
        "full_milp_columns": columns,
        "full_milp_s_median": round(statistics.median(full_seconds), 3),
    }


def _skypilot_harness() -> Path | None:
    given = os.environ.get("SKYPILOT_CHOICE")
    candidates = [Path(given)] if given else []
    candidates.append(ROOT.parent / "shared" / "bench" / "placement" / "skypilot_choice.py")
    return next((p for p in candidates if p.is_file()), None)


def _skypilot_choices() -> tuple[list[dict[str, Any]], str, float | None]:
    harness = _skypilot_harness()
    python = SKY_VENV / "bin" / "python"
    if python.exists() and harness is not None:
        started = time.perf_counter()
        done = subprocess.run(
            [str(python), str(harness), str(TASKS), "--catalog-dir", str(default_catalog_dir())],
            capture_output=True,
            text=True,
            check=True,
        )
        elapsed = time.perf_counter() - started
        data: list[dict[str, Any]] = json.loads(done.stdout)
        return data, "live", elapsed
    fixture: list[dict[str, Any]] = json.loads(CHOICES.read_text(encoding="utf-8"))
    return fixture, "fixture", None


def _side_by_side() -> dict[str, Any]:
    choices, origin, sky_seconds = _skypilot_choices()
    at = datetime(2025, 6, 1, tzinfo=UTC)
    requests = [
        PlacementRequest(
            id=e["task"]["name"],
            party="lab",
            workload="training",
            accelerator=e["task"]["accelerator"],
            count=e["task"]["count"],
            num_nodes=e["task"].get("num_nodes", 1),
            use_spot=e["task"].get("use_spot", False),
            clouds=e["task"]["clouds"],
        )
        for e in choices
    ]
    started = time.perf_counter()
    answers = place_requests(requests, at=at)
    ours_seconds = time.perf_counter() - started
    rows = []
    for entry, answer in zip(choices, answers, strict=True):
        sky = entry["choice"]
        sky_text = (
            "none" if "error" in sky else f"{sky['cloud']} {sky['region']} {sky['instance_type']}"
        )
        sky_price = None if "error" in sky else Decimal(str(sky["hourly_price"]))
        ours_text = "none"
        ours_price = None
        if answer.choice is not None:
            offer = answer.choice.offer
            ours_text = f"{offer.provider} {offer.region} {offer.instance_type}"
            ours_price = answer.choice.hourly_usd
        rows.append(
            {
                "task": entry["task"]["name"],
                "skypilot": sky_text,
                "skypilot_usd_per_hour": None if sky_price is None else str(sky_price),
                "ours": ours_text,
                "ours_usd_per_hour": None if ours_price is None else rate(ours_price),
            }
        )
    return {
        "skypilot_answers": origin,
        "skypilot_s_all_tasks": None if sky_seconds is None else round(sky_seconds, 2),
        "ours_s_all_tasks": round(ours_seconds, 3),
        "tasks": len(rows),
        "rows": rows,
    }


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | SkyPilot choice | SkyPilot $/h | our choice | our $/h |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['task']} | {row['skypilot']} | {row['skypilot_usd_per_hour'] or '—'} | "
            f"{row['ours']} | {row['ours_usd_per_hour'] or '—'} |"
        )
    return "\n".join(lines)


def main() -> dict[str, Any]:
    figures = _time_placement()
    side = _side_by_side()
    figures["skypilot_answers"] = side["skypilot_answers"]
    figures["skypilot_s_all_tasks"] = side["skypilot_s_all_tasks"]
    figures["ours_s_all_tasks"] = side["ours_s_all_tasks"]
    figures["side_by_side"] = "\n" + _markdown(side["rows"])
    return figures


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value}")
    sys.exit(0)
