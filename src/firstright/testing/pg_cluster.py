"""A throwaway PostgreSQL cluster for tests and local experiments.

    with PgCluster.start() as cluster:          # initdb + pg_ctl start on a free loopback port
        url = cluster.create_database("t1")     # postgresql://...@127.0.0.1:PORT/t1
    # stopped (immediate) and its folder removed

The cluster lives in a temporary folder (data + unix socket), runs with ``fsync=off`` and trusts
local connections. PostgreSQL refuses to run as root; when this process is root the server
binaries run as the ``postgres`` system user (``runuser``/``setpriv``) and the folder is chowned
to it. ``find_pg_bin()`` returns None when PostgreSQL is not installed, so callers can skip with
the reason instead of failing.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import psycopg

from firstright.errors import RuntimeFailure

START_TIMEOUT_S = 60
PG_BIN_ENV = "FIRSTRIGHT_PG_BIN"
SUPERUSER = "firstright"
_DB_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class PgUnavailable(RuntimeFailure):
    """PostgreSQL is not installed or cannot be started here (the message says why)."""


def find_pg_bin() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``: env FIRSTRIGHT_PG_BIN, PATH, then the
    newest ``/usr/lib/postgresql/*/bin`` (Debian) or ``/usr/pgsql-*/bin`` (RHEL)."""
    candidates: list[Path] = []
    if os.environ.get(PG_BIN_ENV):
        candidates.append(Path(os.environ[PG_BIN_ENV]))
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    pattern_dirs = glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin")
    candidates.extend(sorted((Path(p) for p in pattern_dirs), key=_version_key, reverse=True))
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", str(path))) or (0,)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _as_user_prefix() -> tuple[list[str], str | None]:
    """Command prefix to drop root privileges, and the user it drops to (None: not root)."""
    if os.geteuid() != 0:
        return [], None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PgUnavailable("running as root and no 'postgres' system user to run as") from exc
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", "postgres", "--"], "postgres"
    setpriv = shutil.which("setpriv")
    if setpriv:
        return [setpriv, "--reuid=postgres", "--regid=postgres", "--init-groups"], "postgres"
    raise PgUnavailable("running as root and neither runuser nor setpriv is available")


@dataclass
class PgCluster:
    """One running cluster; use ``PgCluster.start()`` and ``stop()`` (or ``with``)."""

    bin_dir: Path
    root: Path
    port: int
    prefix: list[str] = field(default_factory=list)
    running: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls, bin_dir: Path | None = None) -> PgCluster:
        found = bin_dir or find_pg_bin()
        if found is None:
            raise PgUnavailable(
                "PostgreSQL is not installed (no initdb/pg_ctl on PATH, in /usr/lib/postgresql/"
                f"*/bin or ${PG_BIN_ENV}); install the postgresql package"
            )
        prefix, user = _as_user_prefix()
        root = Path(tempfile.mkdtemp(prefix="firstright-pg-"))
        cluster = cls(bin_dir=found, root=root, port=_free_port(), prefix=prefix)
        try:
            cluster.socket_dir.mkdir()
            if user is not None:
                entry = pwd.getpwnam(user)
                for path in (root, cluster.socket_dir):
                    os.chown(path, entry.pw_uid, entry.pw_gid)
            cluster._initdb()
            cluster._pg_ctl_start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def _run(self, args: list[str], what: str) -> None:
        try:
            done = subprocess.run(
                [*self.prefix, *args],
                capture_output=True,
                text=True,
                timeout=START_TIMEOUT_S,
                check=False,
                cwd=self.root,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgUnavailable(f"{what} failed: {exc}") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
            raise PgUnavailable(f"{what} failed (exit {done.returncode}): {' | '.join(tail)}")

    def _initdb(self) -> None:
        self._run(
            [
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-sync",
            ],
            "initdb",
        )

    def _pg_ctl_start(self) -> None:
        options = (
            f"-c listen_addresses=127.0.0.1 -c port={self.port} "
            f"-c unix_socket_directories={self.socket_dir} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run(
            [
                str(self.bin_dir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.root / "server.log"),
                "-o",
                options,
                "-w",
                "-t",
                str(START_TIMEOUT_S),
                "start",
            ],
            "pg_ctl start",
        )
        self.running = True

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create a database (empty, or a copy of ``template``) and return its URL.

        A template must have no open connections while it is copied."""
        for given in (name, template):
            if given is not None and not _DB_NAME.match(given):
                raise ValueError(f"database name {given!r} must match {_DB_NAME.pattern}")
        copy = f' TEMPLATE "{template}"' if template is not None else ""
        try:
            with psycopg.connect(self.url(), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"{copy}')
        except psycopg.Error as exc:
            raise PgUnavailable(f"CREATE DATABASE {name} failed: {exc}") from exc
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediate mode) and delete its folder; safe to call twice."""
        if self.running:
            try:
                self._run(
                    [
                        str(self.bin_dir / "pg_ctl"),
                        "-D",
                        str(self.data_dir),
                        "-m",
                        "immediate",
                        "stop",
                    ],
                    "pg_ctl stop",
                )
            finally:
                self.running = False
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PgCluster:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
