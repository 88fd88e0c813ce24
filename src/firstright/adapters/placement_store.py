"""The placement store: placement decisions with their answers, idempotent by id.

    PlacementStore(engine)
      .put_many(records) -> (inserted, unchanged)   one transaction; same id + same content is a
                                                   no-op, same id + other content raises
                                                   ConflictError and nothing is written
      .replace_source(source, records) -> int       delete every row of ``source``, then insert
                                                   (the demo's fresh data on each run)
      .rows(party=None, provider=None, limit, offset) -> list[PlacementRecord]  by decided_at
      .get(placement_id) -> PlacementRecord | None
      .by_provider(party=None) -> list[ProviderTotal]   GPUs, spend and requests per provider

A party reads the rows it bought (``party``), whose chosen cloud it operates (``counterparty``)
or on which it holds a first refusal (``holder``); admins read everything.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from firstright.adapters.db import UtcDateTime, storage_errors
from firstright.errors import ConflictError, InputError

PLACEMENTS_PAGE_MAX = 1000
"""Rows one list call returns at most."""
PLACEMENTS_BATCH_MAX = 10_000
"""Rows one write takes at most."""

metadata = sa.MetaData()

placements = sa.Table(
    "placements",
    metadata,
    sa.Column("placement_id", sa.String(200), primary_key=True),
    sa.Column("content_sha256", sa.String(64), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("decided_at", UtcDateTime, nullable=False),
    sa.Column("party", sa.String(64), nullable=False),
    sa.Column("counterparty", sa.String(64)),
    sa.Column("holder", sa.String(64)),
    sa.Column("contract", sa.String(200)),
    sa.Column("workload", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("provider", sa.String(64)),
    sa.Column("region", sa.String(64)),
    sa.Column("instance_type", sa.String(128)),
    sa.Column("accelerator", sa.String(64), nullable=False),
    sa.Column("gpus", sa.Integer, nullable=False),
    sa.Column("total_micros", sa.BigInteger, nullable=False),
    sa.Column("first_refusal", sa.Boolean, nullable=False),
    sa.Column("why", sa.Text, nullable=False),
    sa.Column("clause_ids", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=False),
)


@dataclass(frozen=True, slots=True)
class PlacementRecord:
    """One stored placement decision."""

    placement_id: str
    source: str
    request_id: str
    decided_at: datetime
    party: str
    counterparty: str | None
    """The party operating the chosen cloud."""
    holder: str | None
    """The holder of a first refusal due on the request."""
    contract: str | None
    workload: str
    status: str
    provider: str | None
    region: str | None
    instance_type: str | None
    accelerator: str
    gpus: int
    total_micros: int
    first_refusal: bool
    why: str
    clause_ids: tuple[str, ...]
    answer: dict[str, Any]

    def __post_init__(self) -> None:
        assert self.decided_at.tzinfo is not None, "decided_at must be aware"
        assert self.status in ("placed", "no_offer"), self.status
        assert self.gpus >= 0 and self.total_micros >= 0

    def to_json(self, *, with_answer: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "placement_id": self.placement_id,
            "source": self.source,
            "request_id": self.request_id,
            "decided_at": self.decided_at.isoformat(),
            "party": self.party,
            "counterparty": self.counterparty,
            "holder": self.holder,
            "contract": self.contract,
            "workload": self.workload,
            "status": self.status,
            "provider": self.provider,
            "region": self.region,
            "instance_type": self.instance_type,
            "accelerator": self.accelerator,
            "gpus": self.gpus,
            "total_micros": self.total_micros,
            "first_refusal": self.first_refusal,
            "why": self.why,
            "clause_ids": list(self.clause_ids),
        }
        if with_answer:
            out["answer"] = self.answer
        return out


@dataclass(frozen=True, slots=True)
class ProviderTotal:
    provider: str
    gpus: int
    total_micros: int
    requests: int
    first_refusals: int

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "gpus": self.gpus,
            "total_micros": self.total_micros,
            "requests": self.requests,
            "first_refusals": self.first_refusals,
        }


def _digest(row: dict[str, Any]) -> str:
    content = {k: v for k, v in row.items() if k != "content_sha256"}
    content["decided_at"] = row["decided_at"].isoformat()
    payload = orjson.dumps(content, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(payload).hexdigest()


def _row(record: PlacementRecord) -> dict[str, Any]:
    row = {
        "placement_id": record.placement_id,
        "source": record.source,
        "request_id": record.request_id,
        "decided_at": record.decided_at,
        "party": record.party,
        "counterparty": record.counterparty,
        "holder": record.holder,
        "contract": record.contract,
        "workload": record.workload,
        "status": record.status,
        "provider": record.provider,
        "region": record.region,
        "instance_type": record.instance_type,
        "accelerator": record.accelerator,
        "gpus": record.gpus,
        "total_micros": record.total_micros,
        "first_refusal": record.first_refusal,
        "why": record.why,
        "clause_ids": orjson.dumps(list(record.clause_ids)).decode(),
        "answer": orjson.dumps(record.answer, option=orjson.OPT_SORT_KEYS).decode(),
    }
    row["content_sha256"] = _digest(row)
    return row


def _record(row: sa.Row[Any]) -> PlacementRecord:
    return PlacementRecord(
        placement_id=row.placement_id,
        source=row.source,
        request_id=row.request_id,
        decided_at=row.decided_at,
        party=row.party,
        counterparty=row.counterparty,
        holder=row.holder,
        contract=row.contract,
        workload=row.workload,
        status=row.status,
        provider=row.provider,
        region=row.region,
        instance_type=row.instance_type,
        accelerator=row.accelerator,
        gpus=int(row.gpus),
        total_micros=int(row.total_micros),
        first_refusal=bool(row.first_refusal),
        why=row.why,
        clause_ids=tuple(orjson.loads(row.clause_ids)),
        answer=orjson.loads(row.answer),
    )


def _visible(party: str | None) -> sa.ColumnElement[bool]:
    if party is None:
        return sa.true()
    return sa.or_(
        placements.c.party == party,
        placements.c.counterparty == party,
        placements.c.holder == party,
    )


class PlacementStore:
    """Placement decisions on one (migrated) database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def put_many(self, records: Sequence[PlacementRecord]) -> tuple[int, int]:
        if len(records) > PLACEMENTS_BATCH_MAX:
            raise InputError(f"at most {PLACEMENTS_BATCH_MAX} placements per write")
        rows = [_row(r) for r in records]
        ids = [r["placement_id"] for r in rows]
        if len(set(ids)) != len(ids):
            raise InputError("placement ids repeat within one write")
        with storage_errors("writing placements"), self.engine.begin() as conn:
            known = {
                r.placement_id: r.content_sha256
                for r in conn.execute(
                    sa.select(placements.c.placement_id, placements.c.content_sha256).where(
                        placements.c.placement_id.in_(ids)
                    )
                )
            }
            fresh = []
            for row in rows:
                digest = known.get(row["placement_id"])
                if digest is None:
                    fresh.append(row)
                elif digest != row["content_sha256"]:
                    raise ConflictError(
                        f"placement {row['placement_id']!r} exists with other content"
                    )
            if fresh:
                try:
                    conn.execute(placements.insert(), fresh)
                except IntegrityError as exc:
                    raise ConflictError(
                        "a placement id was written concurrently; retry the write"
                    ) from exc
        return len(fresh), len(rows) - len(fresh)

    def replace_source(self, source: str, records: Sequence[PlacementRecord]) -> int:
        """Delete every row of ``source``, then insert ``records`` (all of it), atomically."""
        if len(records) > PLACEMENTS_BATCH_MAX:
            raise InputError(f"at most {PLACEMENTS_BATCH_MAX} placements per write")
        if any(r.source != source for r in records):
            raise InputError(f"every record must have source {source!r}")
        rows = [_row(r) for r in records]
        with storage_errors("replacing placements"), self.engine.begin() as conn:
            conn.execute(placements.delete().where(placements.c.source == source))
            if rows:
                conn.execute(placements.insert(), rows)
        return len(rows)

    def get(self, placement_id: str, *, party: str | None = None) -> PlacementRecord | None:
        query = sa.select(placements).where(
            placements.c.placement_id == placement_id, _visible(party)
        )
        with storage_errors("reading a placement"), self.engine.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else _record(row)

    def rows(
        self,
        *,
        party: str | None = None,
        provider: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[PlacementRecord]:
        if not 1 <= limit <= PLACEMENTS_PAGE_MAX:
            raise InputError(f"limit must be 1..{PLACEMENTS_PAGE_MAX}")
        if offset < 0:
            raise InputError("offset must not be negative")
        query = sa.select(placements).where(_visible(party))
        if provider is not None:
            query = query.where(placements.c.provider == provider)
        query = (
            query.order_by(placements.c.decided_at, placements.c.placement_id)
            .limit(limit)
            .offset(offset)
        )
        with storage_errors("listing placements"), self.engine.connect() as conn:
            return [_record(row) for row in conn.execute(query)]

    def by_provider(self, *, party: str | None = None) -> list[ProviderTotal]:
        """Placed GPUs, spend and requests per provider (largest GPU count first)."""
        query = (
            sa.select(
                placements.c.provider,
                sa.func.sum(placements.c.gpus),
                sa.func.sum(placements.c.total_micros),
                sa.func.count(),
                sa.func.sum(sa.case((placements.c.first_refusal, 1), else_=0)),
            )
            .where(_visible(party), placements.c.status == "placed")
            .group_by(placements.c.provider)
        )
        with storage_errors("adding up placements"), self.engine.connect() as conn:
            totals = [
                ProviderTotal(
                    provider=str(provider),
                    gpus=int(gpus or 0),
                    total_micros=int(total or 0),
                    requests=int(count),
                    first_refusals=int(refusals or 0),
                )
                for provider, gpus, total, count, refusals in conn.execute(query)
            ]
        return sorted(totals, key=lambda t: (-t.gpus, t.provider))
