"""Settlement throughput: usage records aggregated and rated per second (DuckDB over Arrow).

Generates N synthetic usage records (gateway tokens across 40 models and 10,000 tenants,
capacity GPU-hours, revenue) in the store's Arrow schema (dimensions as dictionary arrays, as
``UsageStore.read_arrow`` returns them), then times
``firstright.adapters.duckdb_rating.rate_usage`` — the aggregation pass over every record plus
the rating join — against the plain DuckDB group-by of the same records in the same run (the
anchor; also over plain text columns). Medians over several runs, and their ratio. Also times
the store: batch inserts of validated records and the read into Arrow (SQLite), which come
before rating and are reported separately.

    .venv/bin/python -m bench.settlement_bench            # 5M records, 5 runs
    BENCH_SETTLEMENT_RECORDS=1000000 BENCH_SETTLEMENT_RUNS=3 python -m bench.settlement_bench
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import pyarrow as pa

from firstright.adapters.db import migrate, open_engine
from firstright.adapters.duckdb_rating import rate_usage
from firstright.adapters.usage_store import SETTLEMENT_SCHEMA, UsageStore
from firstright.domain.contracts.model import Contract
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.ledger.terms import MoneyTerms
from firstright.domain.usage import UsageRecord

CONTRACT: dict[str, Any] = {
    "contract_id": "bench-deal",
    "version": "1",
    "effective_from": "2025-01-01T00:00:00Z",
    "parties": {"bigcloud": {"clouds": ["azure"]}, "lab": {}},
    "clauses": [
        {
            "id": "prices",
            "kind": "price",
            "seller": "bigcloud",
            "buyer": "lab",
            "params": {
                "token_rates": [
                    {"model": "model-0*", "input_usd_per_mtok": "2.5", "output_usd_per_mtok": "10"}
                ],
                "gpu_rates": [
                    {"provider": "azure", "accelerator": "H100", "usd_per_gpu_hour": "2.35"}
                ],
                "discount_pct": "12.5",
            },
            "source": {"assumption": True},
        },
        {
            "id": "commit",
            "kind": "commitment",
            "payer": "lab",
            "payee": "bigcloud",
            "params": {
                "amount_usd": "1000000",
                "providers": ["azure"],
                "period_start": "2025-04-15T00:00:00Z",
                "period_end": "2025-10-01T00:00:00Z",
            },
            "source": {"assumption": True},
        },
    ],
}

GENERATE_SQL = """
SELECT
    'r' || i::VARCHAR AS record_id,
    CASE WHEN i % 100 = 0 THEN 'capacity' WHEN i % 1000 = 1 THEN 'revenue' ELSE 'gateway' END
        AS source,
    (1735689600000000 + (hash(i * 8 + 1) % 31536000000000))::BIGINT AS occurred_us,
    'lab' AS party,
    NULL::VARCHAR AS counterparty,
    't' || lpad((hash(i * 8 + 2) % 10000)::VARCHAR, 5, '0') AS tenant,
    CASE WHEN i % 1000 = 1 THEN 'api' END AS channel,
    NULL::VARCHAR AS product,
    'azure' AS provider,
    'model-' || lpad((hash(i * 8 + 3) % 40)::VARCHAR, 2, '0') AS model,
    (1 + hash(i * 8 + 4) % 4000)::BIGINT AS input_tokens,
    (1 + hash(i * 8 + 5) % 1000)::BIGINT AS output_tokens,
    CASE WHEN i % 100 = 0 THEN 'H100' END AS gpu_type,
    CASE WHEN i % 100 = 0 THEN 8000000 ELSE 0 END::BIGINT AS gpu_hours_micros,
    (hash(i * 8 + 6) % 100000)::BIGINT AS amount_micros,
    'USD' AS currency
FROM range({n}) r(i)
"""

GROUP_BY_SQL = """
SELECT party, provider, model, source, count(*), sum(input_tokens), sum(output_tokens),
       sum(amount_micros)
FROM usage GROUP BY ALL
"""


def _median_rate(records: int, seconds: list[float]) -> int:
    return int(records / statistics.median(seconds))


def _records(rows: int) -> list[UsageRecord]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    return [
        UsageRecord(
            record_id=f"g{i}",
            source="gateway",
            occurred_at=start + timedelta(seconds=i),
            party="lab",
            tenant=f"t{i % 100}",
            provider="azure",
            model=f"model-{i % 40:02d}",
            input_tokens=i % 4000,
            output_tokens=i % 1000,
            amount_micros=i % 100_000,
        )
        for i in range(rows)
    ]


def store_rates(rows: int, runs: int) -> dict[str, int]:
    """Records per second written to (validated records, batches of 10,000) and read from a
    SQLite store into Arrow; medians over ``runs`` fresh databases."""
    records = _records(rows)
    insert_s: list[float] = []
    read_s: list[float] = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as folder:
            engine = open_engine(f"sqlite:///{folder}/bench.db")
            try:
                migrate(engine)
                store = UsageStore(engine)
                began = time.perf_counter()
                for offset in range(0, rows, 10_000):
                    store.insert_many(records[offset : offset + 10_000])
                insert_s.append(time.perf_counter() - began)
                began = time.perf_counter()
                table = store.read_arrow()
                read_s.append(time.perf_counter() - began)
                assert table.num_rows == rows
            finally:
                engine.dispose()
    return {
        "sqlite_insert_records_per_s_median": _median_rate(rows, insert_s),
        "sqlite_read_to_arrow_records_per_s_median": _median_rate(rows, read_s),
    }


def main() -> dict[str, object]:
    records = int(os.environ.get("BENCH_SETTLEMENT_RECORDS", "5000000"))
    runs = int(os.environ.get("BENCH_SETTLEMENT_RUNS", "5"))
    store_rows = int(os.environ.get("BENCH_SETTLEMENT_STORE_RECORDS", "100000"))
    con = duckdb.connect()
    generated: pa.Table = con.sql(GENERATE_SQL.format(n=records)).to_arrow_table()
    # The store reads dimensions as dictionary arrays; give rating the same shape.
    usage = generated.select(SETTLEMENT_SCHEMA.names).cast(SETTLEMENT_SCHEMA)
    terms = MoneyTerms(ContractSet([Contract.model_validate(CONTRACT)]))
    con.register("usage", usage)
    con.register("usage_text", generated)
    rating_s: list[float] = []
    group_by_s: list[float] = []
    group_by_text_s: list[float] = []
    result = None
    for _ in range(runs):
        began = time.perf_counter()
        con.execute(GROUP_BY_SQL).fetchall()
        group_by_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        con.execute(GROUP_BY_SQL.replace("FROM usage", "FROM usage_text")).fetchall()
        group_by_text_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        result = rate_usage(usage, terms)
        rating_s.append(time.perf_counter() - began)
    assert result is not None and result.records == records
    con.close()
    rating = _median_rate(records, rating_s)
    anchor = _median_rate(records, group_by_s)
    return {
        "records": records,
        "runs": runs,
        "rating_records_per_s_median": rating,
        "plain_group_by_records_per_s_median": anchor,
        "plain_group_by_text_columns_records_per_s_median": _median_rate(records, group_by_text_s),
        "rating_to_plain_group_by_ratio": round(rating / anchor, 2),
        "rating_s_median": round(statistics.median(rating_s), 3),
        "groups": len(result.usage) + len(result.revenue),
        **store_rates(store_rows, 3),
        "target_records_per_s": 5_000_000,
    }


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value}")
