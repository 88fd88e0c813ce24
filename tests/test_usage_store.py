"""Usage records: schema, idempotent batch writes, conflicts that write nothing (SQLite and
PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pydantic
import pytest

from firstright.adapters.db import migrate, open_engine
from firstright.adapters.usage_store import UsageStore
from firstright.domain.usage import UsageRecord, usage_json_schema
from firstright.errors import ConflictError
from firstright.services.usage_import import capacity_records

T0 = datetime(2025, 2, 3, tzinfo=UTC)


def record(i: int, **extra: object) -> UsageRecord:
    data: dict[str, object] = {
        "record_id": f"g-{i}",
        "source": "gateway",
        "occurred_at": T0 + timedelta(minutes=i),
        "party": "lab",
        "provider": "azure",
        "model": "gpt-4o",
        "input_tokens": 10 * i,
        "output_tokens": i,
    }
    data.update(extra)
    return UsageRecord.model_validate(data)


def test_schema_lists_every_field() -> None:
    schema = usage_json_schema()
    assert set(schema["properties"]) == set(UsageRecord.model_fields)
    assert schema["properties"]["source"]["enum"] == ["gateway", "capacity", "revenue"]


def test_negative_quantities_and_naive_times_are_refused() -> None:
    with pytest.raises(pydantic.ValidationError):
        record(1, input_tokens=-1)
    with pytest.raises(pydantic.ValidationError):
        record(1, amount_micros=-5)
    with pytest.raises(pydantic.ValidationError):
        record(1, occurred_at=datetime(2025, 1, 1))


def test_times_are_stored_in_utc_and_hash_is_stable() -> None:
    a = record(1, occurred_at="2025-02-03T01:00:00+01:00")
    b = record(1, occurred_at="2025-02-03T00:00:00Z")
    assert a.content_hash() == b.content_hash()


def test_insert_is_idempotent_and_conflicts_write_nothing(database_url: str) -> None:
    engine = open_engine(database_url)
    try:
        migrate(engine)
        store = UsageStore(engine)
        batch = [record(i) for i in range(50)]
        assert store.insert_many(batch) == (50, 0)
        assert store.insert_many([*batch[:10], batch[0]]) == (0, 11)
        with pytest.raises(ConflictError):
            store.insert_many([record(100), record(3, input_tokens=999)])
        assert store.get("g-100") is None
        assert store.count() == 50
        with pytest.raises(ConflictError):
            store.insert_many([record(200), record(200, output_tokens=7)])
        assert store.get("g-3") == batch[3]
        table = store.read_arrow()
        assert table.num_rows == 50
        assert sum(table.column("input_tokens").to_pylist()) == sum(10 * i for i in range(50))
    finally:
        engine.dispose()


def test_capacity_accrues_per_day() -> None:
    start = datetime(2025, 3, 1, 12, tzinfo=UTC)
    records = capacity_records(
        allocation_id="a1",
        party="lab",
        provider="azure",
        gpu_type="H100",
        gpus=8,
        start=start,
        end=start + timedelta(days=2),
    )
    assert [r.gpu_hours_micros for r in records] == [96_000_000, 192_000_000, 96_000_000]
    assert records[0].record_id == "capacity:a1:2025-03-01"
