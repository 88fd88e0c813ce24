"""The timer scheduler with an injected clock, and webhook alerts with retries."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from firstright.adapters.db import migrate, open_engine
from firstright.adapters.rofr_store import rofr_alerts_sent
from firstright.services.alerts import Alerter
from firstright.services.contract_loader import load_contracts
from firstright.services.rofr_desk import RofrDesk
from firstright.services.rofr_scheduler import RofrScheduler
from firstright.services.rofr_wire import NoticeBody, OfferBody, OpenBody

CONTRACT = Path(__file__).parent / "data" / "rofr_desk_contract.yaml"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TERMS = {
    "quantity_gpus": 1000,
    "gpu_type": "H100",
    "region": "us-east",
    "price_per_gpu_hour": "2.50",
}


class Recorder:
    """A webhook that fails ``failures`` times with 503, then accepts; records what it got."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.received: list[dict[str, object]] = []
        self.attempts = 0
        self.lock = threading.Lock()

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            self.attempts += 1
            if self.failures > 0:
                self.failures -= 1
                return httpx.Response(503)
            self.received.append(json.loads(request.content))
        return httpx.Response(204)


def make_desk(database_url: str, alerter: Alerter) -> RofrDesk:
    engine = open_engine(database_url)
    migrate(engine)
    return RofrDesk(engine, list(load_contracts([str(CONTRACT)])), alerter=alerter)


def open_and_notify(desk: RofrDesk, rid: str, at: datetime) -> None:
    body = OpenBody(
        request_id=rid,
        category="new_capacity",
        quantity_gpus=1000,
        offer=OfferBody(party="cloud_x", terms=TERMS),
    )
    desk.open(None, body, key=f"open-{rid}", at=at)
    desk.notify(None, rid, NoticeBody(terms=TERMS, offeror="cloud_x"), key=f"n-{rid}", at=at)


def test_scheduler_fires_each_deadline_once(database_url: str) -> None:
    desk = make_desk(database_url, Alerter())
    open_and_notify(desk, "cr-a", T0)
    open_and_notify(desk, "cr-b", T0 + timedelta(days=1))
    now = [T0 + timedelta(days=5)]
    scheduler = RofrScheduler(desk, clock=lambda: now[0])
    assert scheduler.tick() == []
    now[0] = T0 + timedelta(days=10, seconds=1)  # just after cr-a's exercise deadline
    fired = scheduler.tick()
    assert [(d["request_id"], d["via"]) for d in fired] == [("cr-a", "timer_exercise_expired")]
    assert scheduler.tick() == []
    # A second scheduler (another process) sees nothing left to fire.
    assert RofrScheduler(desk, clock=lambda: now[0]).tick() == []
    now[0] = T0 + timedelta(days=200)  # both releases lapse; cr-b's exercise fires first
    fired = scheduler.tick()
    assert sorted((d["request_id"], d["via"]) for d in fired) == [
        ("cr-a", "timer_release_expired"),
        ("cr-b", "timer_exercise_expired"),
        ("cr-b", "timer_release_expired"),
    ]
    for rid in ("cr-a", "cr-b"):
        shown = desk.show(None, rid)
        assert shown["state"] == "REOFFER_REQUIRED"
        timers = [e for e in shown["events"] if e["type"] == "timer"]
        assert [e["body"]["kind"] for e in timers] == ["exercise", "release"]
    assert desk.list_requests(None)[0]["next_deadline"] is None


def test_alerts_reach_the_webhook_with_retries(sqlite_url: str) -> None:
    recorder = Recorder(failures=2)
    sleeps: list[float] = []
    alerter = Alerter(
        "http://hooks.test/rofr", transport=httpx.MockTransport(recorder), sleep=sleeps.append
    )
    desk = make_desk(sqlite_url, alerter)
    open_and_notify(desk, "cr-a", T0)
    now = [T0 + timedelta(days=9, hours=12)]
    scheduler = RofrScheduler(desk, clock=lambda: now[0], lead_s=(86_400, 3_600))
    scheduler.tick()
    scheduler.tick()  # lead alerts are sent once per deadline and lead
    now[0] = T0 + timedelta(days=9, hours=23, minutes=30)
    scheduler.tick()
    alerter.close(timeout_s=10)
    kinds = [(a["kind"], a.get("state"), a.get("lead_s")) for a in recorder.received]
    assert kinds == [
        ("state_changed", "TRIGGERED", None),
        ("notice_received", "OFFER_OPEN", None),
        ("state_changed", "OFFER_OPEN", None),
        ("deadline_approaching", "OFFER_OPEN", 86_400),
        ("deadline_approaching", "OFFER_OPEN", 3_600),
    ]
    assert recorder.attempts == len(recorder.received) + 2
    assert sleeps == [0.5, 1.0]
    assert alerter.delivered == 5 and alerter.failed == 0


def test_alert_failures_never_block_the_command(sqlite_url: str) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("down", request=request)

    alerter = Alerter(
        "http://hooks.test/rofr",
        transport=httpx.MockTransport(refuse),
        attempts_max=2,
        sleep=lambda _s: None,
    )
    desk = make_desk(sqlite_url, alerter)
    open_and_notify(desk, "cr-a", T0)
    assert desk.show(None, "cr-a")["state"] == "OFFER_OPEN"
    alerter.close(timeout_s=10)
    assert alerter.failed == 3 and alerter.delivered == 0
    with pytest.raises(ValueError, match="http"):
        Alerter("ftp://nope")


class Emitted(Alerter):
    """An alerter that records what it is asked to send."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[tuple[str, object]] = []

    def emit(self, kind: str, payload):  # type: ignore[no-untyped-def,override]
        self.sent.append((kind, payload.get("lead_s")))
        super().emit(kind, payload)


def test_lead_alerts_are_not_repeated_after_a_restart(database_url: str) -> None:
    desk = make_desk(database_url, Alerter())
    open_and_notify(desk, "cr-a", T0)
    now = [T0 + timedelta(days=9, hours=12)]
    leads = (86_400, 3_600)
    first = Emitted()
    RofrScheduler(desk, clock=lambda: now[0], lead_s=leads, alerter=first).tick()
    assert first.sent == [("deadline_approaching", 86_400)]
    # A restart: new desk and scheduler on the same database, same instant, then later.
    again = Emitted()
    restarted = RofrScheduler(
        make_desk(database_url, Alerter()), clock=lambda: now[0], lead_s=leads, alerter=again
    )
    restarted.tick()
    assert again.sent == []
    now[0] = T0 + timedelta(days=9, hours=23, minutes=30)
    restarted.tick()
    third = Emitted()
    RofrScheduler(desk, clock=lambda: now[0], lead_s=leads, alerter=third).tick()
    assert again.sent == [("deadline_approaching", 3_600)]
    assert third.sent == []
    assert sent_records(desk) == 2
    # Records of deadlines more than a day past are pruned; the deadline itself fires once.
    now[0] = T0 + timedelta(days=12)
    fired = RofrScheduler(desk, clock=lambda: now[0], lead_s=leads, alerter=Emitted()).tick()
    assert [d["via"] for d in fired] == ["timer_exercise_expired"]
    assert sent_records(desk) == 0


def sent_records(desk: RofrDesk) -> int:
    with desk.store.engine.connect() as conn:
        return int(
            conn.execute(sa.select(sa.func.count()).select_from(rofr_alerts_sent)).scalar_one()
        )
