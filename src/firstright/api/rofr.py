"""``/api/rofr``: the first-refusal desk over HTTP (see ``services/rofr_desk.py``).

State-changing routes take an optional ``Idempotency-Key`` header (same key and body → same
answer; same key, other body → 409) and an optional ``at`` in the body (default: the server's
clock at receipt). Roles: the owner opens, notifies, reports offers and signatures, asks the
gate and withdraws; only the holder responds; admins read everything; a party reads only the
requests it owns or holds.

``POST /api/rofr/from-placement`` places requests under the desk's contracts and opens every
first refusal they owe (the chosen catalog offer as notice terms); each result carries
``final``, where the capacity goes given the workflow's outcome. ``placement-gate`` and
``launch-gate`` ask API exclusivity (with its exceptions) and ship-first (with its escape);
the holder's ``capability`` answer is what the escape reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from datetime import datetime
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Header, Query, Request, status

from firstright.api.deps import PrincipalDep
from firstright.domain.contracts.model import Contract
from firstright.services.alerts import Alerter
from firstright.services.contract_loader import load_contracts
from firstright.services.rofr_desk import RofrDesk
from firstright.services.rofr_from_placement import place_and_open
from firstright.services.rofr_scheduler import RofrScheduler
from firstright.services.rofr_wire import (
    CapabilityBody,
    FromPlacementBody,
    GateBody,
    InstructionBody,
    LaunchGateBody,
    NoticeBody,
    OfferEventBody,
    OpenBody,
    PlacementGateBody,
    ResponseBody,
    SignedBody,
    WithdrawBody,
)

router = APIRouter(prefix="/api/rofr", tags=["first refusal"])

IdempotencyKey = Annotated[
    str | None,
    Header(alias="Idempotency-Key", max_length=200, description="Client key for safe retries"),
]
Json = dict[str, Any]


def desk_contracts(app: FastAPI) -> list[Contract]:
    """The contracts the desk judges by: ``settings.rofr_contract_path`` or the examples."""
    settings = app.state.settings
    path = settings.rofr_contract_path
    if path is None:
        path = resources.files("firstright") / "examples" / "contracts"
    return list(load_contracts([str(path)]))


def desk_of(app: FastAPI) -> RofrDesk:
    """The app's desk, built on first use."""
    desk: RofrDesk | None = getattr(app.state, "rofr_desk", None)
    if desk is None:
        settings = app.state.settings
        desk = RofrDesk(
            app.state.engine,
            desk_contracts(app),
            alerter=Alerter(settings.alert_webhook_url),
        )
        app.state.rofr_desk = desk
    return desk


def _now(request: Request) -> datetime:
    now: datetime = request.app.state.settings.clock()
    return now


@asynccontextmanager
async def scheduler_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Run the timer scheduler while the app runs (unless disabled in the settings)."""
    settings = app.state.settings
    if not settings.scheduler_enabled:
        yield
        return
    desk = desk_of(app)
    scheduler = RofrScheduler(
        desk, clock=settings.clock, poll_s=settings.scheduler_poll_s, lead_s=settings.alert_lead_s
    )
    app.state.rofr_scheduler = scheduler
    task = asyncio.create_task(scheduler.run(), name="firstright-rofr-scheduler")
    try:
        yield
    finally:
        task.cancel()
        with suppress(asyncio.CancelledError):
            await task
        desk.alerter.close(timeout_s=2.0)


@router.post("/requests", status_code=status.HTTP_201_CREATED, summary="Open a capacity request")
def open_request(
    request: Request, body: OpenBody, principal: PrincipalDep, key: IdempotencyKey = None
) -> Json:
    return desk_of(request.app).open(principal, body, key=key, at=_now(request))


@router.get("/requests", summary="Requests with their next deadlines (open ones by default)")
def list_requests(
    request: Request,
    principal: PrincipalDep,
    all_states: Annotated[bool, Query(alias="all")] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    after: Annotated[str | None, Query(max_length=128)] = None,
) -> list[Json]:
    return desk_of(request.app).list_requests(
        principal, open_only=not all_states, limit=limit, after=after
    )


@router.get("/requests/{request_id}", summary="One request with its full decision trace")
def show_request(request: Request, request_id: str, principal: PrincipalDep) -> Json:
    return desk_of(request.app).show(principal, request_id)


@router.post("/requests/{request_id}/offers", summary="Record a third-party offer or change")
def report_offer(
    request: Request,
    request_id: str,
    body: OfferEventBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).offer(principal, request_id, body, key=key, at=_now(request))


@router.post("/requests/{request_id}/notice", summary="Deliver the notice to the holder")
def deliver_notice(
    request: Request,
    request_id: str,
    body: NoticeBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).notify(principal, request_id, body, key=key, at=_now(request))


@router.post("/requests/{request_id}/response", summary="The holder's response")
def holder_response(
    request: Request,
    request_id: str,
    body: ResponseBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).respond(principal, request_id, body, key=key, at=_now(request))


@router.post(
    "/requests/{request_id}/gate",
    summary="May the owner contract with this third party now? APPROVE or BLOCK with trace",
)
def contract_gate(
    request: Request,
    request_id: str,
    body: GateBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).gate(principal, request_id, body, key=key, at=_now(request))


@router.post(
    "/requests/{request_id}/placement-gate",
    summary="May this workload run on that cloud? APPROVE or BLOCK by API exclusivity",
)
def placement_gate(
    request: Request,
    request_id: str,
    body: PlacementGateBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).placement_gate(
        principal, request_id, body, key=key, at=_now(request)
    )


@router.post(
    "/requests/{request_id}/launch-gate",
    summary="May a product launch first on that cloud? APPROVE or BLOCK by ship-first",
)
def launch_gate(
    request: Request,
    request_id: str,
    body: LaunchGateBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).launch_gate(principal, request_id, body, key=key, at=_now(request))


@router.post(
    "/requests/{request_id}/capability",
    summary="The holder's answer on supporting a launch (read by ship-first's escape)",
)
def holder_capability(
    request: Request,
    request_id: str,
    body: CapabilityBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).capability(principal, request_id, body, key=key, at=_now(request))


@router.post(
    "/from-placement",
    status_code=status.HTTP_201_CREATED,
    summary="Place requests and open every first refusal they owe, with the catalog terms",
)
def from_placement(
    request: Request, body: FromPlacementBody, principal: PrincipalDep, key: IdempotencyKey = None
) -> list[Json]:
    return place_and_open(
        desk_of(request.app),
        principal,
        body.requests,
        at=body.at or _now(request),
        key=key,
    )


@router.post("/requests/{request_id}/signatures", summary="Report a signature")
def report_signature(
    request: Request,
    request_id: str,
    body: SignedBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).signed(principal, request_id, body, key=key, at=_now(request))


@router.post("/requests/{request_id}/withdrawal", summary="Withdraw the capacity request")
def withdraw(
    request: Request,
    request_id: str,
    body: WithdrawBody,
    principal: PrincipalDep,
    key: IdempotencyKey = None,
) -> Json:
    return desk_of(request.app).withdraw(principal, request_id, body, key=key, at=_now(request))


@router.post(
    "/instructions",
    status_code=status.HTTP_201_CREATED,
    summary="Register a standing instruction (holder auto-response policy)",
)
def add_instruction(request: Request, body: InstructionBody, principal: PrincipalDep) -> Json:
    return desk_of(request.app).add_instruction(principal, principal.party, body, at=_now(request))


@router.get("/instructions", summary="Standing instructions (own, or all for admins)")
def list_instructions(request: Request, principal: PrincipalDep) -> list[Json]:
    return desk_of(request.app).instructions(principal)


@router.delete("/instructions/{instruction_id}", summary="Revoke a standing instruction")
def revoke_instruction(request: Request, instruction_id: str, principal: PrincipalDep) -> Json:
    return desk_of(request.app).revoke_instruction(principal, instruction_id, at=_now(request))
