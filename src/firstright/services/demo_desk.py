"""The first-refusal part of the demo: capacity placed on a third party while a right of first
refusal was due goes through the desk, with the holder's behaviour simulated by a standing
instruction.

For each such placement (CoreWeave in March 2025, Google in May, Oracle in September) the owner
opens a request with the third party's offer, delivers a complete notice a day later, and the
holder's standing instruction answers at once (Microsoft's assumed instruction: match H100 offers
only at or below a price floor far under market, so every real offer is declined, as happened in
2025). The owner then asks the gate, which approves the third-party contract inside the release
window, and reports the signature. Every event is written with a deterministic idempotency key;
the demo removes its own rows first (request and instruction ids start with ``demo-``) so each run
starts from fresh data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from firstright.adapters.db import storage_errors
from firstright.adapters.rofr_store import rofr_events, rofr_instructions, rofr_requests
from firstright.domain.contracts.model import Contract
from firstright.domain.placement.answer import PlacementAnswer
from firstright.services.rofr_desk import RofrDesk
from firstright.services.rofr_wire import (
    GateBody,
    InstructionBody,
    NoticeBody,
    OfferBody,
    OpenBody,
    SignedBody,
)

DEMO_PREFIX = "demo-"
HOLDER_INSTRUCTION_ID = "demo-microsoft-h100-floor"
HOLDER_PRICE_FLOOR_USD = Decimal("2.00")
"""Assumption: the price per GPU-hour at or below which Microsoft's instruction matches."""
HOLDER_QUANTITY_GPUS_MAX = 100_000
NOTICE_AFTER = timedelta(days=1)
GATE_AFTER = timedelta(days=2)
SIGN_AFTER = timedelta(days=3)
COMMIT_MONTHS = 60
"""Assumption: the term of each third-party deal (CoreWeave's first deal ran five years)."""
OFFEROR_PARTY = {
    "coreweave": "coreweave",
    "gcp": "google",
    "oci": "oracle",
    "aws": "amazon",
    "azure": "microsoft",
    "lambda": "lambda",
    "nebius": "nebius",
}


@dataclass(frozen=True, slots=True)
class DeskRun:
    request_id: str
    placement_id: str
    offeror: str
    state: str
    outcome: str
    response: str
    gate: str
    opened_at: datetime
    awarded_at: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "placement_id": self.placement_id,
            "offeror": self.offeror,
            "state": self.state,
            "outcome": self.outcome,
            "holder_response": self.response,
            "gate": self.gate,
            "opened_at": self.opened_at.isoformat(),
            "awarded_at": self.awarded_at.isoformat(),
            "days_to_award": (self.awarded_at - self.opened_at).days,
        }


def reset_demo_rows(engine: Engine) -> None:
    """Remove the desk rows an earlier demo run wrote (ids starting with ``demo-``)."""
    pattern = f"{DEMO_PREFIX}%"
    with storage_errors("resetting the demo's first-refusal rows"), engine.begin() as conn:
        conn.execute(rofr_events.delete().where(rofr_events.c.request_id.like(pattern)))
        conn.execute(rofr_requests.delete().where(rofr_requests.c.request_id.like(pattern)))
        conn.execute(
            rofr_instructions.delete().where(rofr_instructions.c.instruction_id.like(pattern))
        )


def _terms(answer: PlacementAnswer) -> dict[str, str | int]:
    assert answer.first_refusal is not None
    terms = answer.first_refusal.terms
    return {
        "quantity_gpus": terms.quantity_gpus,
        "gpu_type": terms.gpu_type,
        "region": terms.region,
        "start_date": terms.start.date().isoformat(),
        "commit_months": COMMIT_MONTHS,
        "price_per_gpu_hour": str(terms.price_per_gpu_hour.quantize(Decimal("0.0001"))),
        "sla_pct": "99.5",
        "prepay_pct": 0,
        "offer_documents": "term-sheet",
    }


def run_desk(
    engine: Engine,
    contracts: Sequence[Contract],
    answers: Sequence[PlacementAnswer],
    *,
    placement_id_of: dict[str, str],
) -> list[DeskRun]:
    """Every placement that owes a first refusal and went to a third party, through the desk."""
    reset_demo_rows(engine)
    desk = RofrDesk(engine, contracts)
    runs: list[DeskRun] = []
    due = [
        a
        for a in answers
        if a.first_refusal is not None
        and a.choice is not None
        and a.choice.offer.provider not in a.first_refusal.holder_providers
    ]
    if not due:
        return runs
    first_at = min(a.at for a in due)
    desk.add_instruction(
        None,
        "microsoft",
        InstructionBody(
            instruction_id=HOLDER_INSTRUCTION_ID,
            price_per_gpu_hour_max=HOLDER_PRICE_FLOOR_USD,
            gpu_types=["H100", "H200", "B200"],
            quantity_gpus_max=HOLDER_QUANTITY_GPUS_MAX,
            otherwise="decline",
            at=first_at,
        ),
        at=first_at,
    )
    for answer in due:
        assert answer.choice is not None and answer.first_refusal is not None
        provider = answer.choice.offer.provider
        offeror = OFFEROR_PARTY.get(provider, provider)
        request_id = f"{DEMO_PREFIX}{answer.request_id}"
        terms = _terms(answer)
        at = answer.at
        desk.open(
            None,
            OpenBody(
                request_id=request_id,
                category=answer.request.category or answer.request.workload,
                quantity_gpus=answer.request.gpus,
                contract_id=answer.first_refusal.contract.split("@")[0],
                clause_id=answer.first_refusal.clause_id,
                offer=OfferBody(party=offeror, terms=terms),
            ),
            key=f"{request_id}:open",
            at=at,
        )
        notice = desk.notify(
            None,
            request_id,
            NoticeBody(terms=terms, offeror=offeror),
            key=f"{request_id}:notice",
            at=at + NOTICE_AFTER,
        )
        response = next(
            (
                f"{d['state']}: {d['reason']}"
                for d in notice["decisions"]
                if d.get("event") == "holder_response"
            ),
            f"no response yet ({notice['state']})",
        )
        gate = desk.gate(
            None,
            request_id,
            GateBody(party=offeror),
            key=f"{request_id}:gate",
            at=at + GATE_AFTER,
        )
        signed = desk.signed(
            None,
            request_id,
            SignedBody(party=offeror, terms=terms),
            key=f"{request_id}:signed",
            at=at + SIGN_AFTER,
        )
        runs.append(
            DeskRun(
                request_id=request_id,
                placement_id=placement_id_of[answer.request_id],
                offeror=offeror,
                state=signed["state"],
                outcome=signed["outcome"],
                response=str(response),
                gate=str(gate["decision"].get("gate", gate["state"])),
                opened_at=at,
                awarded_at=at + SIGN_AFTER,
            )
        )
    return runs


def desk_rows(engine: Engine) -> int:
    with storage_errors("counting the demo's desk rows"), engine.connect() as conn:
        count = conn.execute(
            sa.select(sa.func.count())
            .select_from(rofr_requests)
            .where(rofr_requests.c.request_id.like(f"{DEMO_PREFIX}%"))
        ).scalar_one()
    return int(count)
