"""The seed scenario end to end: Microsoft–OpenAI 2019–2026 on the embedded examples.

    result = run_demo(engine, now=datetime.now(UTC), on_step=print)
    result.summary      # the printed summary as JSON, read back from the database
    result.admin_key    # a fresh admin API key for the dashboard

Steps (:data:`STEPS`, in order): load the contract versions; place the demand under the version
in force at each request (``services/demo_capacity.py``) and store the decisions; run the first
refusals those placements owe through the desk (``services/demo_desk.py``); send model traffic
through the gateway to simulated upstreams (``services/demo_traffic.py``); settle every quarter
(``services/demo_settlement.py``); read the summary back.

Re-running is safe: each part first removes the rows an earlier demo run wrote (placements of
source ``demo``, desk requests ``demo-*``, usage records ``demo-*``), so the database holds one
fresh copy of the demo next to anything else in it. The summary is computed by the same functions
that serve ``/api/placements``, ``/api/traffic`` and ``/api/ledger`` from the same database, so
the two agree by construction (and a test checks it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from firstright.adapters.db import migrate
from firstright.adapters.placement_store import PlacementRecord, PlacementStore
from firstright.api.placements import capacity_summary
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.placement.answer import PlacementAnswer
from firstright.services import demo_capacity
from firstright.services.demo_desk import OFFEROR_PARTY, DeskRun, run_desk
from firstright.services.demo_settlement import REVENUE_NOTE, run_settlement

DEMO_SOURCE = "demo"
STEPS: tuple[str, ...] = (
    "contracts",
    "placement",
    "first refusal desk",
    "settlement",
    "summary",
)

Step = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoResult:
    summary: dict[str, Any]
    admin_key: str


def placement_record(
    answer: PlacementAnswer, contracts: ContractSet, *, source: str = DEMO_SOURCE
) -> PlacementRecord:
    """The stored form of one answer (id ``<source>:<request id>``)."""
    holder = answer.first_refusal.holder if answer.first_refusal is not None else None
    counterparty = None
    if answer.choice is not None:
        provider = answer.choice.offer.provider
        counterparty = OFFEROR_PARTY.get(provider, provider)
    keys = demo_capacity.contract_keys_of(answer)
    in_force = [c.key for c in contracts.in_force_at(answer.at)]
    contract_key = keys[0] if keys else (in_force[0] if in_force else None)
    offer = answer.choice.offer if answer.choice is not None else None
    return PlacementRecord(
        placement_id=f"{source}:{answer.request_id}",
        source=source,
        request_id=answer.request_id,
        decided_at=answer.at,
        party=answer.request.party,
        counterparty=counterparty,
        holder=holder,
        contract=contract_key,
        workload=answer.request.category or answer.request.workload,
        status="placed" if answer.placed else "no_offer",
        provider=offer.provider if offer else None,
        region=offer.region if offer else None,
        instance_type=offer.instance_type if offer else None,
        accelerator=answer.request.accelerator,
        gpus=answer.request.gpus,
        total_micros=answer.choice.total_micros if answer.choice is not None else 0,
        first_refusal=answer.first_refusal is not None,
        why=demo_capacity.why(answer, contracts),
        clause_ids=tuple(demo_capacity.clause_ids_of(answer)),
        answer=answer.to_json(),
    )


def run_demo(engine: Engine, *, now: datetime, on_step: Step | None = None) -> DemoResult:
    """Run every step on ``engine`` (migrated here); ``on_step(name)`` after each step."""
    from firstright.examples import default_contracts_dir  # noqa: PLC0415
    from firstright.services.auth import create_key  # noqa: PLC0415
    from firstright.services.contract_loader import load_contracts  # noqa: PLC0415

    done = on_step or (lambda _name: None)
    migrate(engine)
    contracts = load_contracts(default_contracts_dir())
    done("contracts")

    answers = demo_capacity.place_demand(demo_capacity.load_demand(), contracts)
    records = [placement_record(a, contracts) for a in answers]
    PlacementStore(engine).replace_source(DEMO_SOURCE, records)
    done("placement")

    desk_runs: list[DeskRun] = run_desk(
        engine,
        list(contracts),
        answers,
        placement_id_of={a.request_id: f"{DEMO_SOURCE}:{a.request_id}" for a in answers},
    )
    done("first refusal desk")

    settled = run_settlement(engine, contracts, answers, now=now)
    done("settlement")

    summary = build_summary(engine, contracts, desk_runs=desk_runs)
    summary["settlement_runs"] = settled
    key = create_key(engine, party="demo", role="admin", created_at=now)
    done("summary")
    return DemoResult(summary=summary, admin_key=key.secret)


def build_summary(
    engine: Engine, contracts: ContractSet, *, desk_runs: list[DeskRun] | None = None
) -> dict[str, Any]:
    """What the demo prints, read back from the database (admin view)."""
    from firstright.dashboard.views import money  # noqa: PLC0415

    spans = demo_capacity.timeline(contracts, demo_capacity.DEMO_CONTRACT_ID)
    return {
        "contracts": [span.to_json() for span in spans],
        "assumptions": [a.note for a in demo_capacity.ASSUMED_OFFERS]
        + [demo_capacity.COMMITMENTS_ON_TRACK_NOTE, REVENUE_NOTE],
        "capacity": capacity_summary(engine, party=None),
        "desk": [run.to_json() for run in desk_runs or []],
        "settlement": money(engine, party=None),
    }
