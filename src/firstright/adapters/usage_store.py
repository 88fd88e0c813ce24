"""The usage store: idempotent batch writes of usage records, columnar reads for settlement.

    UsageStore(engine)
      .insert_many(records) -> (inserted, duplicates)   one transaction; same id + same content
                                                       is a duplicate (no-op), same id + other
                                                       content raises ConflictError and nothing
                                                       of the batch is written
      .get(record_id) -> UsageRecord | None
      .count() -> int
      .read_arrow(start_us, end_us) -> pyarrow.Table    the settlement columns of every record
                                                       with start_us <= occurred_us < end_us;
                                                       dimensions as dictionary arrays
      .span_us() -> (min_us, max_us) | None

Writes take records that are validated already (``UsageRecord``): each is hashed once from its
fields (``content_hash``) and the new ones go in with one driver-level ``executemany`` of plain
tuples. Reads use the driver's cursor directly (a server-side cursor on PostgreSQL) and build
Arrow columns from plain tuples, batch by batch, so memory stays bounded by the batch, not the
table (DuckDB's database scanners download at run time and are not available offline).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
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

# The columns settlement reads, in order, with their Arrow types. Dimensions are dictionary
# arrays (few distinct values), so rating groups on integer codes instead of text.
DIMENSION = pa.dictionary(pa.int32(), pa.string())
SETTLEMENT_COLUMNS: tuple[tuple[str, pa.DataType], ...] = (
    ("source", DIMENSION),
    ("occurred_us", pa.int64()),
    ("party", DIMENSION),
    ("counterparty", DIMENSION),
    ("tenant", DIMENSION),
    ("channel", DIMENSION),
    ("product", DIMENSION),
    ("provider", DIMENSION),
    ("model", DIMENSION),
    ("input_tokens", pa.int64()),
    ("output_tokens", pa.int64()),
    ("gpu_type", DIMENSION),
    ("gpu_hours_micros", pa.int64()),
    ("amount_micros", pa.int64()),
    ("currency", DIMENSION),
)
SETTLEMENT_SCHEMA = pa.schema([pa.field(name, kind) for name, kind in SETTLEMENT_COLUMNS])
# Insert order of every column (the raw executemany writes tuples in this order).
INSERT_COLUMNS: tuple[str, ...] = tuple(column.name for column in usage_records.columns)

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


def _row(record: UsageRecord, digest: str, occurred_bind: Callable[[Any], Any]) -> tuple[Any, ...]:
    """The insert tuple of a validated record, in ``INSERT_COLUMNS`` order."""
    return (
        record.record_id,
        digest,
        record.source,
        occurred_bind(record.occurred_at),
        epoch_us(record.occurred_at),
        record.party,
        record.counterparty,
        record.tenant,
        record.channel,
        record.product,
        record.provider,
        record.backend,
        record.operator,
        record.vendor,
        record.model,
        record.input_tokens,
        record.output_tokens,
        record.gpu_type,
        record.gpu_hours_micros,
        record.amount_micros,
        record.currency,
        record.latency_ms,
        record.status,
        record.partial,
        _json_list(record.refusals),
        _json_list(record.clause_ids),
    )


def _json_list(values: list[str]) -> str:
    return orjson.dumps(values).decode() if values else "[]"


def _placeholders(conn: sa.Connection, count: int) -> str:
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    return ", ".join([marker] * count)


def _insert_sql(conn: sa.Connection) -> str:
    quote = conn.dialect.identifier_preparer.quote
    names = ", ".join(quote(name) for name in INSERT_COLUMNS)
    return (
        f"INSERT INTO usage_records ({names}) VALUES ({_placeholders(conn, len(INSERT_COLUMNS))})"
    )


def _occurred_bind(conn: sa.Connection) -> Callable[[Any], Any]:
    """The store's own conversion of ``occurred_at`` for this backend (UtcDateTime + driver)."""
    processor = usage_records.c.occurred_at.type.bind_processor(conn.dialect)
    return processor if processor is not None else _same


def _same(value: Any) -> Any:
    return value


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
                    bind = _occurred_bind(conn)
                    fresh: list[tuple[Any, ...]] = []
                    for record_id, (digest, record) in wanted.items():
                        known = stored.get(record_id)
                        if known is None:
                            fresh.append(_row(record, digest, bind))
                        elif known != digest:
                            raise ConflictError(
                                f"usage record {record_id!r} already exists with different "
                                "content; a record id is written once"
                            )
                    if fresh:
                        # One driver-level executemany: the records are validated already, so
                        # no per-row statement compilation or type processing is needed.
                        conn.exec_driver_sql(_insert_sql(conn), fresh)
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
        """The settlement columns in record batches of at most ``_READ_PARTITION_ROWS``.

        Rows come from the driver's cursor as plain tuples (no ORM or result-row objects) and
        go column by column into Arrow; dimensions are dictionary-encoded per batch. PostgreSQL
        streams through a server-side cursor, so memory stays bounded by one batch."""
        names = [name for name, _ in SETTLEMENT_COLUMNS]
        with storage_errors("reading usage records"), self.engine.connect() as conn:
            quote = conn.dialect.identifier_preparer.quote
            marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            where: list[str] = []
            params: list[int] = []
            if start_us is not None:
                where.append(f"occurred_us >= {marker}")
                params.append(start_us)
            if end_us is not None:
                where.append(f"occurred_us < {marker}")
                params.append(end_us)
            sql = f"SELECT {', '.join(quote(n) for n in names)} FROM usage_records"
            if where:
                sql += " WHERE " + " AND ".join(where)
            raw = conn.connection.dbapi_connection
            assert raw is not None
            if conn.dialect.name == "postgresql":
                cursor = raw.cursor(name="firstright_usage_read")
            else:
                cursor = raw.cursor()
            try:
                cursor.execute(sql, tuple(params))
                while True:
                    rows = cursor.fetchmany(_READ_PARTITION_ROWS)
                    if not rows:
                        break
                    yield _batch(rows)
            finally:
                cursor.close()


def _batch(rows: Sequence[Sequence[Any]]) -> pa.RecordBatch:
    arrays: list[pa.Array] = []
    for values, (_, kind) in zip(zip(*rows, strict=True), SETTLEMENT_COLUMNS, strict=True):
        if pa.types.is_dictionary(kind):
            arrays.append(pa.array(values, type=pa.string()).dictionary_encode())
        else:
            arrays.append(pa.array(values, type=kind))
    return pa.RecordBatch.from_arrays(arrays, schema=SETTLEMENT_SCHEMA)
