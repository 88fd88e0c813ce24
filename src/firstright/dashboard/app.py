"""The dashboard: read-only, server-rendered pages at ``/`` of the admin app (no script, no CDN).

    GET  /signin, POST /signin, GET /signout     sign in with an API key (kept in an HttpOnly
                                                 cookie; checked like the API checks a bearer key)
    GET  /                                       overview: capacity, desk, traffic, money
    GET  /contracts?version=&kind=               versions on a timeline, clauses with sources
    GET  /desk, /desk/{request_id}               first refusals; one with decisions and traces
    GET  /placements?cloud=, /placements/{id}    capacity by cloud; one with trace and runners-up
    GET  /traffic?tenant=                        gateway split, refusals and latency
    GET  /settlement?period=                     statements, net flows, commitment burn-down
    GET  /whatif?a=&b=                           two contract versions on the demo demand

Each page shows what the signed-in key's party may see (admins: everything), through the same
functions the ``/api`` routes use. Charts are inline SVG (``dashboard/svg.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.engine import Engine

from firstright.domain.money import format_usd
from firstright.errors import AuthError, FirstrightError, NotFound
from firstright.limits import ADMIN_BODY_BYTES_MAX
from firstright.services.auth import Principal, authenticate

router = APIRouter(include_in_schema=False)

COOKIE = "firstright_key"
HERE = Path(__file__).resolve().parent
PAGES = (
    ("/", "Overview"),
    ("/contracts", "Contracts"),
    ("/desk", "First refusal"),
    ("/placements", "Placements"),
    ("/traffic", "Traffic"),
    ("/settlement", "Settlement"),
    ("/whatif", "What-if"),
)


@cache
def templates() -> Environment:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["usd"] = lambda micros: format_usd(int(micros), 0)
    env.filters["usd2"] = lambda micros: format_usd(int(micros), 2)
    env.filters["usd_text"] = lambda text: format_usd(int(Decimal(text) * 1_000_000), 0)
    env.filters["day"] = lambda iso: (iso or "")[:10]
    env.filters["num"] = lambda n: f"{int(n):,}"
    return env


@cache
def stylesheet() -> str:
    return (HERE / "static" / "dashboard.css").read_text(encoding="utf-8")


def _engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def _principal(request: Request) -> Principal | None:
    key = request.cookies.get(COOKIE)
    if not key:
        return None
    try:
        return authenticate(_engine(request), key)
    except AuthError:
        return None


def _page(request: Request, name: str, principal: Principal, **context: Any) -> HTMLResponse:
    html = (
        templates()
        .get_template(name)
        .render(
            pages=PAGES,
            path=request.url.path,
            principal=principal,
            css=stylesheet(),
            **context,
        )
    )
    return HTMLResponse(html)


def _signin_redirect() -> RedirectResponse:
    return RedirectResponse("/signin", status_code=303)


def _party(principal: Principal) -> str | None:
    return None if principal.is_admin else principal.party


def _may_read(principal: Principal) -> bool:
    return principal.role in ("admin", "party")


# ---------------------------------------------------------------------------------------------
# sign in


@router.get("/static/dashboard.css")
def css() -> Response:
    return Response(stylesheet(), media_type="text/css")


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, error: str = "") -> HTMLResponse:
    html = templates().get_template("signin.html").render(css=stylesheet(), error=error)
    return HTMLResponse(html)


@router.post("/signin")
async def signin(request: Request) -> Response:
    body = await request.body()
    if len(body) > ADMIN_BODY_BYTES_MAX:
        return RedirectResponse("/signin?error=too+large", status_code=303)
    fields = parse_qs(body.decode("utf-8", "replace"))
    key = (fields.get("key") or [""])[0].strip()
    try:
        principal = authenticate(_engine(request), key)
    except AuthError as error:
        html = templates().get_template("signin.html").render(css=stylesheet(), error=error.message)
        return HTMLResponse(html, status_code=401)
    if not _may_read(principal):
        html = (
            templates()
            .get_template("signin.html")
            .render(
                css=stylesheet(), error="tenant keys may not use the dashboard; use a party key"
            )
        )
        return HTMLResponse(html, status_code=403)
    response = RedirectResponse("/", status_code=303)
    response.set_cookie(COOKIE, key, httponly=True, samesite="strict", path="/")
    return response


@router.get("/signout")
def signout() -> Response:
    response = _signin_redirect()
    response.delete_cookie(COOKIE, path="/")
    return response


# ---------------------------------------------------------------------------------------------
# pages


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.api.placements import capacity_summary  # noqa: PLC0415
    from firstright.api.traffic import traffic_summary  # noqa: PLC0415
    from firstright.dashboard import views  # noqa: PLC0415

    engine = _engine(request)
    party = _party(principal)
    capacity = capacity_summary(engine, party=party)
    traffic = traffic_summary(engine, party=party)
    money = views.money(engine, party=party)
    desk = views.desk_list(request.app, principal)
    return _page(
        request,
        "overview.html",
        principal,
        capacity=capacity,
        traffic=traffic,
        money=money,
        desk=desk,
        capacity_chart=views.capacity_chart(capacity),
    )


@router.get("/contracts", response_class=HTMLResponse)
def contracts(request: Request, version: str = "", kind: str = "") -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.dashboard import views  # noqa: PLC0415

    data = views.contracts_page(principal, version=version, kind=kind, now=datetime.now(UTC))
    return _page(request, "contracts.html", principal, **data)


@router.get("/desk", response_class=HTMLResponse)
def desk(request: Request, state: str = "") -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.dashboard import views  # noqa: PLC0415

    rows = views.desk_list(request.app, principal)
    states = sorted({r["state"] for r in rows})
    shown = [r for r in rows if not state or r["state"] == state]
    return _page(request, "desk.html", principal, rows=shown, states=states, state=state)


@router.get("/desk/{request_id}", response_class=HTMLResponse)
def desk_request(request: Request, request_id: str) -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.api.rofr import desk_of  # noqa: PLC0415

    try:
        shown = desk_of(request.app).show(principal, request_id)
    except (NotFound, FirstrightError) as error:
        return _page(request, "missing.html", principal, message=error.message)
    return _page(request, "desk_request.html", principal, r=shown)


@router.get("/placements", response_class=HTMLResponse)
def placements(request: Request, cloud: str = "") -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.api.placements import capacity_summary  # noqa: PLC0415
    from firstright.dashboard import views  # noqa: PLC0415

    capacity = capacity_summary(_engine(request), party=_party(principal))
    rows = [r for r in capacity["requests"] if not cloud or r["provider"] == cloud]
    return _page(
        request,
        "placements.html",
        principal,
        capacity=capacity,
        rows=rows,
        cloud=cloud,
        chart=views.capacity_chart(capacity),
    )


@router.get("/placements/{placement_id}", response_class=HTMLResponse)
def placement(request: Request, placement_id: str) -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.adapters.placement_store import PlacementStore  # noqa: PLC0415

    record = PlacementStore(_engine(request)).get(placement_id, party=_party(principal))
    if record is None:
        return _page(request, "missing.html", principal, message=f"no placement {placement_id}")
    return _page(request, "placement.html", principal, p=record.to_json())


@router.get("/traffic", response_class=HTMLResponse)
def traffic(request: Request, tenant: str = "") -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.api.traffic import traffic_summary  # noqa: PLC0415
    from firstright.dashboard import views  # noqa: PLC0415

    everything = traffic_summary(_engine(request), party=_party(principal))
    tenants = sorted({r["tenant"] for r in everything["by_backend"] if r["tenant"]})
    chosen = tenant if tenant in tenants else ""
    data = (
        traffic_summary(_engine(request), party=_party(principal), tenant=chosen)
        if chosen
        else everything
    )
    return _page(
        request,
        "traffic.html",
        principal,
        data=data,
        rows=data["by_backend"],
        tenants=tenants,
        tenant=chosen,
        **views.traffic_charts(data["backends"], data["refusals"]),
    )


@router.get("/settlement", response_class=HTMLResponse)
def settlement(request: Request, period: str = "") -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.dashboard import views  # noqa: PLC0415

    money = views.money(_engine(request), party=_party(principal))
    periods = [p["period"] for p in money["periods"]]
    chosen = period if period in periods else (periods[-1] if periods else "")
    statements = views.statements(_engine(request), chosen, party=_party(principal))
    return _page(
        request,
        "settlement.html",
        principal,
        money=money,
        periods=periods,
        period=chosen,
        statements=statements,
        burn_chart=views.burn_chart(money),
        flow_chart=views.flow_chart(money),
    )


@router.get("/whatif", response_class=HTMLResponse)
def whatif(
    request: Request, a: str = "msft-openai@2025-01-21", b: str = "msft-openai@2025-10-28"
) -> Response:
    principal = _principal(request)
    if principal is None or not _may_read(principal):
        return _signin_redirect()
    from firstright.dashboard import views  # noqa: PLC0415

    return _page(request, "whatif.html", principal, **views.whatif_page(a, b))
