"""The database: one SQLAlchemy engine per URL, SQLite by default, PostgreSQL for shared state.

    database_url_from(option)   the URL to use: the option, else env FIRSTRIGHT_DATABASE,
                                else the SQLite file ``firstright.db`` in the current directory
    open_engine(url)            an Engine; ``postgresql://`` is served by psycopg 3, SQLite runs
                                in WAL mode with a busy timeout and foreign keys on
    migrate(engine)             alembic ``upgrade heads`` over every branch (keys, rofr, ...)
    storage_errors()            context manager re-raising foreign database errors as StorageError

Every stateful command opens its engine with ``open_engine`` and calls ``migrate`` before use.
Tables are portable SQLAlchemy Core; instants are stored as timezone-aware timestamps
(``UtcDateTime``) and always come back as aware UTC datetimes.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Dialect, Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from firstright.errors import InputError, StorageError

DATABASE_ENV = "FIRSTRIGHT_DATABASE"
DEFAULT_DATABASE_URL = "sqlite:///firstright.db"
SQLITE_BUSY_TIMEOUT_MS = 10_000
POSTGRES_CONNECT_TIMEOUT_S = 10

_migrated: weakref.WeakSet[Engine] = weakref.WeakSet()
_migrate_lock = threading.Lock()


def database_url_from(option: str | None) -> str:
    """The database URL a command uses: ``--database``, else env, else ``firstright.db``."""
    if option:
        return option
    from_env = os.environ.get(DATABASE_ENV, "").strip()
    return from_env or DEFAULT_DATABASE_URL


def driver_url(url: str) -> str:
    """Map user-facing URLs to their driver: ``postgresql://`` and ``postgres://`` → psycopg 3."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def open_engine(url: str) -> Engine:
    """An engine for ``url`` (SQLite or PostgreSQL); bad URLs raise InputError."""
    target = driver_url(url)
    try:
        parsed = make_url(target)
    except ArgumentError as exc:
        raise InputError(f"invalid database URL {url!r}: {exc}") from exc
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(target, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise InputError(f"invalid database URL {url!r}: use postgresql:// (psycopg 3)")
        try:
            return sa.create_engine(
                target,
                pool_pre_ping=True,
                connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S},
            )
        except (ArgumentError, ImportError) as exc:
            raise InputError(f"invalid database URL {url!r}: {exc}") from exc
    raise InputError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://...")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_on_begin) so transactions are real.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _sqlite_on_begin(connection: sa.Connection) -> None:
    # IMMEDIATE takes the write lock up front: two writers wait (busy timeout) instead of
    # failing half-way with "database is locked" on lock upgrade.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


@contextmanager
def storage_errors(what: str) -> Iterator[None]:
    """Re-raise database driver errors met while doing ``what`` as StorageError."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(f"{what}: {_describe(exc)}") from exc
    except OSError as exc:
        raise StorageError(f"{what}: {exc}") from exc


def _describe(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def migrations_dir() -> str:
    """Filesystem path of the packaged alembic scripts."""
    return str(resources.files("firstright") / "migrations")


def alembic_config(connection: sa.Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", migrations_dir())
    config.set_main_option("path_separator", "os")
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def migrate(engine: Engine, *, force: bool = False) -> list[str]:
    """Bring the schema to the head of every branch; return the heads now applied.

    Cheap after the first call per engine in a process (it remembers); ``force`` re-checks.
    """
    with _migrate_lock:
        if engine in _migrated and not force:
            return []
        with storage_errors(f"migrating {engine.url.render_as_string(hide_password=True)}"):
            with engine.begin() as connection:
                if connection.dialect.name == "postgresql":
                    # Serialise concurrent migrators (several processes starting together).
                    connection.exec_driver_sql("SELECT pg_advisory_xact_lock(7270617)")
                command.upgrade(alembic_config(connection), "heads")
            with engine.connect() as connection:
                heads = sorted(MigrationContext.configure(connection).get_current_heads())
        _migrated.add(engine)
        return heads


def heads_available() -> list[str]:
    """Every head revision shipped with this version of firstright."""
    return sorted(ScriptDirectory.from_config(alembic_config()).get_heads())


class UtcDateTime(sa.types.TypeDecorator[datetime]):
    """An aware UTC datetime on every backend (SQLite stores it naive; we put UTC back)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; instants must be aware")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
