"""Timers survive a crash: ``firstright serve`` is killed with SIGKILL inside the exercise window
and again inside the release window (both checked against the stored deadlines); after each
restart every deadline has fired exactly once, at its own deadline (checked in the event
store)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from firstright.adapters.db import migrate, open_engine
from firstright.services.auth import create_key

CONTRACT = Path(__file__).parent / "data" / "rofr_desk_contract.yaml"
FIRSTRIGHT = Path(sys.executable).parent / "firstright"
TERMS = {
    "quantity_gpus": 1000,
    "gpu_type": "H100",
    "region": "us-east",
    "price_per_gpu_hour": "2.50",
}
REQUESTS = ("cr-1", "cr-2", "cr-3")
EXERCISE_S = 6
RELEASE_S = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    def __init__(self, tmp_path: Path, db_url: str) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self) -> None:
        self.runs += 1
        env = dict(
            os.environ,
            FIRSTRIGHT_ROFR_CONTRACT=str(self.tmp_path / "contract.yaml"),
            FIRSTRIGHT_SCHEDULER_POLL_S="0.1",
        )
        log = (self.tmp_path / f"serve-{self.runs}.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(FIRSTRIGHT),
                "serve",
                "--upstream",
                "http://127.0.0.1:9/v1",
                "--database",
                self.db_url,
                "--port",
                str(self.port),
                "--log-level",
                "warning",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, (
                self.tmp_path / f"serve-{self.runs}.log"
            ).read_text()
            try:
                if httpx.get(f"{self.url}/api/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise AssertionError("server did not start")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)


def timer_events(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT request_id, body FROM rofr_events WHERE type = 'timer' ORDER BY 1, 2")
        ).all()
    return [(row[0], row[1]) for row in rows]


def wait_until(predicate, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def timer_rows(engine: sa.Engine) -> list[tuple[str, str, datetime]]:
    """Fired timers as (request, kind, deadline)."""
    fired = []
    for rid, body in timer_events(engine):
        data = json.loads(body)
        deadline = datetime.fromisoformat(data["deadline"].replace("Z", "+00:00"))
        fired.append((rid, data["kind"], deadline))
    return fired


def deadline_of(answer: dict[str, object], kind: str) -> datetime:
    timers = answer["timers"]
    assert isinstance(timers, list)
    found = [t["deadline"] for t in timers if t["kind"] == kind]
    assert len(found) == 1, timers
    return datetime.fromisoformat(str(found[0]).replace("Z", "+00:00"))


@pytest.mark.slow
def test_every_deadline_fires_once_across_kill_and_restart(tmp_path: Path) -> None:
    # Windows long enough that each kill lands inside one even when serve takes ~5 s to start;
    # where each kill really landed is checked against the stored deadlines, not assumed.
    text = CONTRACT.read_text()
    text = text.replace("exercise_period: P10D", f"exercise_period: PT{EXERCISE_S}S")
    text = text.replace("release_window: P90D", f"release_window: PT{RELEASE_S}S")
    (tmp_path / "contract.yaml").write_text(text)
    db_url = f"sqlite:///{tmp_path / 'desk.db'}"
    engine = open_engine(db_url)
    migrate(engine)
    now = datetime.now(UTC)
    owner = create_key(engine, party="openai", role="party", created_at=now).secret
    server = Server(tmp_path, db_url)
    try:
        server.start()
        headers = {"Authorization": f"Bearer {owner}"}
        exercise: dict[str, datetime] = {}
        for rid in REQUESTS:
            opened = httpx.post(
                f"{server.url}/api/rofr/requests",
                json={
                    "request_id": rid,
                    "category": "new_capacity",
                    "quantity_gpus": 1000,
                    "offer": {"party": "cloud_x", "terms": TERMS},
                },
                headers=headers,
            )
            assert opened.status_code == 201, opened.text
            notice = httpx.post(
                f"{server.url}/api/rofr/requests/{rid}/notice",
                json={"terms": TERMS, "offeror": "cloud_x"},
                headers=headers,
            )
            assert notice.json()["state"] == "OFFER_OPEN"
            exercise[rid] = deadline_of(notice.json(), "exercise")
        server.kill9()
        killed_at = datetime.now(UTC)
        # First kill: inside every exercise window, so nothing may have fired.
        assert killed_at < min(exercise.values()), (killed_at, exercise)
        assert timer_events(engine) == []
        # The exercise deadlines pass while the server is down; the restart fires them.
        time.sleep(max(0.0, (max(exercise.values()) - datetime.now(UTC)).total_seconds()) + 0.3)
        server.start()
        wait_until(lambda: len(timer_events(engine)) >= len(REQUESTS), 15)
        server.kill9()
        killed_at = datetime.now(UTC)
        release = {rid: at + timedelta(seconds=RELEASE_S) for rid, at in exercise.items()}
        # Second kill: every exercise timer fired once; the kill landed inside every release
        # window, so no release timer may have fired.
        assert killed_at < min(release.values()), (killed_at, release)
        assert sorted(timer_rows(engine)) == sorted(
            (rid, "exercise", at) for rid, at in exercise.items()
        )
        server.start()
        wait_until(lambda: len(timer_events(engine)) == 2 * len(REQUESTS), RELEASE_S + 15)
        time.sleep(0.5)  # give a duplicate firing, if any, the chance to show
        assert sorted(timer_rows(engine)) == sorted(
            [(rid, "exercise", at) for rid, at in exercise.items()]
            + [(rid, "release", at) for rid, at in release.items()]
        )
        for rid in REQUESTS:
            shown = httpx.get(f"{server.url}/api/rofr/requests/{rid}", headers=headers).json()
            assert shown["state"] == "REOFFER_REQUIRED"
            vias = [d.get("via") for d in shown["decisions"] if d["event"] == "timer"]
            assert vias == ["timer_exercise_expired", "timer_release_expired"]
    finally:
        server.stop()
        engine.dispose()
