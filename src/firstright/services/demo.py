"""The seed scenario end to end: Microsoft–OpenAI 2019–2026 on the embedded examples.

    result = run_demo(engine, now=datetime.now(UTC), on_step=print, on_traffic=None)
    result.summary      # the printed summary as JSON, read back from the database
    result.admin_key    # a fresh admin API key for the dashboard

Steps (:data:`STEPS`, in order): load the contract versions; place the demand under the version
in force at each request (``services/demo_capacity.py``) and store the decisions; run the first
refusals those placements owe through the desk (``services/demo_desk.py``); send model traffic
through the gateway to simulators on loopback (``services/demo_traffic.py``; ``on_traffic(done,
total)`` after each request); settle every quarter (``services/demo_settlement.py``); read the
summary back.

The traffic is sent now and stamped with the time it was sent, routed under the contracts as of
``demo_traffic.CONTRACTS_AT``; it is settled by the demo only when now falls in one of the
quarters the demo settles (``summary["traffic_run"]["settled"]`` says which, and why).

Re-running is safe: each part first removes the rows an earlier demo run wrote (placements of
source ``demo``, desk requests ``demo-*``, usage records ``demo-*``, gateway records of tenants
``demo-*``), so the database holds one
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
from firstright.api.traffic import traffic_summary
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.placement.answer import PlacementAnswer
from firstright.services import demo_capacity, demo_traffic
from firstright.services.demo_desk import OFFEROR_PARTY, DeskRun, run_desk
from firstright.services.demo_settlement import QUARTERS, REVENUE_NOTE, run_settlement

DEMO_SOURCE = "demo"
STEPS: tuple[str, ...] = (
    "contracts",
    "placement",
    "first refusal desk",
    "gateway traffic",
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


def run_demo(
    engine: Engine,
    *,
    now: datetime,
    on_step: Step | None = None,
    on_traffic: demo_traffic.ProgressFn | None = None,
) -> DemoResult:
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

    traffic = demo_traffic.run_traffic(engine, on_progress=on_traffic)
    done("gateway traffic")

    settled = run_settlement(engine, contracts, answers, now=now)
    done("settlement")

    summary = build_summary(engine, contracts, desk_runs=desk_runs)
    summary["traffic_run"] = traffic_run_summary(traffic, contracts)
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
        "traffic": traffic_summary(engine, party=None),
        "settlement": money(engine, party=None),
    }


def quarter_label(at: datetime) -> str:
    return f"{at.year}-Q{(at.month - 1) // 3 + 1}"


def traffic_run_summary(run: demo_traffic.TrafficRun, contracts: ContractSet) -> dict[str, Any]:
    """What the traffic step did, the contract version it routed under and whether the demo
    settled it (only when it was sent inside a quarter the demo settles)."""
    in_force = [
        c.key
        for c in contracts.in_force_at(run.contracts_at)
        if c.contract_id == demo_capacity.DEMO_CONTRACT_ID
    ]
    quarter = quarter_label(run.started_at)
    settled_quarters = [label for label, _ in QUARTERS]
    settled = quarter in settled_quarters and quarter_label(run.finished_at) == quarter
    if settled:
        note = f"sent in {quarter}, which the demo settles: rated with that quarter"
    else:
        note = (
            f"sent now ({run.started_at:%Y-%m-%d}, {quarter}), after the last quarter the demo "
            f"settles ({settled_quarters[-1]}): not settled here; "
            f"`firstright settle --period {quarter}` rates it once the quarter is due"
        )
    return {
        **run.to_json(),
        "contract_version": in_force[0] if in_force else None,
        "quarter": quarter,
        "settled": settled,
        "settlement_note": note,
    }
