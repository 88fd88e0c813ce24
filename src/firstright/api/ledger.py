"""``/api/ledger``: statements, balances and journal entries over HTTP; settling for admins.

    GET  /api/ledger/statements?period=2025-Q1                 every statement the key may see
    GET  /api/ledger/statements/{period}/{party_a}/{party_b}   the pair's statements (any order)
    GET  /api/ledger/balances?period=&party=                   account balances through the period
    GET  /api/ledger/entries?period=&party=&limit=&offset=     journal entries, paginated, total
    POST /api/ledger/settlements {"period": "2025-Q1"}         settle (admin; re-running is a no-op)

Admins see everything. A party key sees only the statements and entries it is part of: asking
for another party's pair, entries or balances is a 403. Tenant keys may not read the ledger.
A period is a month ``YYYY-MM`` or a quarter ``YYYY-Qn``; anything else is a 400 naming it.
Settling uses the contract bundles in ``settings.extra["settlement_contracts"]`` (a folder or
file) or the embedded examples, and the app's clock as ``now``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from firstright.adapters.ledger_store import LedgerStore
from firstright.api.deps import AdminDep, EngineDep, PrincipalDep
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.ledger.periods import parse_period
from firstright.domain.money import micros_to_decimal
from firstright.errors import Forbidden
from firstright.examples import default_contracts_dir
from firstright.limits import LEDGER_PAGE_SIZE_MAX
from firstright.services.auth import Principal, require_role
from firstright.services.contract_loader import load_contracts
from firstright.services.settlement import settle, statements_for

router = APIRouter(prefix="/api/ledger", tags=["ledger"])

Json = dict[str, Any]
PeriodQuery = Annotated[
    str, Query(max_length=16, description="A month YYYY-MM or a quarter YYYY-Qn")
]
PartyQuery = Annotated[str | None, Query(max_length=64, description="A party id")]


class SettleBody(BaseModel):
    """What to settle: one month or quarter."""

    model_config = ConfigDict(extra="forbid")

    period: str = Field(max_length=16, description="A month YYYY-MM or a quarter YYYY-Qn")
    close_after_days: int | None = Field(
        default=None,
        ge=0,
        le=3650,
        description="Also close every month that ended at least this many days ago",
    )


def visible_party(principal: Principal, asked: str | None) -> str | None:
    """The party whose ledger rows the key reads: ``asked`` for admins (None = everyone), the
    key's own party for party keys (403 when another party is asked for), tenants never."""
    require_role(principal, "admin", "party")
    if principal.is_admin:
        return asked
    if asked is not None and asked != principal.party:
        raise Forbidden(
            f"key {principal.key_id} of {principal.party!r} may not read the ledger of {asked!r}"
        )
    return principal.party


def settlement_contracts(request: Request) -> ContractSet:
    """The contracts settlement judges by (settings ``extra["settlement_contracts"]``)."""
    configured = request.app.state.settings.extra.get("settlement_contracts")
    path = Path(configured) if configured is not None else default_contracts_dir()
    return load_contracts([path])


@router.get("/statements", summary="Statements of a period (per pair of parties)")
def list_statements(engine: EngineDep, principal: PrincipalDep, period: PeriodQuery) -> Json:
    parsed = parse_period(period)
    party = visible_party(principal, None)
    found = statements_for(engine, parsed.label)
    if party is not None:
        found = [s for s in found if s.involves(party)]
    return {
        "period": parsed.label,
        "months": list(parsed.months),
        "statements": [s.to_json() for s in found],
    }


@router.get(
    "/statements/{period}/{party_a}/{party_b}",
    summary="The statements between two parties for a period (one per currency)",
)
def pair_statements(
    engine: EngineDep, principal: PrincipalDep, period: str, party_a: str, party_b: str
) -> Json:
    parsed = parse_period(period)
    require_role(principal, "admin", "party")
    if not principal.is_admin and principal.party not in (party_a, party_b):
        raise Forbidden(
            f"key {principal.key_id} of {principal.party!r} is not a party to the statement "
            f"between {party_a!r} and {party_b!r}"
        )
    a, b = sorted((party_a, party_b))
    found = [s for s in statements_for(engine, parsed.label) if (s.party_a, s.party_b) == (a, b)]
    return {
        "period": parsed.label,
        "parties": [a, b],
        "statements": [s.to_json() for s in found],
    }


@router.get("/balances", summary="Account balances from every entry booked through a period")
def balances(
    engine: EngineDep,
    principal: PrincipalDep,
    period: Annotated[
        str | None, Query(max_length=16, description="Through the end of this month or quarter")
    ] = None,
    party: PartyQuery = None,
) -> Json:
    through = parse_period(period).last if period is not None else None
    who = visible_party(principal, party)
    rows = LedgerStore(engine).balances(through_month=through, party=who)
    return {
        "through_month": through,
        "party": who,
        "balances": [
            {
                "account": account,
                "amount_micros": amount,
                "amount": f"{micros_to_decimal(amount):f}",
            }
            for account, amount in rows
        ],
    }


@router.get("/entries", summary="Journal entries, oldest first, paginated")
def entries(
    *,
    engine: EngineDep,
    principal: PrincipalDep,
    period: Annotated[str | None, Query(max_length=16, description="YYYY-MM or YYYY-Qn")] = None,
    party: PartyQuery = None,
    limit: Annotated[int, Query(ge=1, le=LEDGER_PAGE_SIZE_MAX)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**62)] = 0,
) -> Json:
    months = parse_period(period).months if period is not None else None
    who = visible_party(principal, party)
    store = LedgerStore(engine)
    total = store.count_entries(months=months, party=who)
    page = store.entries(months=months, party=who, limit=limit, offset=offset)
    return {
        "total": total,
        "limit": limit,
        "offset": offset,
        "entries": [e.to_json() for e in page],
    }


@router.post("/settlements", summary="Settle a period (admin); running it again posts nothing")
def settle_period(request: Request, engine: EngineDep, _admin: AdminDep, body: SettleBody) -> Json:
    parse_period(body.period)
    report = settle(
        engine,
        settlement_contracts(request),
        body.period,
        now=request.app.state.settings.clock(),
        close_after_days=body.close_after_days,
    )
    return report.to_json()
