"""``/api/traffic``: model traffic through the gateway, from the usage records it metered.

    GET /api/traffic[?tenant=T]   the split by backend (``backends``); requests per tenant and
                                  backend (share, tokens, cost at list prices, latency p50/p95,
                                  requests served after a refusal); refusals and spills by
                                  backend and reason; per-model and overall totals; the time
                                  span of the records

Admins see every gateway record; a party sees the records it consumed (``party``), is the
counterparty of, or whose backend it operates (``operator``); tenant keys may not read traffic.
:func:`traffic_summary` is also what ``firstright demo`` prints.
"""

from __future__ import annotations

from collections import Counter
from typing import Annotated, Any

import orjson
import sqlalchemy as sa
from fastapi import APIRouter, Query
from sqlalchemy.engine import Engine

from firstright.adapters.db import storage_errors
from firstright.adapters.usage_store import usage_records
from firstright.api.deps import EngineDep, PrincipalDep
from firstright.api.placements import percent, reader_party

router = APIRouter(prefix="/api/traffic", tags=["traffic"])

TRAFFIC_ROWS_MAX = 1_000_000
"""Gateway records one summary reads at most (newest first beyond that are left out)."""


def _quantile(values: list[int], q: int) -> int | None:
    """The nearest-rank ``q``-th percentile of ``values`` (None when empty)."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, -(-q * len(ordered) // 100))
    return ordered[rank - 1]


def traffic_summary(
    engine: Engine, *, party: str | None, tenant: str | None = None
) -> dict[str, Any]:
    """Gateway traffic by backend (``backends``) and by tenant and backend (``by_backend``),
    refusals by reason, totals by model and overall (``tenant``: only that tenant's records)."""
    c = usage_records.c
    query = sa.select(
        c.occurred_at,
        c.tenant,
        c.backend,
        c.operator,
        c.vendor,
        c.model,
        c.input_tokens,
        c.output_tokens,
        c.amount_micros,
        c.latency_ms,
        c.status,
        c.refusals,
    ).where(c.source == "gateway")
    if party is not None:
        query = query.where(sa.or_(c.party == party, c.counterparty == party, c.operator == party))
    if tenant is not None:
        query = query.where(c.tenant == tenant)
    query = query.order_by(c.occurred_us.desc()).limit(TRAFFIC_ROWS_MAX)
    groups: dict[tuple[str | None, str | None, str | None, str | None], dict[str, Any]] = {}
    latencies: dict[tuple[str | None, str | None, str | None, str | None], list[int]] = {}
    refusals: Counter[tuple[str, str]] = Counter()
    models: dict[tuple[str | None, str | None], dict[str, int]] = {}
    total = 0
    amount_micros = 0
    all_latencies: list[int] = []
    first_at = last_at = None
    with storage_errors("reading gateway traffic"), engine.connect() as conn:
        for row in conn.execute(query):
            total += 1
            amount_micros += int(row.amount_micros)
            first_at = row.occurred_at if first_at is None else min(first_at, row.occurred_at)
            last_at = row.occurred_at if last_at is None else max(last_at, row.occurred_at)
            key = (row.tenant, row.backend, row.operator, row.vendor)
            group = groups.setdefault(
                key,
                {
                    "tenant": row.tenant,
                    "backend": row.backend,
                    "operator": row.operator,
                    "vendor": row.vendor,
                    "requests": 0,
                    "after_refusal": 0,
                    "errors": 0,
                    "input_tokens": 0,
                    "output_tokens": 0,
                    "amount_micros": 0,
                },
            )
            group["requests"] += 1
            group["errors"] += 1 if row.status is not None and row.status >= 400 else 0
            group["input_tokens"] += int(row.input_tokens)
            group["output_tokens"] += int(row.output_tokens)
            group["amount_micros"] += int(row.amount_micros)
            if row.latency_ms is not None:
                latencies.setdefault(key, []).append(int(row.latency_ms))
                all_latencies.append(int(row.latency_ms))
            refused = orjson.loads(row.refusals or "[]")
            if refused and row.backend is not None:
                group["after_refusal"] += 1
            for refusal in refused:
                backend, _, reason = str(refusal).partition(":")
                refusals[(backend, reason or "refused")] += 1
            model = models.setdefault((row.model, row.vendor), {"requests": 0, "amount_micros": 0})
            model["requests"] += 1
            model["amount_micros"] += int(row.amount_micros)
    by_backend = []
    for key, group in groups.items():
        values = latencies.get(key, [])
        by_backend.append(
            {
                **group,
                "share_pct": percent(group["requests"], total),
                "latency_ms_p50": _quantile(values, 50),
                "latency_ms_p95": _quantile(values, 95),
            }
        )
    by_backend.sort(key=lambda g: (g["tenant"] or "", -g["requests"], g["backend"] or ""))
    return {
        "backends": _split(groups, latencies, total),
        "requests": total,
        "amount_micros": amount_micros,
        "latency_ms_p50": _quantile(all_latencies, 50),
        "latency_ms_p95": _quantile(all_latencies, 95),
        "first_at": first_at.isoformat() if first_at is not None else None,
        "last_at": last_at.isoformat() if last_at is not None else None,
        "by_backend": by_backend,
        "refusals": [
            {"backend": backend, "reason": reason, "count": count}
            for (backend, reason), count in sorted(refusals.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "by_model": [
            {"model": model, "vendor": vendor, **totals}
            for (model, vendor), totals in sorted(
                models.items(), key=lambda kv: (-kv[1]["requests"], kv[0][0] or "")
            )
        ],
    }


def _split(
    groups: dict[tuple[str | None, str | None, str | None, str | None], dict[str, Any]],
    latencies: dict[tuple[str | None, str | None, str | None, str | None], list[int]],
    total: int,
) -> list[dict[str, Any]]:
    """The traffic split by backend, every tenant together."""
    split: dict[tuple[str | None, str | None, str | None], dict[str, Any]] = {}
    values: dict[tuple[str | None, str | None, str | None], list[int]] = {}
    for key, group in groups.items():
        _, backend, operator, vendor = key
        entry = split.setdefault(
            (backend, operator, vendor),
            {
                "backend": backend,
                "operator": operator,
                "vendor": vendor,
                "requests": 0,
                "after_refusal": 0,
                "errors": 0,
                "amount_micros": 0,
            },
        )
        for name in ("requests", "after_refusal", "errors", "amount_micros"):
            entry[name] += group[name]
        values.setdefault((backend, operator, vendor), []).extend(latencies.get(key, []))
    rows = [
        {
            **entry,
            "share_pct": percent(entry["requests"], total),
            "latency_ms_p50": _quantile(values[key], 50),
            "latency_ms_p95": _quantile(values[key], 95),
        }
        for key, entry in split.items()
    ]
    rows.sort(key=lambda r: (-r["requests"], r["backend"] or ""))
    return rows


@router.get("", summary="Gateway traffic by backend, refusals by reason, totals by model")
def traffic(
    engine: EngineDep,
    principal: PrincipalDep,
    tenant: Annotated[str | None, Query(max_length=200, description="Only this tenant.")] = None,
) -> dict[str, Any]:
    return traffic_summary(engine, party=reader_party(principal), tenant=tenant or None)
