"""A deliberately simple reference model (``fractions.Fraction``, one record at a time) that the
settlement engine (DuckDB aggregation, rating by segment, booking by difference) must match to
the micro-unit on random contracts and usage."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firstright.adapters.db import migrate, open_engine
from firstright.adapters.usage_store import UsageStore
from firstright.domain.contracts.model import Contract
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.money import round_to_micros, split_largest_remainder
from firstright.domain.usage import UsageRecord
from firstright.services.settlement import settle

START = datetime(2025, 1, 1, tzinfo=UTC)
MONTH_STARTS = [datetime(2025, m, 1, tzinfo=UTC) for m in (1, 2, 3)]
MODELS = ["m-a", "m-b", "x-c"]

rates = st.integers(min_value=0, max_value=20_000).map(lambda n: Decimal(n) / 1000)


@st.composite
def scenarios(draw: Any) -> tuple[dict[str, Any], list[UsageRecord]]:
    tiered = draw(st.booleans())
    share: dict[str, Any] = {
        "basis": {"channels": ["api"]},
        "period": draw(st.sampled_from(["month", "quarter", "year"])),
    }
    if tiered:
        bound = draw(st.integers(min_value=1, max_value=500))
        share["tiers"] = [
            {"up_to_usd": str(bound), "rate": str(draw(st.integers(0, 100)) / 100)},
            {"rate": str(draw(st.integers(0, 100)) / 100)},
        ]
    else:
        share["rate"] = str(Decimal(draw(st.integers(0, 10_000))) / 10_000)
    if draw(st.booleans()):
        share["cap_usd"] = str(draw(st.integers(0, 300)))
    price: dict[str, Any] = {
        "token_rates": [
            {
                "model": "m-a",
                "input_usd_per_mtok": str(draw(rates)),
                "output_usd_per_mtok": str(draw(rates)),
            },
            {
                "model": "m-*",
                "input_usd_per_mtok": str(draw(rates)),
                "output_usd_per_mtok": str(draw(rates)),
            },
        ],
        "gpu_rates": [
            {"provider": "azure", "accelerator": "H100", "usd_per_gpu_hour": str(draw(rates))}
        ],
    }
    if draw(st.booleans()):
        price["discount_pct"] = str(draw(st.integers(0, 100)))
    contract = {
        "contract_id": "random-deal",
        "version": "1",
        "effective_from": START.isoformat(),
        "parties": {"bigcloud": {"clouds": ["azure"]}, "lab": {}},
        "clauses": [
            {
                "id": "prices",
                "kind": "price",
                "seller": "bigcloud",
                "buyer": "lab",
                "params": price,
                "source": {"assumption": True},
            },
            {
                "id": "share",
                "kind": "revenue_share",
                "payer": "lab",
                "payee": "bigcloud",
                "params": share,
                "source": {"assumption": True},
            },
            {
                "id": "commit",
                "kind": "commitment",
                "payer": "lab",
                "payee": "bigcloud",
                "params": {
                    "amount_usd": str(draw(st.integers(1, 2_000))),
                    "providers": ["azure"],
                    "period_start": START.isoformat(),
                    "period_end": datetime(2025, 4, 1, tzinfo=UTC).isoformat(),
                },
                "source": {"assumption": True},
            },
        ],
    }
    records: list[UsageRecord] = []
    for i in range(draw(st.integers(0, 40))):
        at = START + timedelta(seconds=draw(st.integers(0, 89 * 86_400)))
        kind = draw(st.sampled_from(["gateway", "gateway", "capacity", "revenue"]))
        common = {"record_id": f"r{i}", "occurred_at": at, "party": "lab"}
        if kind == "gateway":
            records.append(
                UsageRecord(
                    **common,
                    source="gateway",
                    provider="azure",
                    model=draw(st.sampled_from(MODELS)),
                    input_tokens=draw(st.integers(0, 10**7)),
                    output_tokens=draw(st.integers(0, 10**6)),
                    amount_micros=draw(st.integers(0, 10**8)),
                )
            )
        elif kind == "capacity":
            records.append(
                UsageRecord(
                    **common,
                    source="capacity",
                    provider="azure",
                    gpu_type="H100",
                    gpu_hours_micros=draw(st.integers(0, 10**9)),
                )
            )
        else:
            records.append(
                UsageRecord(
                    **common,
                    source="revenue",
                    channel=draw(st.sampled_from(["api", "other"])),
                    amount_micros=draw(st.integers(0, 10**9)),
                )
            )
    return contract, records


def month_of(at: datetime) -> str:
    return f"{at.year:04d}-{at.month:02d}"


def reference(contract: dict[str, Any], records: list[UsageRecord]) -> dict[str, int]:
    """Totals per kind for Q1, computed the plain way."""
    clauses = {c["id"]: c for c in contract["clauses"]}
    price = clauses["prices"]["params"]
    exact: dict[tuple[Any, ...], Fraction] = defaultdict(Fraction)
    for r in records:
        month = month_of(r.occurred_at)
        if r.source == "gateway":
            model = r.model or ""
            rate = next((t for t in price["token_rates"] if t["model"] == model), None) or next(
                (
                    t
                    for t in price["token_rates"]
                    if t["model"].endswith("*") and model.startswith(t["model"][:-1])
                ),
                None,
            )
            if rate is not None:
                for meter, tokens, key in (
                    ("in", r.input_tokens, "input_usd_per_mtok"),
                    ("out", r.output_tokens, "output_usd_per_mtok"),
                ):
                    usd = Fraction(tokens) * Fraction(Decimal(rate[key])) / 10**6
                    exact[(month, model, meter)] += usd
            elif "discount_pct" in price:
                factor = 1 - Fraction(Decimal(price["discount_pct"])) / 100
                exact[(month, model, "discount")] += Fraction(r.amount_micros, 10**6) * factor
            else:
                exact[(month, model, "list")] += Fraction(r.amount_micros, 10**6)
        elif r.source == "capacity":
            usd = Fraction(r.gpu_hours_micros, 10**6) * Fraction(
                Decimal(price["gpu_rates"][0]["usd_per_gpu_hour"])
            )
            exact[(month, "H100", "gpu")] += usd
    usage = sum(round_to_micros(v) for v in exact.values())
    share = clauses["share"]["params"]
    unit = share["period"]
    basis: dict[str, int] = defaultdict(int)
    for r in records:
        if r.source == "revenue" and r.channel == "api":
            m = month_of(r.occurred_at)
            key = (
                m
                if unit == "month"
                else (f"Q{(r.occurred_at.month - 1) // 3}" if unit == "quarter" else "Y")
            )
            basis[key] += r.amount_micros
    total = Fraction(0)
    for amount in basis.values():
        b = Fraction(amount, 10**6)
        if "rate" in share:
            total += b * Fraction(Decimal(share["rate"]))
        else:
            bound = Fraction(Decimal(share["tiers"][0]["up_to_usd"]))
            total += min(b, bound) * Fraction(Decimal(share["tiers"][0]["rate"]))
            total += max(b - bound, 0) * Fraction(Decimal(share["tiers"][1]["rate"]))
    if "cap_usd" in share:
        total = min(total, Fraction(Decimal(share["cap_usd"])))
    committed = int(clauses["commit"]["params"]["amount_usd"]) * 10**6
    return {
        "USAGE": usage,
        "REV_SHARE": round_to_micros(total),
        "COMMIT_DRAWDOWN": min(committed, usage),
        "TRUE_UP": max(0, committed - usage),
    }


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(scenarios())
def test_engine_agrees_with_reference(
    tmp_path_factory: Any, scenario: tuple[dict[str, Any], list[UsageRecord]]
) -> None:
    contract_data, records = scenario
    folder: Path = tmp_path_factory.mktemp("ref")
    engine = open_engine(f"sqlite:///{folder / 'ref.db'}")
    try:
        migrate(engine)
        if records:
            UsageStore(engine).insert_many(records)
        contracts = ContractSet([Contract.model_validate(contract_data)])
        report = settle(engine, contracts, "2025-Q1", now=datetime(2025, 4, 5, tzinfo=UTC))
        again = settle(engine, contracts, "2025-Q1", now=datetime(2025, 4, 5, tzinfo=UTC))
    finally:
        engine.dispose()
    assert again.posted == []
    got: dict[str, int] = defaultdict(int)
    for statement in report.statements:
        for line in statement.lines:
            got[line.kind] += line.amount_micros
    expected = reference(contract_data, records)
    for kind, amount in expected.items():
        assert got.get(kind, 0) == amount, (kind, got, expected)
    for statement in report.statements:
        assert statement.net_micros == statement.a_owes_b_micros - statement.b_owes_a_micros


@given(st.integers(-(10**12), 10**12), st.lists(st.integers(0, 10**6), min_size=1, max_size=8))
def test_splits_sum_to_the_whole(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        weights = [*weights[:-1], 1]
    parts = split_largest_remainder(total, weights)
    assert sum(parts) == total
