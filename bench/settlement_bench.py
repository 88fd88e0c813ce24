"""Settlement throughput: usage records aggregated and rated per second (DuckDB over Arrow).

Generates N synthetic usage records (gateway tokens across 40 models and 10,000 tenants,
capacity GPU-hours, revenue) in the store's Arrow schema, then times
``firstright.adapters.duckdb_rating.rate_usage`` — the aggregation pass over every record plus
the rating join — against the plain DuckDB group-by of the same records in the same run (the
anchor). Medians over several runs. Also times reading records from a SQLite store into Arrow,
which is the step before rating and is reported separately.

    .venv/bin/python -m bench.settlement_bench            # 5M records, 3 runs
    BENCH_SETTLEMENT_RECORDS=1000000 .venv/bin/python -m bench.settlement_bench
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


def store_read_rate(rows: int = 100_000) -> int:
    """Records per second read from a SQLite store into Arrow."""
    with tempfile.TemporaryDirectory() as folder:
        engine = open_engine(f"sqlite:///{folder}/bench.db")
        try:
            migrate(engine)
            start = datetime(2025, 1, 1, tzinfo=UTC)
            store = UsageStore(engine)
            for offset in range(0, rows, 50_000):
                store.insert_many(
                    UsageRecord(
                        record_id=f"g{i}",
                        source="gateway",
                        occurred_at=start + timedelta(seconds=i),
                        party="lab",
                        provider="azure",
                        model="model-01",
                        input_tokens=i % 4000,
                        output_tokens=i % 1000,
                    )
                    for i in range(offset, min(rows, offset + 50_000))
                )
            began = time.perf_counter()
            table = store.read_arrow()
            elapsed = time.perf_counter() - began
            assert table.num_rows == rows
        finally:
            engine.dispose()
    return int(rows / elapsed)


def main() -> dict[str, object]:
    records = int(os.environ.get("BENCH_SETTLEMENT_RECORDS", "5000000"))
    runs = int(os.environ.get("BENCH_SETTLEMENT_RUNS", "3"))
    con = duckdb.connect()
    usage: pa.Table = con.sql(GENERATE_SQL.format(n=records)).to_arrow_table()
    usage = usage.cast(SETTLEMENT_SCHEMA)
    terms = MoneyTerms(ContractSet([Contract.model_validate(CONTRACT)]))
    con.register("usage", usage)
    rating_s: list[float] = []
    group_by_s: list[float] = []
    result = None
    for _ in range(runs):
        began = time.perf_counter()
        con.execute(GROUP_BY_SQL).fetchall()
        group_by_s.append(time.perf_counter() - began)
        began = time.perf_counter()
        result = rate_usage(usage, terms)
        rating_s.append(time.perf_counter() - began)
    assert result is not None and result.records == records
    con.close()
    return {
        "records": records,
        "runs": runs,
        "rating_records_per_s_median": _median_rate(records, rating_s),
        "plain_group_by_records_per_s_median": _median_rate(records, group_by_s),
        "rating_s_median": round(statistics.median(rating_s), 3),
        "groups": len(result.usage) + len(result.revenue),
        "sqlite_store_read_records_per_s": store_read_rate(),
        "target_records_per_s": 5_000_000,
    }


if __name__ == "__main__":
    for key, value in main().items():
        print(f"{key}: {value}")
