"""Shared fixtures: real databases for the conformance suites.

``database_url`` runs a test twice: on SQLite, then on PostgreSQL in a throwaway cluster started
once per session (``firstright.testing.pg_cluster``). Each test gets its own database, already
migrated to every head: the migrations run once per session into a template (PostgreSQL:
``CREATE DATABASE ... TEMPLATE firstright_template``; SQLite: a copy of the migrated file), so
tests stay isolated without paying for the migrations each time. ``empty_database_url`` gives an
empty database for tests of the migrations themselves. Without PostgreSQL the postgres half is
skipped with the reason; with FIRSTRIGHT_REQUIRE_SERVICES=1 that skip becomes a failure.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from firstright.adapters.db import migrate, open_engine
from firstright.testing.pg_cluster import PgCluster, PgUnavailable

REQUIRE_SERVICES = os.environ.get("FIRSTRIGHT_REQUIRE_SERVICES") == "1"
PG_TEMPLATE = "firstright_template"
_database_numbers = itertools.count(1)


def service_missing(reason: str) -> None:
    """Skip for a missing service, or fail when services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


def _migrate_url(url: str) -> None:
    engine = open_engine(url)
    try:
        migrate(engine)
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster | PgUnavailable]:
    """The session's PostgreSQL cluster, or why there is none (started on first use)."""
    try:
        cluster = PgCluster.start()
    except PgUnavailable as missing:
        yield missing
        return
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def pg_template(pg_cluster: PgCluster | PgUnavailable) -> PgCluster | PgUnavailable:
    """The cluster with ``firstright_template`` migrated to every head (once per session)."""
    if isinstance(pg_cluster, PgUnavailable):
        return pg_cluster
    _migrate_url(pg_cluster.create_database(PG_TEMPLATE))
    return pg_cluster


def _cluster(found: PgCluster | PgUnavailable) -> PgCluster:
    if isinstance(found, PgUnavailable):
        service_missing(found.message)
    assert isinstance(found, PgCluster)
    return found


@pytest.fixture
def postgres_url(pg_template: PgCluster | PgUnavailable) -> str:
    """A PostgreSQL database of its own for one test, migrated (a copy of the template)."""
    cluster = _cluster(pg_template)
    return cluster.create_database(
        f"t{os.getpid()}_{next(_database_numbers)}", template=PG_TEMPLATE
    )


@pytest.fixture
def empty_postgres_url(pg_cluster: PgCluster | PgUnavailable) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    cluster = _cluster(pg_cluster)
    return cluster.create_database(f"e{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to every head, checkpointed so the file alone holds it all."""
    path = tmp_path_factory.mktemp("template") / "firstright.db"
    _migrate_url(f"sqlite:///{path}")
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


@pytest.fixture
def sqlite_url(tmp_path: Path, sqlite_template: Path) -> str:
    """A SQLite file of its own for one test, migrated (a copy of the template)."""
    target = tmp_path / "firstright.db"
    shutil.copyfile(sqlite_template, target)
    return f"sqlite:///{target}"


@pytest.fixture
def empty_sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'empty.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated database of its own for one test: SQLite file, then PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_database_url(request: pytest.FixtureRequest) -> str:
    """An empty database (no tables) for migration tests: SQLite file, then PostgreSQL."""
    name = "empty_sqlite_url" if request.param == "sqlite" else "empty_postgres_url"
    url: str = request.getfixturevalue(name)
    return url
