"""The domain is pure: no module under ``firstright.domain`` imports I/O, clock or randomness
modules, or asks the clock what time it is (STYLE.md habit 1)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parent.parent / "src" / "firstright" / "domain"

FORBIDDEN_MODULES = frozenset(
    {
        "os",
        "pathlib",
        "io",
        "shutil",
        "tempfile",
        "glob",
        "socket",
        "ssl",
        "select",
        "selectors",
        "asyncio",
        "threading",
        "multiprocessing",
        "subprocess",
        "signal",
        "sqlite3",
        "sqlalchemy",
        "alembic",
        "psycopg",
        "duckdb",
        "pyarrow",
        "httpx",
        "aiohttp",
        "requests",
        "urllib",
        "http",
        "fastapi",
        "starlette",
        "uvicorn",
        "time",
        "random",
        "secrets",
        "uuid",
        "yaml",
        "firstright.adapters",
        "firstright.services",
        "firstright.gateway",
        "firstright.cli",
    }
)
CLOCK_CALLS = frozenset(
    {
        ("datetime", "now"),
        ("datetime", "utcnow"),
        ("datetime", "today"),
        ("date", "today"),
        ("time", "time"),
        ("time", "time_ns"),
        ("time", "monotonic"),
        ("time", "perf_counter"),
    }
)


def _modules() -> list[Path]:
    return sorted(DOMAIN.rglob("*.py"))


def _forbidden(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in FORBIDDEN_MODULES)


def _violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(
                f"{path.name}:{node.lineno}: imports {alias.name}"
                for alias in node.names
                if _forbidden(alias.name)
            )
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if _forbidden(node.module):
                found.append(f"{path.name}:{node.lineno}: imports from {node.module}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner = node.func.value
            owner_name = (
                owner.id
                if isinstance(owner, ast.Name)
                else owner.attr
                if isinstance(owner, ast.Attribute)
                else ""
            )
            if (owner_name, node.func.attr) in CLOCK_CALLS:
                found.append(f"{path.name}:{node.lineno}: calls {owner_name}.{node.func.attr}()")
    return found


def test_domain_has_modules() -> None:
    assert len(_modules()) >= 5


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(DOMAIN)))
def test_domain_module_is_pure(path: Path) -> None:
    assert _violations(path) == []


def test_the_checker_catches_what_it_should(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import os\nfrom time import monotonic\nimport datetime as dt\n"
        "from datetime import datetime, date\n"
        "x = datetime.now()\ny = date.today()\nz = dt.datetime.utcnow()\n"
    )
    assert _violations(bad) == [
        "bad.py:1: imports os",
        "bad.py:2: imports from time",
        "bad.py:5: calls datetime.now()",
        "bad.py:6: calls date.today()",
        "bad.py:7: calls datetime.utcnow()",
    ]
