"""Rating on packed dictionary codes agrees with a plain group-by on text, whatever the input
shape (dictionary or text columns, many chunks, keys split over several words)."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pyarrow as pa
import pytest

from firstright.adapters import duckdb_rating
from firstright.adapters.duckdb_rating import Coded, KeyPlan, rate_usage, unpack_keys
from firstright.adapters.usage_store import SETTLEMENT_SCHEMA
from firstright.domain.contracts.model import Contract
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.ledger.terms import MoneyTerms, to_us
from firstright.domain.usage import UsageRecord
from firstright.errors import InputError

CONTRACT: dict[str, Any] = {
    "contract_id": "deal",
    "version": "1",
    "effective_from": "2025-01-01T00:00:00Z",
    "parties": {"bigcloud": {"clouds": ["azure"]}, "lab": {}, "other": {"clouds": ["gcp"]}},
    "clauses": [
        {
            "id": "prices",
            "kind": "price",
            "seller": "bigcloud",
            "buyer": "lab",
            "params": {
                "token_rates": [
                    {"model": "m-*", "input_usd_per_mtok": "2.5", "output_usd_per_mtok": "10"}
                ],
                "discount_pct": "10",
            },
            "source": {"assumption": True},
        }
    ],
}
TERMS = MoneyTerms(ContractSet([Contract.model_validate(CONTRACT)]))
START_US = to_us(datetime(2025, 1, 1, tzinfo=UTC))
DAY_US = 86_400_000_000
OPTIONAL = ("counterparty", "tenant", "channel", "product", "provider", "model", "gpu_type")


def random_rows(seed: int, count: int) -> list[dict[str, Any]]:
    print(f"seed={seed}")
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        source = rng.choice(["gateway", "gateway", "capacity", "revenue"])
        rows.append(
            {
                "source": source,
                "occurred_us": START_US + rng.randrange(120 * DAY_US),
                "party": rng.choice(["lab", "bigcloud"]),
                "counterparty": rng.choice([None, None, "other"]),
                "tenant": rng.choice([None, "t1", "t2", "t3"]),
                "channel": rng.choice([None, "api", "chat"]),
                "product": rng.choice([None, "p"]),
                "provider": rng.choice(["azure", "gcp", None]),
                "model": rng.choice(["m-a", "m-b", "x", None]),
                "input_tokens": rng.randrange(10_000),
                "output_tokens": rng.randrange(1_000),
                "gpu_type": "H100" if source == "capacity" else None,
                "gpu_hours_micros": rng.randrange(10**7) if source == "capacity" else 0,
                "amount_micros": rng.randrange(-(10**6), 10**6)
                if source == "revenue"
                else rng.randrange(10**6),
                "currency": rng.choice(["USD", "USD", "EUR"]),
            }
        )
    return rows


def text_table(rows: list[dict[str, Any]], chunk_rows: int) -> pa.Table:
    text = pa.schema(
        [
            pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
            for f in SETTLEMENT_SCHEMA
        ]
    )
    batches = [
        pa.RecordBatch.from_pylist(rows[i : i + chunk_rows], schema=text)
        for i in range(0, len(rows), chunk_rows)
    ]
    return pa.Table.from_batches(batches, schema=text)


def dictionary_table(rows: list[dict[str, Any]], chunk_rows: int) -> pa.Table:
    """Dictionary columns with a different dictionary in every chunk (as the store reads)."""
    batches = [
        pa.RecordBatch.from_pylist(rows[i : i + chunk_rows], schema=SETTLEMENT_SCHEMA)
        for i in range(0, len(rows), chunk_rows)
    ]
    return pa.Table.from_batches(batches, schema=SETTLEMENT_SCHEMA)


def summary(result: duckdb_rating.RatingResult) -> dict[tuple[Any, ...], tuple[int, ...]]:
    found: dict[tuple[Any, ...], tuple[int, ...]] = {}
    for group in [r.group for r in result.usage] + result.revenue:
        key = (
            group.month,
            group.segment,
            group.source,
            group.party,
            group.counterparty,
            group.provider,
            group.model,
            group.gpu_type,
            group.channel,
            group.product,
            group.tenant,
            group.currency,
        )
        assert key not in found
        found[key] = (
            group.records,
            group.input_tokens,
            group.output_tokens,
            group.gpu_hours_micros,
            group.amount_micros,
        )
    return found


def expected(rows: list[dict[str, Any]]) -> dict[tuple[Any, ...], tuple[int, ...]]:
    sums: dict[tuple[Any, ...], list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    for row in rows:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=row["occurred_us"])
        key = (
            f"{moment.year:04d}-{moment.month:02d}",
            TERMS.segment_of_us(row["occurred_us"]),
            row["source"],
            row["party"],
            row["counterparty"],
            row["provider"],
            row["model"],
            row["gpu_type"],
            row["channel"],
            row["product"],
            row["tenant"] if row["source"] == "revenue" else None,
            row["currency"],
        )
        total = sums[key]
        total[0] += 1
        for i, name in enumerate(duckdb_rating.QUANTITIES, start=1):
            total[i] += row[name]
    return {k: tuple(v) for k, v in sums.items()}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_packed_codes_agree_with_a_plain_group_by(seed: int) -> None:
    rows = random_rows(seed, 3_000)
    want = expected(rows)
    by_text = rate_usage(text_table(rows, 700), TERMS)
    by_dictionary = rate_usage(dictionary_table(rows, 450), TERMS)
    assert summary(by_text) == want
    assert summary(by_dictionary) == want
    assert by_text.records == by_dictionary.records == len(rows)
    prices = {
        (r.group.month, r.group.party, r.group.model, r.group.source): (
            r.input_pico,
            r.output_pico,
            r.gpu_pico,
        )
        for r in by_dictionary.usage
    }
    assert prices == {
        (r.group.month, r.group.party, r.group.model, r.group.source): (
            r.input_pico,
            r.output_pico,
            r.gpu_pico,
        )
        for r in by_text.usage
    }


def test_keys_split_over_several_words(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = random_rows(4, 2_000)
    whole = summary(rate_usage(dictionary_table(rows, 300), TERMS))
    real_build = KeyPlan.build

    def tiny(slice_span: int, packed: list[Coded], span_max: int = 2**62) -> KeyPlan:
        plan = real_build(slice_span, packed, span_max=32)
        assert len(plan.words) > 2
        return plan

    monkeypatch.setattr(KeyPlan, "build", staticmethod(tiny))
    assert summary(rate_usage(dictionary_table(rows, 300), TERMS)) == whole


def test_key_words_never_reach_their_bound() -> None:
    codes = [
        Coded(f"d{i}", tuple(str(v) for v in range(span - 1)), None)
        for i, span in enumerate([3, 1_000, 70_000, 5, 60_000, 50_000, 7, 40_000])
    ]
    plan = KeyPlan.build(40, codes)
    assert len(plan.words) == 2
    for index, word in enumerate(plan.words):
        product = 40 if index == 0 else 1
        for coded in word:
            product *= coded.span
        assert product < 2**62
    rng = random.Random(5)
    picks = [
        {c.name: rng.randrange(c.span) for c in codes} | {"slice": rng.randrange(40)}
        for _ in range(50)
    ]
    words: list[list[int]] = []
    for index, word in enumerate(plan.words):
        column = []
        for pick in picks:
            key = pick["slice"] if index == 0 else 0
            for coded in word:
                key = key * coded.span + pick[coded.name]
            column.append(key)
        words.append(column)
    slices, decoded = unpack_keys(plan, words)
    assert list(slices) == [p["slice"] for p in picks]
    for coded in codes:
        assert decoded[coded.name] == [p[coded.name] for p in picks]


def test_negative_quantities_are_refused_but_refunds_are_revenue() -> None:
    rows = random_rows(6, 50)
    refunds = [r for r in rows if r["source"] == "revenue" and r["amount_micros"] < 0]
    assert refunds, "the sample holds a negative revenue amount"
    rate_usage(dictionary_table(rows, 50), TERMS)
    bad = [*rows, {**rows[0], "source": "gateway", "amount_micros": -1}]
    with pytest.raises(InputError, match="1 usage records have a negative"):
        rate_usage(dictionary_table(bad, 50), TERMS)
    worse = [*rows, {**rows[0], "input_tokens": -5}]
    with pytest.raises(InputError, match="negative"):
        rate_usage(text_table(worse, 20), TERMS)


def test_content_hash_is_the_canonical_json_of_the_record() -> None:
    record = UsageRecord(
        record_id="r-1",
        source="gateway",
        occurred_at=datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC),
        party="lab",
        tenant="tén",
        model="m-a",
        input_tokens=3,
        refusals=["azure"],
        clause_ids=["c1", "c2"],
    )
    canonical = orjson.dumps(record.to_row_json(), option=orjson.OPT_SORT_KEYS)
    assert record.content_json() == canonical
    assert b'"occurred_at":"2025-01-02T03:04:05.000006Z"' in canonical
    # Pinned (the value of the first release): stored hashes stay valid across releases.
    assert record.content_hash() == (
        "de4babc1414a7469384aed5c6e4eebd3d924a4a5954387b79ec8cd23ad671dff"
    )
