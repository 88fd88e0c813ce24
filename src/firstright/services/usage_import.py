"""Usage in: revenue reports from CSV or JSON Lines, and capacity allocations accrued per day.

``import_usage_file(engine, path, known_parties=...)`` reads a file of revenue rows (columns
``period, party, product, channel, amount`` plus optional ``record_id, counterparty, tenant,
currency``; ``amount`` in currency units, at most 6 decimals) — or, in JSON Lines, complete
usage records (objects with ``record_id`` and ``source``). Every line is checked first; any
problem raises ValidationFailed with ``FILE:LINE:COL`` and nothing is written. A revenue row
without ``record_id`` gets ``revenue:<period>:<party>:<channel>:<product>``, so importing the same
report twice is a no-op and a changed amount is a conflict.

``capacity_records(...)`` turns one allocation (GPUs from ``start`` to ``end``) into one record per
UTC day with the GPU-hours accrued that day.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Collection
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pydantic
from sqlalchemy.engine import Engine

from firstright.adapters.usage_store import UsageStore
from firstright.domain.ledger.periods import PeriodError, parse_period
from firstright.domain.money import parse_decimal
from firstright.domain.usage import UsageRecord
from firstright.errors import Problem, SourceError, ValidationFailed
from firstright.limits import INPUT_FILE_BYTES_MAX, USAGE_BATCH_RECORDS_MAX

REVENUE_COLUMNS = ("period", "party", "product", "channel", "amount")
OPTIONAL_COLUMNS = ("record_id", "counterparty", "tenant", "currency")


def _revenue_record(row: dict[str, Any]) -> UsageRecord:
    missing = [c for c in ("period", "party", "amount") if row.get(c) in (None, "")]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    unknown = sorted(set(row) - set(REVENUE_COLUMNS) - set(OPTIONAL_COLUMNS))
    if unknown:
        raise ValueError(f"unknown column {', '.join(unknown)}")
    period = parse_period(str(row["period"]))
    raw_amount = row["amount"]
    if isinstance(raw_amount, float):
        raise ValueError("amount must be a string or integer (floats are not exact)")
    amount = parse_decimal(str(raw_amount))
    micros = amount * 1_000_000
    if micros != micros.to_integral_value():
        raise ValueError(f"amount {amount} has more than 6 decimal places")
    if amount < 0:
        raise ValueError(f"amount {amount} is negative; revenue is reported as a positive amount")
    channel = row.get("channel") or None
    product = row.get("product") or None
    record_id = row.get("record_id") or (
        f"revenue:{period.label}:{row['party']}:{channel or '-'}:{product or '-'}"
    )
    return UsageRecord(
        record_id=record_id,
        source="revenue",
        occurred_at=period.start(),
        party=row["party"],
        counterparty=row.get("counterparty") or None,
        tenant=row.get("tenant") or None,
        channel=channel,
        product=product,
        amount_micros=int(micros),
        currency=row.get("currency") or "USD",
    )


def _pydantic_message(exc: pydantic.ValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        parts.append(f"{where}: {error['msg']}" if where else error["msg"])
    return "; ".join(parts)


def parse_usage_file(
    path: str | Path, *, known_parties: Collection[str] | None = None
) -> list[UsageRecord]:
    """Every record of a CSV or JSON Lines file; all problems raised together."""
    name = str(path)
    file = Path(path)
    try:
        size = file.stat().st_size
        if size > INPUT_FILE_BYTES_MAX * 64:
            raise SourceError(
                name, f"file is {size} bytes; the limit is {INPUT_FILE_BYTES_MAX * 64}"
            )
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError(name, f"cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(name, f"not UTF-8 text: {exc.reason}") from exc
    rows: list[tuple[int, dict[str, Any]]] = []
    problems: list[Problem] = []
    if file.suffix.lower() == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        absent = [c for c in ("period", "party", "amount") if c not in header]
        if absent:
            raise SourceError(name, f"CSV header lacks {', '.join(absent)}", 1, 1)
        for row in reader:
            rows.append((reader.line_num, {k: v for k, v in row.items() if k is not None}))
    else:
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                data = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                problems.append(Problem(name, f"invalid JSON: {exc}", number, 1))
                continue
            if not isinstance(data, dict):
                problems.append(Problem(name, "each line must be a JSON object", number, 1))
                continue
            rows.append((number, data))
    records: list[UsageRecord] = []
    for number, row in rows:
        try:
            if "source" in row and "record_id" in row:
                if any(isinstance(v, float) for v in row.values()):
                    raise ValueError("numbers must be integers (floats are not exact)")
                record = UsageRecord.model_validate(row)
            else:
                record = _revenue_record(row)
        except pydantic.ValidationError as exc:
            problems.append(Problem(name, _pydantic_message(exc), number, 1))
            continue
        except (ValueError, PeriodError) as exc:
            message = exc.message if isinstance(exc, PeriodError) else str(exc)
            problems.append(Problem(name, message, number, 1))
            continue
        if known_parties is not None:
            for party in (record.party, record.counterparty):
                if party is not None and party not in known_parties:
                    problems.append(
                        Problem(name, f"unknown party {party!r} (not in the contracts)", number, 1)
                    )
        records.append(record)
    if problems:
        raise ValidationFailed(problems)
    return records


def import_usage_file(
    engine: Engine, path: str | Path, *, known_parties: Collection[str] | None = None
) -> tuple[int, int]:
    """Validate the whole file, then write it in one batch: ``(inserted, duplicates)``."""
    records = parse_usage_file(path, known_parties=known_parties)
    if len(records) > USAGE_BATCH_RECORDS_MAX:
        raise SourceError(
            str(path), f"{len(records)} records; one import holds at most {USAGE_BATCH_RECORDS_MAX}"
        )
    return UsageStore(engine).insert_many(records)


def capacity_records(
    *,
    allocation_id: str,
    party: str,
    provider: str,
    gpu_type: str,
    gpus: int,
    start: datetime,
    end: datetime,
    counterparty: str | None = None,
) -> list[UsageRecord]:
    """One capacity record per UTC day between ``start`` and ``end`` (GPU-hours accrued)."""
    if gpus <= 0:
        raise ValueError("gpus must be positive")
    if end <= start:
        raise ValueError("end must be after start")
    records: list[UsageRecord] = []
    day = start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        following = day + timedelta(days=1)
        lo, hi = max(day, start), min(following, end)
        span_us = (hi - lo) // timedelta(microseconds=1)
        gpu_hours_micros = gpus * span_us // 3600
        records.append(
            UsageRecord(
                record_id=f"capacity:{allocation_id}:{day.date().isoformat()}",
                source="capacity",
                occurred_at=lo,
                party=party,
                counterparty=counterparty,
                provider=provider,
                gpu_type=gpu_type,
                gpu_hours_micros=gpu_hours_micros,
            )
        )
        day = following
    assert records
    assert Decimal(0) <= Decimal(sum(r.gpu_hours_micros for r in records))
    return records
