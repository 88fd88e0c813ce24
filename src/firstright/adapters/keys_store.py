"""Storage of API keys (table ``api_keys``, migration branch ``keys``). Only hashes are kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping
from sqlalchemy.exc import IntegrityError

from firstright.adapters.db import UtcDateTime, storage_errors
from firstright.errors import ConflictError, NotFound

metadata = sa.MetaData()

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("party", sa.String(128), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("channel", sa.String(128), nullable=True),
    sa.Column("product", sa.String(128), nullable=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Column("revoked_at", UtcDateTime, nullable=True),
)


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """One stored key, without its secret."""

    key_id: str
    secret_sha256: str
    party: str
    role: str
    channel: str | None
    product: str | None
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None

    def to_json(self) -> dict[str, object]:
        return {
            "key_id": self.key_id,
            "party": self.party,
            "role": self.role,
            "channel": self.channel,
            "product": self.product,
            "created_at": _iso(self.created_at),
            "revoked_at": _iso(self.revoked_at) if self.revoked_at else None,
        }


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _record(row: RowMapping) -> KeyRecord:
    return KeyRecord(
        key_id=row["key_id"],
        secret_sha256=row["secret_sha256"],
        party=row["party"],
        role=row["role"],
        channel=row["channel"],
        product=row["product"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


class KeyStore:
    """API keys in one database (migrated by the caller)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def insert(self, record: KeyRecord) -> None:
        values = {
            "key_id": record.key_id,
            "secret_sha256": record.secret_sha256,
            "party": record.party,
            "role": record.role,
            "channel": record.channel,
            "product": record.product,
            "created_at": record.created_at,
            "revoked_at": record.revoked_at,
        }
        with storage_errors("storing an API key"):
            try:
                with self.engine.begin() as conn:
                    conn.execute(api_keys.insert().values(values))
            except IntegrityError as exc:  # pragma: no cover - 64-bit random ids rarely collide
                raise ConflictError(f"API key {record.key_id} exists already") from exc

    def by_hash(self, secret_sha256: str) -> KeyRecord | None:
        query = sa.select(api_keys).where(api_keys.c.secret_sha256 == secret_sha256)
        with storage_errors("reading API keys"), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        return _record(row) if row is not None else None

    def get(self, key_id: str) -> KeyRecord:
        query = sa.select(api_keys).where(api_keys.c.key_id == key_id)
        with storage_errors("reading API keys"), self.engine.connect() as conn:
            row = conn.execute(query).mappings().first()
        if row is None:
            raise NotFound(f"no API key with id {key_id!r}")
        return _record(row)

    def all(self, *, include_revoked: bool = True) -> list[KeyRecord]:
        query = sa.select(api_keys).order_by(api_keys.c.created_at, api_keys.c.key_id)
        if not include_revoked:
            query = query.where(api_keys.c.revoked_at.is_(None))
        with storage_errors("reading API keys"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_record(row) for row in rows]

    def revoke(self, key_id: str, at: datetime) -> KeyRecord:
        """Mark a key revoked at ``at``; revoking twice keeps the first instant."""
        with storage_errors("revoking an API key"), self.engine.begin() as conn:
            conn.execute(
                api_keys.update()
                .where(api_keys.c.key_id == key_id, api_keys.c.revoked_at.is_(None))
                .values(revoked_at=at)
            )
        return self.get(key_id)
