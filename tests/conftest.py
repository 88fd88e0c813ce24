"""Shared fixtures: real databases for the conformance suites.

``database_url`` runs a test twice: on a fresh SQLite file and on a fresh PostgreSQL database in
a throwaway cluster started once per session (``firstright.testing.pg_cluster``). Without
PostgreSQL the postgres half is skipped with the reason; with FIRSTRIGHT_REQUIRE_SERVICES=1 that
skip becomes a failure.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from firstright.testing.pg_cluster import PgCluster, PgUnavailable

REQUIRE_SERVICES = os.environ.get("FIRSTRIGHT_REQUIRE_SERVICES") == "1"
_database_numbers = itertools.count(1)


def service_missing(reason: str) -> None:
    """Skip for a missing service, or fail when services are required (CI)."""
    if REQUIRE_SERVICES:
        pytest.fail(f"required service missing: {reason}", pytrace=False)
    pytest.skip(reason)


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


@pytest.fixture
def postgres_url(pg_cluster: PgCluster | PgUnavailable) -> str:
    """A fresh, empty PostgreSQL database for one test."""
    if isinstance(pg_cluster, PgUnavailable):
        service_missing(pg_cluster.message)
    assert isinstance(pg_cluster, PgCluster)
    return pg_cluster.create_database(f"t{os.getpid()}_{next(_database_numbers)}")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'firstright.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database: SQLite file, then PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(name)
    return url
