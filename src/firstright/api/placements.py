"""``/api/placements``: stored placement decisions, their totals per cloud, one with its trace.

    GET /api/placements?provider=&limit=&offset=   decisions (without the full answer)
    GET /api/placements/summary                    capacity per cloud and per request
    GET /api/placements/{placement_id}             one decision with its answer and trace

Admins see every row; a party sees the rows it bought or is the counterparty of; tenant keys
may not read placements. :func:`capacity_summary` is also what ``firstright demo`` prints.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy.engine import Engine

from firstright.adapters.placement_store import PLACEMENTS_PAGE_MAX, PlacementStore
from firstright.api.deps import EngineDep, PrincipalDep
from firstright.domain.money import micros_to_decimal
from firstright.errors import NotFound
from firstright.services.auth import Principal, require_role

router = APIRouter(prefix="/api/placements", tags=["placements"])

PERCENT_PLACES = Decimal("0.1")


def reader_party(principal: Principal) -> str | None:
    """The party whose rows a key may read (``None``: every row, for admins)."""
    require_role(principal, "admin", "party")
    return None if principal.is_admin else principal.party


def percent(part: int, whole: int) -> str:
    """``part`` of ``whole`` in percent, one decimal place, half to even (exact)."""
    if whole == 0:
        return "0.0"
    value = Decimal(part) * 100 / Decimal(whole)
    return str(value.quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN))


def capacity_summary(engine: Engine, *, party: str | None) -> dict[str, Any]:
    """Capacity per cloud (GPUs, spend, share, first refusals) and each decision in time order."""
    store = PlacementStore(engine)
    totals = store.by_provider(party=party)
    gpus = sum(t.gpus for t in totals)
    spend = sum(t.total_micros for t in totals)
    rows = store.rows(party=party, limit=PLACEMENTS_PAGE_MAX)
    return {
        "total_gpus": gpus,
        "total_micros": spend,
        "total_usd": str(micros_to_decimal(spend)),
        "by_cloud": [
            {
                **t.to_json(),
                "total_usd": str(micros_to_decimal(t.total_micros)),
                "share_gpus_pct": percent(t.gpus, gpus),
            }
            for t in totals
        ],
        "requests": [r.to_json(with_answer=False) for r in rows],
    }


@router.get("", summary="Placement decisions, oldest first")
def list_placements(
    engine: EngineDep,
    principal: PrincipalDep,
    provider: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=PLACEMENTS_PAGE_MAX)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    party = reader_party(principal)
    rows = PlacementStore(engine).rows(party=party, provider=provider, limit=limit, offset=offset)
    return {"placements": [r.to_json(with_answer=False) for r in rows], "count": len(rows)}


@router.get("/summary", summary="Capacity per cloud and per request")
def placements_summary(engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
    return capacity_summary(engine, party=reader_party(principal))


@router.get("/{placement_id}", summary="One placement decision with its answer and trace")
def get_placement(placement_id: str, engine: EngineDep, principal: PrincipalDep) -> dict[str, Any]:
    record = PlacementStore(engine).get(placement_id, party=reader_party(principal))
    if record is None:
        raise NotFound(f"no placement {placement_id!r}")
    return record.to_json()
