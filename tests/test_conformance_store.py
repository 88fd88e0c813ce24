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
from firstright.adapters.rofr_store import (
    AppendRace,
    DuplicateKey,
    InstructionRow,
    NewEvent,
    Projection,
    RequestRow,
    RofrStore,
)
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


def test_every_head_is_applied_and_migrate_is_idempotent(empty_database_url: str) -> None:
    engine = open_engine(empty_database_url)
    assert sa.inspect(engine).get_table_names() == []
    heads = migrate(engine, force=True)
    assert heads == heads_available()
    assert {"keys_0001", "rofr_0002"} <= set(heads)
    assert migrate(engine, force=True) == heads
    tables = set(sa.inspect(engine).get_table_names())
    assert {
        "api_keys",
        "rofr_events",
        "rofr_requests",
        "rofr_instructions",
        "rofr_alerts_sent",
    } <= tables
    engine.dispose()


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


# -- the first-refusal event store ---------------------------------------------------------------


def _row(rid: str, at: datetime) -> RequestRow:
    return RequestRow(
        request_id=rid,
        owner="openai",
        holder="microsoft",
        contract={"clause_id": "c", "contract": {}},
        state="INIT",
        last_seq=0,
        last_t=at,
        next_timer_kind=None,
        next_timer_at=None,
        created_at=at,
    )


def _event(key: str, at: datetime, body: dict[str, object] | None = None) -> NewEvent:
    return NewEvent(
        type="capacity_request",
        body=body or {"category": "new_capacity", "price": "2.50", "name": "Zürich"},
        t=at,
        idempotency_key=key,
        body_sha256="h" + key,
        actor="operator",
        response={"state": "INIT"},
    )


def test_event_store_appends_in_order_and_projects(engine) -> None:  # type: ignore[no-untyped-def]
    store = RofrStore(engine)
    deadline = T0 + timedelta(days=10, microseconds=123)
    stored = store.append(
        "cr-1",
        0,
        [_event("k1", T0), _event("k2", T0 + timedelta(seconds=1))],
        Projection("OFFER_OPEN", "exercise", deadline),
        create=_row("cr-1", T0),
    )
    assert [e.seq for e in stored] == [1, 2]
    events = store.events("cr-1")
    assert events == stored
    assert events[0].t == T0 and events[0].t.tzinfo is not None
    assert events[0].body["name"] == "Zürich"
    row = store.request("cr-1")
    assert row is not None
    assert (row.state, row.last_seq, row.next_timer_at) == ("OFFER_OPEN", 2, deadline)
    assert store.event_by_key("k2") == stored[1]
    assert store.event_by_key("nope") is None
    assert [r.request_id for r in store.due(deadline + timedelta(microseconds=1), limit=10)] == [
        "cr-1"
    ]
    assert store.due(deadline, limit=10) == []  # fires just after the deadline
    assert [r.request_id for r in store.requests(party="microsoft", limit=10)] == ["cr-1"]
    assert store.requests(party="google", limit=10) == []
    assert store.requests(states=["CLOSED_HOLDER"], limit=10) == []


def test_event_store_detects_races_and_duplicate_keys(engine) -> None:  # type: ignore[no-untyped-def]
    store = RofrStore(engine)
    store.append(
        "cr-1", 0, [_event("k1", T0)], Projection("INIT", None, None), create=_row("cr-1", T0)
    )
    with pytest.raises(AppendRace):  # a writer that replayed an old version loses
        store.append("cr-1", 0, [_event("k2", T0)], Projection("INIT", None, None))
    with pytest.raises(DuplicateKey):
        store.append("cr-1", 1, [_event("k1", T0)], Projection("INIT", None, None))
    with pytest.raises((AppendRace, DuplicateKey)):
        store.append(
            "cr-1", 0, [_event("k3", T0)], Projection("X", None, None), create=_row("cr-1", T0)
        )
    assert [e.idempotency_key for e in store.events("cr-1")] == ["k1"]
    row = store.request("cr-1")
    assert row is not None and row.last_seq == 1


def test_instructions_round_trip(engine) -> None:  # type: ignore[no-untyped-def]
    store = RofrStore(engine)
    row = InstructionRow("i-1", "microsoft", {"price_per_gpu_hour_max": "3"}, "h1", T0, None)
    assert store.add_instruction(row) == row
    assert store.add_instruction(InstructionRow("i-1", "microsoft", {}, "h2", T0, None)) == row
    later = T0 + timedelta(days=1)
    assert [r.instruction_id for r in store.instructions("microsoft", active_at=later)] == ["i-1"]
    store.revoke_instruction("i-1", later)
    assert store.instructions("microsoft", active_at=later) == []
    assert [r.revoked_at for r in store.instructions("microsoft", active_at=T0)] == [later]
