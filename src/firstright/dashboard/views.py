"""What the dashboard pages show, computed from the stores (and charts drawn from it).

``money`` is also the settlement part of ``firstright demo``'s summary: money flows between the
parties per quarter from the ledger's entries, and each commitment's burn-down.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from sqlalchemy.engine import Engine

from firstright.adapters.ledger_store import LedgerStore
from firstright.dashboard import svg
from firstright.domain.contracts.model import CommitmentClause
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.money import format_usd, micros_to_decimal
from firstright.errors import FirstrightError
from firstright.services.auth import Principal

DESK_ROWS_MAX = 500


def _contracts() -> ContractSet:
    from firstright.examples import default_contracts_dir  # noqa: PLC0415
    from firstright.services.contract_loader import load_contracts  # noqa: PLC0415

    return load_contracts(default_contracts_dir())


def quarter_of(month: str) -> str:
    """``2025-05`` -> ``2025-Q2``."""
    year, number = month.split("-")
    return f"{year}-Q{(int(number) - 1) // 3 + 1}"


# ---------------------------------------------------------------------------------------------
# capacity


def capacity_chart(capacity: dict[str, Any]) -> str:
    return svg.bars(
        [
            svg.Bar(
                label=row["provider"],
                value=row["gpus"],
                note=f"{row['gpus']:,} GPUs · {row['share_gpus_pct']}% · "
                f"{format_usd(row['total_micros'], 0)}",
            )
            for row in capacity["by_cloud"]
        ],
        title="GPUs by cloud",
    )


# ---------------------------------------------------------------------------------------------
# contracts


def contracts_page(
    principal: Principal, *, version: str, kind: str, now: datetime
) -> dict[str, Any]:
    from firstright.services.demo_capacity import timeline  # noqa: PLC0415

    contracts = _contracts()
    visible = [
        cid
        for cid in contracts.contract_ids()
        if principal.is_admin or any(principal.party in c.parties for c in contracts.versions(cid))
    ]
    rows = []
    spans: list[svg.Span] = []
    chosen = contracts.get(version) if version else None
    if chosen is not None and chosen.contract_id not in visible:
        chosen = None
    for contract_id in visible:
        for span in timeline(contracts, contract_id):
            if chosen is None and contract_id == visible[0] and span.end is None:
                chosen = span.contract
            rows.append(span)
    for span in rows:
        spans.append(
            svg.Span(
                label=span.contract.key.replace("msft-openai@", "msft-openai ").replace(
                    "amazon-anthropic@", "amazon-anthropic "
                ),
                start=span.start,
                end=span.end,
                note=span.contract.title or span.contract.key,
                href=f"/contracts?version={span.contract.key}",
                active=chosen is not None and span.contract.key == chosen.key,
            )
        )
    clauses = []
    kinds: list[str] = []
    if chosen is not None:
        kinds = sorted({c.kind for c in chosen.clauses})
        for clause in chosen.clauses:
            if kind and clause.kind != kind:
                continue
            clauses.append(
                {
                    "id": clause.id,
                    "kind": clause.kind,
                    "title": clause.title or "",
                    "quote": clause.source.quote or "",
                    "url": clause.source.url or "",
                    "note": clause.source.note or "",
                    "assumption": clause.source.assumption,
                    "overrides": clause.overrides,
                    "until": clause.effective.until.date().isoformat()
                    if clause.effective.until
                    else (clause.effective.until_event or ""),
                }
            )
    return {
        "chart": svg.timeline(spans, now=now),
        "versions": [s.to_json() for s in rows],
        "chosen": None if chosen is None else chosen.key,
        "chosen_title": "" if chosen is None else (chosen.title or ""),
        "clauses": clauses,
        "kinds": kinds,
        "kind": kind,
    }


# ---------------------------------------------------------------------------------------------
# desk


def desk_list(app: FastAPI, principal: Principal) -> list[dict[str, Any]]:
    """Every first-refusal request the key may read (open and closed), newest first."""
    from firstright.api.rofr import desk_of  # noqa: PLC0415

    try:
        desk = desk_of(app)
        rows = desk.list_requests(principal, open_only=False, limit=DESK_ROWS_MAX)
    except FirstrightError:
        return []
    out = []
    for row in rows:
        shown = desk.show(principal, row["request_id"])
        out.append(
            {
                **row,
                "outcome": shown["outcome"],
                "quantity_gpus": shown["quantity_gpus"],
                "contract": shown["contract"],
                "clause": shown["clause"],
                "created_at": shown["created_at"],
                "timers": shown["timers"],
                "decisions": len(shown.get("decisions", [])),
            }
        )
    out.sort(key=lambda r: r["created_at"], reverse=True)
    return out


# ---------------------------------------------------------------------------------------------
# traffic


def traffic_charts(
    backends: Sequence[dict[str, Any]], refusals: Sequence[dict[str, Any]]
) -> dict[str, str]:
    """The split by backend (coloured by the vendor whose model served), latency p50 per
    backend, and refusals by reason."""
    vendors = sorted({r["vendor"] or "" for r in backends})
    split = svg.bars(
        [
            svg.Bar(
                label=f"{r['backend'] or '(none)'}",
                value=r["requests"],
                note=f"{r['requests']:,} req · {r['share_pct']}% · {r['vendor'] or '—'} model",
                colour=svg.PALETTE[vendors.index(r["vendor"] or "") % len(svg.PALETTE)],
            )
            for r in backends
        ],
        title="requests by backend",
    )
    latency = svg.bars(
        [
            svg.Bar(
                label=f"{r['backend'] or '(none)'}",
                value=r["latency_ms_p50"] or 0,
                note=f"p50 {r['latency_ms_p50']} ms · p95 {r['latency_ms_p95']} ms",
                colour="#0891b2",
            )
            for r in backends
            if r["latency_ms_p50"] is not None
        ],
        title="latency by backend",
    )
    refused = svg.bars(
        [
            svg.Bar(
                label=f"{r['backend']} · {r['reason']}",
                value=r["count"],
                note=f"{r['count']:,} refusals",
                colour="#dc2626",
            )
            for r in refusals
        ],
        title="refusals by backend and reason",
        label_w=230,
    )
    return {"split_chart": split, "latency_chart": latency, "refusal_chart": refused}


# ---------------------------------------------------------------------------------------------
# money


def money(engine: Engine, *, party: str | None) -> dict[str, Any]:
    """Money flows per quarter (from the ledger) and each commitment's burn-down."""
    entries = LedgerStore(engine).entries(party=party)
    flows: dict[tuple[str, str, str, str, str], int] = {}
    nets: dict[tuple[str, str, str], int] = {}
    drawn: dict[tuple[str, str], dict[str, int]] = {}
    for entry in entries:
        quarter = quarter_of(entry.period)
        line = entry.line
        if line.kind.value == "COMMIT_DRAWDOWN":
            per = drawn.setdefault((line.contract or "", line.clause_id or ""), {})
            per[quarter] = per.get(quarter, 0) + entry.amount_micros
        if not line.kind.moves_money:
            continue
        key = (quarter, line.payer, line.payee, line.kind.value, line.clause_id or "list price")
        flows[key] = flows.get(key, 0) + entry.amount_micros
        a, b = sorted((line.payer, line.payee))
        sign = 1 if line.payer == a else -1
        nets[(quarter, a, b)] = nets.get((quarter, a, b), 0) + sign * entry.amount_micros
    periods: dict[str, dict[str, Any]] = {}
    for (quarter, payer, payee, kind, clause), amount in sorted(flows.items()):
        periods.setdefault(quarter, {"period": quarter, "flows": [], "net": []})["flows"].append(
            {
                "payer": payer,
                "payee": payee,
                "kind": kind,
                "clause_id": clause,
                "amount_micros": amount,
            }
        )
    for (quarter, a, b), net in sorted(nets.items()):
        if net == 0:
            continue
        payer, payee = (a, b) if net > 0 else (b, a)
        periods.setdefault(quarter, {"period": quarter, "flows": [], "net": []})["net"].append(
            {"payer": payer, "payee": payee, "amount_micros": abs(net)}
        )
    return {
        "periods": [periods[q] for q in sorted(periods)],
        "commitments": _burn_down(drawn),
    }


def _burn_down(drawn: dict[tuple[str, str], dict[str, int]]) -> list[dict[str, Any]]:
    if not drawn:
        return []
    contracts = _contracts()
    out = []
    for (contract_key, clause_id), per in sorted(drawn.items()):
        amount_micros = 0
        exact = contracts.get(contract_key)
        versions = [exact] if exact is not None else contracts.versions(contract_key)
        for contract in versions:  # the latest version that has the clause states the amount
            for clause in contract.clauses:
                if isinstance(clause, CommitmentClause) and clause.id == clause_id:
                    amount_micros = int(clause.params.amount_usd * 1_000_000)
        cumulative = 0
        points = []
        for quarter in sorted(per):
            cumulative += per[quarter]
            points.append(
                {
                    "period": quarter,
                    "drawn_micros": per[quarter],
                    "cumulative_micros": cumulative,
                    "remaining_micros": amount_micros - cumulative,
                }
            )
        out.append(
            {
                "commitment": f"{contract_key}#{clause_id}",
                "amount_micros": amount_micros,
                "points": points,
            }
        )
    return out


def statements(engine: Engine, period: str, *, party: str | None) -> list[dict[str, Any]]:
    if not period:
        return []
    from firstright.services.settlement import statements_for  # noqa: PLC0415

    found = statements_for(engine, period)
    return [s.to_json() for s in found if party is None or s.involves(party)]


def burn_chart(money_data: dict[str, Any]) -> list[dict[str, str]]:
    charts = []
    for commitment in money_data["commitments"]:
        charts.append(
            {
                "title": commitment["commitment"],
                "svg": svg.step_line(
                    [
                        (p["period"], micros_to_decimal(p["cumulative_micros"]))
                        for p in commitment["points"]
                    ],
                    label=f"drawn from {commitment['commitment']}",
                ),
            }
        )
    return charts


def flow_chart(money_data: dict[str, Any]) -> str:
    totals: dict[str, int] = {}
    for period in money_data["periods"]:
        for net in period["net"]:
            key = f"{net['payer']} → {net['payee']}"
            totals[key] = totals.get(key, 0) + net["amount_micros"]
    return svg.bars(
        [
            svg.Bar(label=k, value=v, note=format_usd(v, 0), colour=svg.PALETTE[i])
            for i, (k, v) in enumerate(sorted(totals.items(), key=lambda kv: -kv[1]))
        ],
        title="net flows",
    )


# ---------------------------------------------------------------------------------------------
# what-if


def whatif_page(a: str, b: str) -> dict[str, Any]:
    from firstright.services import demo_capacity  # noqa: PLC0415
    from firstright.services.whatif import compare, governing_side  # noqa: PLC0415

    contracts = _contracts()
    keys = [c.key for c in contracts]
    requests = demo_capacity.load_demand()
    sides = []
    for key in (a, b):
        contract = contracts.get(key)
        if contract is None:
            return {"keys": keys, "a": a, "b": b, "error": f"unknown contract version {key!r}"}
        sides.append(governing_side([contract], requests))
    result = compare(requests, sides[0], sides[1]).to_json()
    chart = svg.paired_bars(
        [(r["provider"], Decimal(r["a_pct"]), Decimal(r["b_pct"])) for r in result["share"]],
        names=(a, b),
    )
    return {"keys": keys, "a": a, "b": b, "error": "", "result": result, "chart": chart}
