"""Conformance of the store on every backend (SQLite file and PostgreSQL): migrations, keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from firstright.adapters.db import (
    database_url_from,
    driver_url,
    heads_available,
    migrate,
    open_engine,
)
from firstright.adapters.keys_store import KeyStore
from firstright.errors import InputError, StorageError
from firstright.services.auth import authenticate, create_key, revoke_key

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(database_url: str):  # type: ignore[no-untyped-def]
    engine = open_engine(database_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_url_resolution(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIRSTRIGHT_DATABASE", raising=False)
    assert database_url_from(None) == "sqlite:///firstright.db"
    monkeypatch.setenv("FIRSTRIGHT_DATABASE", "postgresql://u@h/db")
    assert database_url_from(None) == "postgresql://u@h/db"
    assert database_url_from("sqlite:///x.db") == "sqlite:///x.db"
    assert driver_url("postgresql://u@h/db") == "postgresql+psycopg://u@h/db"
    assert driver_url("postgres://u@h/db") == "postgresql+psycopg://u@h/db"
    with pytest.raises(InputError, match="unsupported"):
        open_engine("mysql://u@h/db")
    with pytest.raises(InputError, match="invalid database URL"):
        open_engine("::nonsense::")


def test_unreachable_database_is_a_storage_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    engine = open_engine(f"sqlite:///{tmp_path}/missing/dir/x.db")
    with pytest.raises(StorageError, match="migrating"):
        migrate(engine)


def test_every_head_is_applied_and_migrate_is_idempotent(engine) -> None:  # type: ignore[no-untyped-def]
    heads = migrate(engine, force=True)
    assert heads == heads_available()
    assert {"keys_0001", "rofr_0001"} <= set(heads)
    assert migrate(engine, force=True) == heads
    tables = set(sa.inspect(engine).get_table_names())
    assert {"api_keys", "rofr_events", "rofr_requests", "rofr_instructions"} <= tables


def test_sqlite_runs_in_wal_mode(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    engine.dispose()


def test_keys_round_trip(engine) -> None:  # type: ignore[no-untyped-def]
    first = create_key(engine, party="openai", role="party", created_at=T0, product="chatgpt")
    second = create_key(
        engine, party="microsoft", role="admin", created_at=T0 + timedelta(seconds=1)
    )
    store = KeyStore(engine)
    assert [r.key_id for r in store.all()] == [first.record.key_id, second.record.key_id]
    assert store.get(first.record.key_id) == first.record
    assert authenticate(engine, second.secret).role == "admin"
    later = T0 + timedelta(days=1)
    assert revoke_key(engine, first.record.key_id, later).revoked_at == later
    assert revoke_key(engine, first.record.key_id, later + timedelta(days=1)).revoked_at == later
    assert [r.key_id for r in store.all(include_revoked=False)] == [second.record.key_id]
