"""The usage store: idempotent batch writes of usage records, columnar reads for settlement.

    UsageStore(engine)
      .insert_many(records) -> (inserted, duplicates)   one transaction; same id + same content
                                                       is a duplicate (no-op), same id + other
                                                       content raises ConflictError and nothing
                                                       of the batch is written
      .get(record_id) -> UsageRecord | None
      .count() -> int
      .read_arrow(start_us, end_us) -> pyarrow.Table    the settlement columns of every record
                                                       with start_us <= occurred_us < end_us
      .periods_us() -> (min_us, max_us) | None

Reads go through SQLAlchemy into Arrow (DuckDB's database scanners download at run time and
are not available), in partitions so memory stays bounded by the batch, not the table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import orjson
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from firstright.adapters.db import UtcDateTime, storage_errors
from firstright.domain.usage import UsageRecord
from firstright.errors import ConflictError, StorageError
from firstright.limits import USAGE_BATCH_RECORDS_MAX

metadata = sa.MetaData()

usage_records = sa.Table(
    "usage_records",
    metadata,
    sa.Column("record_id", sa.String(200), primary_key=True),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("occurred_at", UtcDateTime, nullable=False),
    sa.Column("occurred_us", sa.BigInteger, nullable=False),
    sa.Column("party", sa.String(64), nullable=False),
    sa.Column("counterparty", sa.String(64)),
    sa.Column("tenant", sa.String(200)),
    sa.Column("channel", sa.String(200)),
    sa.Column("product", sa.String(200)),
    sa.Column("provider", sa.String(200)),
    sa.Column("backend", sa.String(200)),
    sa.Column("operator", sa.String(200)),
    sa.Column("vendor", sa.String(200)),
    sa.Column("model", sa.String(200)),
    sa.Column("input_tokens", sa.BigInteger, nullable=False),
    sa.Column("output_tokens", sa.BigInteger, nullable=False),
    sa.Column("gpu_type", sa.String(200)),
    sa.Column("gpu_hours_micros", sa.BigInteger, nullable=False),
    sa.Column("amount_micros", sa.BigInteger, nullable=False),
    sa.Column("currency", sa.String(3), nullable=False),
    sa.Column("latency_ms", sa.Integer),
    sa.Column("status", sa.Integer),
    sa.Column("partial", sa.Boolean, nullable=False),
    sa.Column("refusals", sa.Text, nullable=False),
    sa.Column("clause_ids", sa.Text, nullable=False),
)

# The columns settlement reads, in order, with their Arrow types.
SETTLEMENT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("record_id", pa.string()),
    ("source", pa.string()),
    ("occurred_us", pa.int64()),
    ("party", pa.string()),
    ("counterparty", pa.string()),
    ("tenant", pa.string()),
    ("channel", pa.string()),
    ("product", pa.string()),
    ("provider", pa.string()),
    ("model", pa.string()),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("gpu_type", pa.string()),
    ("gpu_hours_micros", pa.int64()),
    ("amount_micros", pa.int64()),
    ("currency", pa.string()),
)
SETTLEMENT_SCHEMA = pa.schema([pa.field(name, kind) for name, kind in SETTLEMENT_COLUMNS])

_ID_CHUNK = 500


@contextmanager
def _integrity_passes() -> Iterator[None]:
    """Like ``storage_errors`` but lets IntegrityError through for a re-read and retry."""
    try:
        yield
    except IntegrityError:
        raise
    except SQLAlchemyError as exc:
        raise StorageError(f"writing usage records: {exc}") from exc


_READ_PARTITION_ROWS = 100_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_us(moment: datetime) -> int:
    """Integer microseconds since the Unix epoch of an aware instant."""
    assert moment.tzinfo is not None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _row(record: UsageRecord, digest: str) -> dict[str, Any]:
    return {
        "record_id": record.record_id,
        "content_sha256": digest,
        "source": record.source,
        "occurred_at": record.occurred_at,
        "occurred_us": epoch_us(record.occurred_at),
        "party": record.party,
        "counterparty": record.counterparty,
        "tenant": record.tenant,
        "channel": record.channel,
        "product": record.product,
        "provider": record.provider,
        "backend": record.backend,
        "operator": record.operator,
        "vendor": record.vendor,
        "model": record.model,
        "input_tokens": record.input_tokens,
        "output_tokens": record.output_tokens,
        "gpu_type": record.gpu_type,
        "gpu_hours_micros": record.gpu_hours_micros,
        "amount_micros": record.amount_micros,
        "currency": record.currency,
        "latency_ms": record.latency_ms,
        "status": record.status,
        "partial": record.partial,
        "refusals": orjson.dumps(record.refusals).decode(),
        "clause_ids": orjson.dumps(record.clause_ids).decode(),
    }


class UsageStore:
    """Usage records in the SQL store (SQLite or PostgreSQL)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert_many(self, records: Iterable[UsageRecord]) -> tuple[int, int]:
        """Write a batch atomically; return ``(inserted, duplicates)``.

        Raises ConflictError (and writes nothing) when an id is already stored, or repeated in
        the batch, with different content.
        """
        batch = list(records)
        if len(batch) > USAGE_BATCH_RECORDS_MAX:
            raise ConflictError(
                f"a batch holds at most {USAGE_BATCH_RECORDS_MAX} usage records, got {len(batch)}"
            )
        wanted: dict[str, tuple[str, UsageRecord]] = {}
        duplicates = 0
        for record in batch:
            digest = record.content_hash()
            seen = wanted.get(record.record_id)
            if seen is None:
                wanted[record.record_id] = (digest, record)
            elif seen[0] == digest:
                duplicates += 1
            else:
                raise ConflictError(
                    f"usage record {record.record_id!r} appears twice in the batch "
                    "with different content"
                )
        for attempt in range(2):
            try:
                with _integrity_passes(), self.engine.begin() as conn:
                    stored = self._stored_hashes(conn, list(wanted))
                    fresh: list[dict[str, Any]] = []
                    for record_id, (digest, record) in wanted.items():
                        known = stored.get(record_id)
                        if known is None:
                            fresh.append(_row(record, digest))
                        elif known != digest:
                            raise ConflictError(
                                f"usage record {record_id!r} already exists with different "
                                "content; a record id is written once"
                            )
                    if fresh:
                        conn.execute(usage_records.insert(), fresh)
                    return len(fresh), duplicates + len(wanted) - len(fresh)
            except IntegrityError as exc:
                # A concurrent writer stored one of the ids between our read and our write:
                # read again and decide (same content -> duplicate, else conflict).
                if attempt == 1:
                    raise StorageError(
                        "writing usage records: concurrent writers kept colliding"
                    ) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def _stored_hashes(conn: sa.Connection, ids: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(ids), _ID_CHUNK):
            chunk = ids[start : start + _ID_CHUNK]
            rows = conn.execute(
                sa.select(usage_records.c.record_id, usage_records.c.content_sha256).where(
                    usage_records.c.record_id.in_(chunk)
                )
            )
            for record_id, digest in rows:
                found[record_id] = digest
        return found

    def get(self, record_id: str) -> UsageRecord | None:
        with storage_errors("reading a usage record"), self.engine.connect() as conn:
            row = (
                conn.execute(sa.select(usage_records).where(usage_records.c.record_id == record_id))
                .mappings()
                .first()
            )
        if row is None:
            return None
        data = {
            key: row[key]
            for key in UsageRecord.model_fields
            if key not in ("refusals", "clause_ids")
        }
        data["refusals"] = orjson.loads(row["refusals"])
        data["clause_ids"] = orjson.loads(row["clause_ids"])
        return UsageRecord.model_validate(data)

    def count(self) -> int:
        with storage_errors("counting usage records"), self.engine.connect() as conn:
            value = conn.execute(sa.select(sa.func.count()).select_from(usage_records)).scalar()
        return int(value or 0)

    def span_us(self) -> tuple[int, int] | None:
        """The earliest and latest ``occurred_us`` stored, or None when there is no usage."""
        with storage_errors("reading usage span"), self.engine.connect() as conn:
            low, high = conn.execute(
                sa.select(
                    sa.func.min(usage_records.c.occurred_us),
                    sa.func.max(usage_records.c.occurred_us),
                )
            ).one()
        if low is None or high is None:
            return None
        return int(low), int(high)

    def read_arrow(self, start_us: int | None = None, end_us: int | None = None) -> pa.Table:
        """Every record with ``start_us <= occurred_us < end_us`` as an Arrow table."""
        return pa.Table.from_batches(
            list(self.iter_batches(start_us, end_us)), schema=SETTLEMENT_SCHEMA
        )

    def iter_batches(
        self, start_us: int | None = None, end_us: int | None = None
    ) -> Iterator[pa.RecordBatch]:
        columns = [usage_records.c[name] for name, _ in SETTLEMENT_COLUMNS]
        query = sa.select(*columns)
        if start_us is not None:
            query = query.where(usage_records.c.occurred_us >= start_us)
        if end_us is not None:
            query = query.where(usage_records.c.occurred_us < end_us)
        with storage_errors("reading usage records"), self.engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(query)
            for rows in result.partitions(_READ_PARTITION_ROWS):
                if not rows:
                    continue
                arrays = [
                    pa.array(values, type=kind)
                    for values, (_, kind) in zip(
                        zip(*rows, strict=True), SETTLEMENT_COLUMNS, strict=True
                    )
                ]
                yield pa.RecordBatch.from_arrays(arrays, schema=SETTLEMENT_SCHEMA)
