"""Rating and aggregation in DuckDB over Arrow (or Parquet) usage data.

Two SQL passes:

1. **aggregate** every usage record into a group per (time slice, source, parties, provider,
   model, GPU type, channel, product, currency). A time slice is found with a ``CASE`` over
   the sorted instants where a month starts or the contract terms change, so no per-row
   date arithmetic is done. This pass reads every record; it is the one that has to be fast.
2. **rate** the groups: join them with the price chosen for each distinct rating key (chosen by
   the pure domain, :func:`firstright.domain.ledger.usage_lines.price_group`) and multiply
   token and GPU-hour sums by integer rates into exact pico-USD (HUGEINT).

The result is a list of :class:`~firstright.domain.ledger.usage_lines.UsageGroup` with their pico
totals; rounding happens once per statement line in the domain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from firstright.adapters.usage_store import SETTLEMENT_SCHEMA
from firstright.domain.ledger.periods import month_of, month_start, months_between, next_month
from firstright.domain.ledger.rating import PriceChoice
from firstright.domain.ledger.terms import MoneyTerms, from_us, to_us
from firstright.domain.ledger.usage_lines import UsageGroup, price_group, rating_key
from firstright.errors import InputError, StorageError

AGGREGATE_SQL = """
SELECT {slice_case} AS slice,
       u.source, u.party, u.counterparty, u.provider, u.model, u.gpu_type,
       u.channel, u.product,
       CASE WHEN u.source = 'revenue' THEN u.tenant END AS tenant,
       u.currency,
       count(*) AS records,
       sum(u.input_tokens)::HUGEINT AS input_tokens,
       sum(u.output_tokens)::HUGEINT AS output_tokens,
       sum(u.gpu_hours_micros)::HUGEINT AS gpu_hours_micros,
       sum(u.amount_micros)::HUGEINT AS amount_micros
FROM usage u
GROUP BY ALL
"""

NEGATIVE_SQL = """
SELECT count(*) FROM usage
WHERE input_tokens < 0 OR output_tokens < 0 OR gpu_hours_micros < 0
   OR (source <> 'revenue' AND amount_micros < 0)
"""

RATE_SQL = """
SELECT g.*,
       g.input_tokens * r.input_pico AS input_pico,
       g.output_tokens * r.output_pico AS output_pico,
       g.gpu_hours_micros * r.gpu_micro AS gpu_pico
FROM groups g JOIN rates r
  ON g.rating_id = r.rating_id
"""


@dataclass(frozen=True, slots=True)
class RatedGroup:
    group: UsageGroup
    choice: PriceChoice
    input_pico: int | None
    output_pico: int | None
    gpu_pico: int | None


@dataclass(frozen=True, slots=True)
class RatingResult:
    usage: list[RatedGroup]
    revenue: list[UsageGroup]
    records: int


def _slices(terms: MoneyTerms, low_us: int, high_us: int) -> list[tuple[int, int, str, int]]:
    """(slice id, start_us, month, segment) for every slice between two instants."""
    first = month_of(from_us(low_us))
    last = month_of(from_us(high_us))
    starts = {to_us(month_start(m)) for m in months_between(first, last)}
    starts.update(b for b in terms.boundaries_us if low_us <= b <= high_us)
    found: list[tuple[int, int, str, int]] = []
    for index, start in enumerate(sorted(starts), start=1):
        found.append((index, start, month_of(from_us(start)), terms.segment_of_us(start)))
    return found


def _int(value: Any) -> int:
    return int(value) if value is not None else 0


def rate_usage(usage: pa.Table, terms: MoneyTerms, *, threads: int | None = None) -> RatingResult:
    """Aggregate and rate every record of ``usage`` (an Arrow table with the store's columns)."""
    if usage.num_rows == 0:
        return RatingResult([], [], 0)
    usage = usage.select(SETTLEMENT_SCHEMA.names)
    bounds = pc.min_max(usage.column("occurred_us"))
    low, high = int(bounds["min"].as_py()), int(bounds["max"].as_py())
    # Start the first slice at the first month start so every record has a slice.
    low = to_us(month_start(month_of(from_us(low))))
    slices = _slices(terms, low, high)
    by_slice = {s[0]: (s[2], s[3]) for s in slices}
    try:
        con = duckdb.connect()
        try:
            if threads:
                con.execute(f"SET threads = {int(threads)}")
            con.register("usage", usage)
            negative = con.execute(NEGATIVE_SQL).fetchall()[0]
            if negative[0]:
                raise InputError(
                    f"{negative[0]} usage records have a negative quantity or amount; "
                    "quantities are never negative"
                )
            # The slice of a record: a CASE over the few slice starts (much cheaper than a join).
            slice_case = (
                "CASE "
                + " ".join(
                    f"WHEN u.occurred_us >= {start} THEN {index}"
                    for index, start, _, _ in reversed(slices)
                )
                + " ELSE 0 END"
            )
            grouped: pa.Table = con.sql(
                AGGREGATE_SQL.format(slice_case=slice_case)
            ).to_arrow_table()
            rows = grouped.to_pylist()
            groups: list[UsageGroup] = []
            for row in rows:
                month, segment = by_slice[row["slice"]]
                groups.append(
                    UsageGroup(
                        month=month,
                        segment=segment,
                        source=row["source"],
                        party=row["party"],
                        counterparty=row["counterparty"],
                        provider=row["provider"],
                        model=row["model"],
                        gpu_type=row["gpu_type"],
                        channel=row["channel"],
                        product=row["product"],
                        tenant=row["tenant"],
                        currency=row["currency"],
                        records=int(row["records"]),
                        input_tokens=_int(row["input_tokens"]),
                        output_tokens=_int(row["output_tokens"]),
                        gpu_hours_micros=_int(row["gpu_hours_micros"]),
                        amount_micros=_int(row["amount_micros"]),
                    )
                )
            revenue = [g for g in groups if g.source == "revenue"]
            metered = [g for g in groups if g.source != "revenue"]
            choices: dict[tuple[Any, ...], tuple[int, PriceChoice]] = {}
            rating_ids: list[int] = []
            for group in metered:
                key = rating_key(group)
                if key not in choices:
                    choices[key] = (len(choices), price_group(terms, group))
                rating_ids.append(choices[key][0])
            rates = sorted(choices.values(), key=lambda item: item[0])
            rate_table = pa.table(
                {
                    "rating_id": pa.array([i for i, _ in rates], pa.int64()),
                    "input_pico": pa.array(
                        [c.input_pico_per_token if c.mode == "tokens" else None for _, c in rates],
                        pa.int64(),
                    ),
                    "output_pico": pa.array(
                        [c.output_pico_per_token if c.mode == "tokens" else None for _, c in rates],
                        pa.int64(),
                    ),
                    "gpu_micro": pa.array(
                        [c.micro_per_gpu_hour if c.mode == "gpu" else None for _, c in rates],
                        pa.int64(),
                    ),
                }
            )
            group_table = pa.table(
                {
                    "group_index": pa.array(range(len(metered)), pa.int64()),
                    "rating_id": pa.array(rating_ids, pa.int64()),
                    "input_tokens": pa.array([g.input_tokens for g in metered], pa.int64()),
                    "output_tokens": pa.array([g.output_tokens for g in metered], pa.int64()),
                    "gpu_hours_micros": pa.array([g.gpu_hours_micros for g in metered], pa.int64()),
                }
            )
            con.register("groups", group_table)
            con.register("rates", rate_table)
            rated_rows = con.execute(RATE_SQL + " ORDER BY g.group_index").fetchall()
        finally:
            con.close()
    except duckdb.Error as exc:
        raise StorageError(f"rating usage in DuckDB: {exc}") from exc
    by_id = {index: choice for index, choice in choices.values()}
    rated: list[RatedGroup] = []
    for index, rating_id, _i, _o, _g, input_pico, output_pico, gpu_pico in rated_rows:
        group = metered[index]
        rated.append(
            RatedGroup(
                group,
                by_id[rating_id],
                None if input_pico is None else int(input_pico),
                None if output_pico is None else int(output_pico),
                None if gpu_pico is None else int(gpu_pico),
            )
        )
    assert len(rated) == len(metered)
    total = sum(g.records for g in groups)
    return RatingResult(rated, revenue, total)


def month_bounds_us(first_month: str, last_month: str) -> tuple[int, int]:
    """``[start of first_month, start of the month after last_month)`` in epoch microseconds."""
    return to_us(month_start(first_month)), to_us(month_start(next_month(last_month)))
