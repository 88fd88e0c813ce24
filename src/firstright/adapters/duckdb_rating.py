"""Rating and aggregation in DuckDB over Arrow (or Parquet) usage data.

Two SQL passes:

1. **aggregate** every usage record into a group per (time slice, source, parties, provider,
   model, GPU type, channel, product, currency; tenant for revenue). This pass reads every record
   and is the one that has to be fast, so it never groups on text: each dimension arrives as an
   Arrow dictionary array (the store reads it that way), its integer codes are packed, together
   with the record's time slice, into one or a few ``BIGINT`` keys with vectorised arithmetic,
   and DuckDB groups on those keys. A time slice (a month, or the part of a month before or
   after a change of contract terms) is found by binary search over the few slice starts.
   Codes are decoded back to text only on the aggregated rows.
2. **rate** the groups: join them with the price chosen for each distinct rating key (chosen by
   the pure domain, :func:`firstright.domain.ledger.usage_lines.price_group`) and multiply
   token and GPU-hour sums by integer rates into exact pico-USD (HUGEINT). This runs on the
   aggregated rows, never per record.

Sums are exact (DuckDB sums ``BIGINT`` into ``HUGEINT``). The result is a list of
:class:`~firstright.domain.ledger.usage_lines.UsageGroup` with their pico totals; rounding
happens once per statement line in the domain.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from firstright.adapters.usage_store import SETTLEMENT_SCHEMA
from firstright.domain.ledger.periods import month_of, month_start, months_between, next_month
from firstright.domain.ledger.rating import PriceChoice
from firstright.domain.ledger.terms import MoneyTerms, from_us, to_us
from firstright.domain.ledger.usage_lines import UsageGroup, price_group, rating_key
from firstright.errors import InputError, StorageError

# The dimensions a group is made of (tenant only for revenue records) and the summed quantities.
DIMENSIONS = (
    "source",
    "party",
    "counterparty",
    "provider",
    "model",
    "gpu_type",
    "channel",
    "product",
    "tenant",
    "currency",
)
QUANTITIES = ("input_tokens", "output_tokens", "gpu_hours_micros", "amount_micros")
# A packed key stays below this bound so it never overflows a signed 64-bit integer.
KEY_SPAN_MAX = 2**62
PACK_THREADS_MAX = 8

AGGREGATE_SQL = """
SELECT {keys},
       count(*) AS records,
       sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens,
       sum(gpu_hours_micros) AS gpu_hours_micros,
       sum(amount_micros) AS amount_micros
FROM usage_keys
GROUP BY {keys}
ORDER BY {keys}
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


_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()


def _connection() -> duckdb.DuckDBPyConnection:
    """A fresh connection to the process's in-memory DuckDB (opening a database costs tens of
    milliseconds; a connection to an open one costs microseconds). Registered tables are
    private to the connection."""
    global _database  # noqa: PLW0603
    with _database_lock:
        if _database is None:
            _database = duckdb.connect()
        return _database.cursor()


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


@dataclass(frozen=True, slots=True)
class Coded:
    """One dimension as integer codes: 0 is null, ``i`` is ``values[i - 1]``."""

    name: str
    values: tuple[str, ...]
    constant: int | None
    """The code every record has, when there is only one (the dimension is then not packed)."""

    @property
    def span(self) -> int:
        return len(self.values) + 1

    def decode(self, codes: list[int]) -> list[str | None]:
        table: list[str | None] = [None, *self.values]
        return [table[code] for code in codes]


@dataclass(frozen=True, slots=True)
class KeyPlan:
    """How codes are packed: word ``i`` is ``((slice * s1 + c1) * s2 + c2) ...`` for its parts.

    Word 0 starts with the time slice; a new word starts before a product of spans would reach
    ``span_max``, so no word can overflow."""

    slice_span: int
    words: tuple[tuple[Coded, ...], ...]

    @staticmethod
    def build(slice_span: int, packed: list[Coded], span_max: int = KEY_SPAN_MAX) -> KeyPlan:
        assert 1 < slice_span < span_max
        words: list[list[Coded]] = [[]]
        product = slice_span
        for coded in packed:
            assert coded.span < span_max
            if product * coded.span >= span_max:
                words.append([])
                product = 1
            words[-1].append(coded)
            product *= coded.span
        return KeyPlan(slice_span, tuple(tuple(word) for word in words))

    @property
    def names(self) -> list[str]:
        return [f"k{i}" for i in range(len(self.words))]


def _as_dictionaries(usage: pa.Table) -> pa.Table:
    """Every dimension as a dictionary array with one dictionary per column."""
    wanted = pa.dictionary(pa.int32(), pa.string())
    columns: dict[str, Any] = {}
    for name in DIMENSIONS:
        column = usage.column(name)
        if not pa.types.is_dictionary(column.type):
            column = column.cast(wanted)
        columns[name] = column
    for name in ("occurred_us", *QUANTITIES):
        columns[name] = usage.column(name)
    return pa.table(columns).unify_dictionaries()


def _coded(table: pa.Table, name: str) -> Coded:
    column = table.column(name)
    values: tuple[str, ...] = ()
    if column.num_chunks:
        values = tuple(column.chunk(0).dictionary.to_pylist())
    assert all(v is not None for v in values), f"{name}: null inside a dictionary"
    constant: int | None = None
    if column.null_count == table.num_rows:
        constant = 0
    elif column.null_count == 0 and len(values) == 1:
        constant = 1
    return Coded(name, values, constant)


def _indices(array: pa.DictionaryArray) -> Any:
    """The dictionary indices as a numpy array, -1 for null (code = index + 1)."""
    indices = array.indices
    if array.null_count:
        indices = pc.fill_null(indices, -1)
    return indices.to_numpy()


def _pack_batch(
    batch: pa.RecordBatch, plan: KeyPlan, slice_starts_us: Any, revenue_code: int | None
) -> list[pa.Array]:
    """Key words of one batch, by Horner's rule in place: ``key = key * span + index`` per
    dimension, then the word's constant (Horner of all ones) turns indices into codes."""
    occurred = batch.column("occurred_us").to_numpy()
    slices = np.searchsorted(slice_starts_us, occurred, side="right").astype(np.int64)
    source = _indices(batch.column("source")) if revenue_code is not None else None
    words: list[pa.Array] = []
    for index, parts in enumerate(plan.words):
        key = slices if index == 0 else np.zeros(batch.num_rows, dtype=np.int64)
        ones = 0
        for coded in parts:
            indices = _indices(batch.column(coded.name))
            if coded.name == "tenant":
                # The tenant splits revenue only; every other record has tenant code 0.
                assert source is not None and revenue_code is not None
                indices = np.where(source == revenue_code - 1, indices, -1)
            key *= coded.span
            key += indices
            ones = ones * coded.span + 1
        key += ones
        words.append(pa.array(key, type=pa.int64()))
    return words


def pack_keys(
    table: pa.Table, plan: KeyPlan, slice_starts_us: Any, revenue_code: int | None
) -> pa.Table:
    """The packed key words of every record, next to its quantities (zero-copy where possible).

    Batches are packed on a small thread pool: numpy releases the GIL in these loops."""
    batches = table.to_batches()
    workers = max(1, min(len(batches), os.cpu_count() or 1, PACK_THREADS_MAX))
    with ThreadPoolExecutor(max_workers=workers) as pool:
        packed = list(
            pool.map(lambda b: _pack_batch(b, plan, slice_starts_us, revenue_code), batches)
        )
    columns: dict[str, Any] = {
        name: pa.chunked_array([words[index] for words in packed], type=pa.int64())
        for index, name in enumerate(plan.names)
    }
    for name in QUANTITIES:
        columns[name] = table.column(name)
    return pa.table(columns)


def unpack_keys(plan: KeyPlan, words: list[Any]) -> tuple[Any, dict[str, list[int]]]:
    """Slice ids and per-dimension codes of aggregated rows, from their key words."""
    codes: dict[str, list[int]] = {}
    slices: Any = None
    for index, parts in enumerate(plan.words):
        rest = np.asarray(words[index], dtype=np.int64)
        for coded in reversed(parts):
            rest, code = np.divmod(rest, coded.span)
            codes[coded.name] = code.tolist()
        if index == 0:
            slices = rest
        else:
            assert not rest.any()
    return slices, codes


def _check_quantities(usage: pa.Table, con: duckdb.DuckDBPyConnection) -> None:
    """Refuse negative quantities, and negative amounts outside revenue records."""
    lows = [pc.min(usage.column(name)).as_py() for name in QUANTITIES]
    if all(low is None or low >= 0 for low in lows):
        return
    negative = con.execute(NEGATIVE_SQL).fetchall()[0][0]
    if negative:
        raise InputError(
            f"{negative} usage records have a negative quantity or amount; "
            "quantities are never negative"
        )


def _aggregate(
    con: duckdb.DuckDBPyConnection, usage: pa.Table, slice_starts_us: list[int]
) -> list[dict[str, Any]]:
    """One row per group: slice id, the dimensions as text, records and exact sums."""
    table = _as_dictionaries(usage)
    coded = [_coded(table, name) for name in DIMENSIONS]
    source = coded[DIMENSIONS.index("source")]
    revenue_code = source.values.index("revenue") + 1 if "revenue" in source.values else None
    packed = [
        c for c in coded if c.constant is None and not (c.name == "tenant" and revenue_code is None)
    ]
    plan = KeyPlan.build(len(slice_starts_us) + 1, packed)
    starts = np.asarray(slice_starts_us, dtype=np.int64)
    con.register("usage_keys", pack_keys(table, plan, starts, revenue_code))
    keys = ", ".join(plan.names)
    found = con.execute(AGGREGATE_SQL.format(keys=keys)).fetchall()
    con.unregister("usage_keys")
    width = len(plan.names)
    slices, codes = unpack_keys(plan, [[row[i] for row in found] for i in range(width)])
    columns: dict[str, list[str | None]] = {}
    for c in coded:
        if c.name in codes:
            columns[c.name] = c.decode(codes[c.name])
        elif c.constant is not None:
            columns[c.name] = c.decode([c.constant] * len(found))
        else:  # tenant when there is no revenue
            columns[c.name] = [None] * len(found)
    rows: list[dict[str, Any]] = []
    for i, row in enumerate(found):
        record: dict[str, Any] = {name: columns[name][i] for name in DIMENSIONS}
        if record["source"] != "revenue":
            record["tenant"] = None
        record["slice"] = int(slices[i])
        record["records"] = int(row[width])
        for offset, name in enumerate(QUANTITIES, start=width + 1):
            record[name] = int(row[offset]) if row[offset] is not None else 0
        rows.append(record)
    return rows


def rate_usage(usage: pa.Table, terms: MoneyTerms) -> RatingResult:
    """Aggregate and rate every record of ``usage`` (an Arrow table with the store's columns;
    dimensions as dictionary arrays are fastest, plain strings are encoded first)."""
    if usage.num_rows == 0:
        return RatingResult([], [], 0)
    usage = usage.select(SETTLEMENT_SCHEMA.names)
    if usage.column("occurred_us").null_count:
        raise InputError("usage records without an occurred_us cannot be settled")
    bounds = pc.min_max(usage.column("occurred_us"))
    low, high = int(bounds["min"].as_py()), int(bounds["max"].as_py())
    # Start the first slice at the first month start so every record has a slice.
    low = to_us(month_start(month_of(from_us(low))))
    slices = _slices(terms, low, high)
    by_slice = {s[0]: (s[2], s[3]) for s in slices}
    try:
        con = _connection()
        try:
            con.register("usage", usage)
            _check_quantities(usage, con)
            rows = _aggregate(con, usage, [start for _, start, _, _ in slices])
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
                        records=row["records"],
                        input_tokens=row["input_tokens"],
                        output_tokens=row["output_tokens"],
                        gpu_hours_micros=row["gpu_hours_micros"],
                        amount_micros=row["amount_micros"],
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
