"""Timers survive a crash: ``firstright serve`` is killed with SIGKILL in the middle of the
exercise window and again inside the release window; after each restart every deadline has
fired exactly once (checked in the event store)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
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


@pytest.mark.slow
def test_every_deadline_fires_once_across_kill_and_restart(tmp_path: Path) -> None:
    text = CONTRACT.read_text()
    text = text.replace("exercise_period: P10D", "exercise_period: PT2S")
    text = text.replace("release_window: P90D", "release_window: PT8S")
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
        time.sleep(0.5)
        server.kill9()  # mid exercise window: nothing has fired yet
        assert timer_events(engine) == []
        time.sleep(2.5)  # the exercise deadlines pass while the server is down
        server.start()
        wait_until(lambda: len(timer_events(engine)) >= len(REQUESTS), 15)
        server.kill9()  # inside the release window (unless the restart took longer)
        server.start()
        wait_until(lambda: len(timer_events(engine)) == 2 * len(REQUESTS), 15)
        time.sleep(0.5)  # give a duplicate firing, if any, the chance to show
        fired = timer_events(engine)
        assert len(fired) == 2 * len(REQUESTS)
        for rid in REQUESTS:
            kinds = sorted(body.split('"kind":"')[1].split('"')[0] for r, body in fired if r == rid)
            assert kinds == ["exercise", "release"], (rid, fired)
            shown = httpx.get(f"{server.url}/api/rofr/requests/{rid}", headers=headers).json()
            assert shown["state"] == "REOFFER_REQUIRED"
            vias = [d.get("via") for d in shown["decisions"] if d["event"] == "timer"]
            assert vias == ["timer_exercise_expired", "timer_release_expired"]
    finally:
        server.stop()
        engine.dispose()
