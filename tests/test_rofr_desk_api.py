"""The first-refusal desk over HTTP: roles, idempotency, 403/404/409, time order, instructions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from firstright.adapters.db import migrate, open_engine
from firstright.api.app import AdminSettings, create_admin_app
from firstright.services.auth import create_key

CONTRACT = Path(__file__).parent / "data" / "rofr_desk_contract.yaml"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TERMS = {
    "quantity_gpus": 1000,
    "gpu_type": "H100",
    "region": "us-east",
    "price_per_gpu_hour": "2.50",
}


class Desk:
    def __init__(self, client: TestClient, keys: dict[str, str], engine: sa.Engine) -> None:
        self.client = client
        self.keys = keys
        self.engine = engine

    def call(
        self, method: str, path: str, who: str, body: Any = None, key: str | None = None
    ) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        if key:
            headers["Idempotency-Key"] = key
        return self.client.request(method, f"/api/rofr{path}", json=body, headers=headers)

    def event_count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(sa.text("SELECT count(*) FROM rofr_events")).scalar() or 0)

    def open(self, rid: str = "cr-1") -> Any:
        body = {
            "request_id": rid,
            "category": "new_capacity",
            "quantity_gpus": 1000,
            "offer": {"party": "cloud_x", "terms": TERMS},
            "at": "2025-03-01T09:00:00Z",
        }
        return self.call("POST", "/requests", "owner", body, key=f"open-{rid}")

    def notify(self, rid: str = "cr-1", at: str = "2025-03-01T10:00:00Z") -> Any:
        body = {"terms": TERMS, "offeror": "cloud_x", "at": at}
        return self.call("POST", f"/requests/{rid}/notice", "owner", body, key=f"notice-{rid}-{at}")


@pytest.fixture
def desk(database_url: str) -> Iterator[Desk]:
    engine = open_engine(database_url)
    migrate(engine)
    keys = {
        "owner": create_key(engine, party="openai", role="party", created_at=T0).secret,
        "holder": create_key(engine, party="microsoft", role="party", created_at=T0).secret,
        "other": create_key(engine, party="google", role="party", created_at=T0).secret,
        "admin": create_key(engine, party="ops", role="admin", created_at=T0).secret,
        "tenant": create_key(engine, party="openai", role="tenant", created_at=T0).secret,
    }
    settings = AdminSettings(rofr_contract_path=CONTRACT, scheduler_enabled=False, clock=lambda: T0)
    app = create_admin_app(engine, settings=settings)
    with TestClient(app) as client:
        yield Desk(client, keys, engine)
    engine.dispose()


def test_full_workflow_holder_exercises(desk: Desk) -> None:
    opened = desk.open()
    assert opened.status_code == 201, opened.text
    assert opened.json()["state"] == "TRIGGERED"
    notice = desk.notify()
    assert notice.status_code == 200
    assert notice.json()["state"] == "OFFER_OPEN"
    assert notice.json()["decision"]["deadline"] == "2025-03-11T10:00:00Z"
    gate = desk.call(
        "POST", "/requests/cr-1/gate", "owner", {"party": "cloud_x", "at": "2025-03-02T00:00:00Z"}
    )
    assert gate.json()["decision"]["gate"] == "BLOCK"
    assert gate.json()["decision"]["trace"][0]["clause"] == "rofr-new-capacity"
    accept = desk.call(
        "POST",
        "/requests/cr-1/response",
        "holder",
        {"kind": "accept", "at": "2025-03-05T00:00:00Z"},
    )
    assert accept.status_code == 200, accept.text
    assert accept.json()["state"] == "EXERCISED"
    shown = desk.call("GET", "/requests/cr-1", "admin").json()
    assert shown["outcome"] == "ALLOCATE_HOLDER"
    assert [d["state"] for d in shown["decisions"]] == [
        "INIT",
        "TRIGGERED",
        "OFFER_OPEN",
        "OFFER_OPEN",
        "EXERCISED",
    ]
    assert all(d["trace"] for d in shown["decisions"])
    listed = desk.call("GET", "/requests", "holder").json()
    assert [(r["request_id"], r["next_timer"]) for r in listed] == [("cr-1", "holder_closing")]


def test_roles_403_changes_nothing(desk: Desk) -> None:
    desk.open()
    desk.notify()
    before = desk.event_count()
    answer = {"kind": "accept", "at": "2025-03-05T00:00:00Z"}
    for who in ("owner", "admin", "tenant"):
        refused = desk.call("POST", "/requests/cr-1/response", who, answer)
        assert refused.status_code == 403, (who, refused.text)
        assert refused.json()["error"]["type"] == "permission_denied"
    notice = {"terms": TERMS, "offeror": "cloud_x", "at": "2025-03-02T00:00:00Z"}
    assert desk.call("POST", "/requests/cr-1/notice", "holder", notice).status_code == 403
    gate = {"party": "cloud_x", "at": "2025-03-02T00:00:00Z"}
    assert desk.call("POST", "/requests/cr-1/gate", "holder", gate).status_code == 403
    assert desk.call("POST", "/requests/cr-1/withdrawal", "admin", {}).status_code == 403
    opened = desk.call(
        "POST", "/requests", "holder", {"request_id": "cr-2", "category": "new_capacity"}
    )
    assert opened.status_code == 400  # microsoft owns no first-refusal request
    assert desk.event_count() == before
    assert desk.call("GET", "/requests/cr-1", "admin").json()["state"] == "OFFER_OPEN"


def test_visibility_401_and_404(desk: Desk) -> None:
    desk.open()
    assert desk.client.get("/api/rofr/requests/cr-1").status_code == 401
    assert desk.call("GET", "/requests/cr-1", "owner").status_code == 200
    assert desk.call("GET", "/requests/cr-1", "holder").status_code == 200
    hidden = desk.call("GET", "/requests/cr-1", "other")
    assert hidden.status_code == 404
    assert desk.call("GET", "/requests", "other").json() == []
    assert desk.call("GET", "/requests", "tenant").status_code == 403
    missing = desk.call("GET", "/requests/nope", "admin")
    assert missing.status_code == 404
    assert missing.json()["error"]["type"] == "not_found"
    answer = {"kind": "decline", "at": "2025-03-05T00:00:00Z"}
    assert desk.call("POST", "/requests/nope/response", "holder", answer).status_code == 404


def test_idempotency_same_key_same_answer_other_body_409(desk: Desk) -> None:
    first = desk.open()
    again = desk.open()
    assert again.status_code == 201
    assert again.json()["replayed"] is True
    assert {k: v for k, v in again.json().items() if k != "replayed"} == first.json()
    count = desk.event_count()
    other = desk.call(
        "POST",
        "/requests",
        "owner",
        {"request_id": "cr-9", "category": "new_capacity", "at": "2025-03-01T09:00:00Z"},
        key="open-cr-1",
    )
    assert other.status_code == 409
    assert "idempotency key" in other.json()["error"]["message"]
    notice = desk.notify()
    assert desk.notify().json()["decision"] == notice.json()["decision"]
    assert desk.event_count() == count + 1
    dup = desk.call(
        "POST",
        "/requests",
        "owner",
        {"request_id": "cr-1", "category": "new_capacity", "at": "2025-03-01T09:00:00Z"},
        key="another-key",
    )
    assert dup.status_code == 409


def test_out_of_order_is_refused_and_writes_nothing(desk: Desk) -> None:
    desk.open()
    desk.notify(at="2025-03-02T00:00:00Z")
    count = desk.event_count()
    late = desk.call(
        "POST",
        "/requests/cr-1/response",
        "holder",
        {"kind": "accept", "at": "2025-03-01T12:00:00Z"},
    )
    assert late.status_code == 409
    assert "time order" in late.json()["error"]["message"]
    assert desk.event_count() == count


def test_timer_fires_before_a_later_command(desk: Desk) -> None:
    desk.open()
    desk.notify()
    late = desk.call(
        "POST",
        "/requests/cr-1/response",
        "holder",
        {"kind": "accept", "at": "2025-03-20T00:00:00Z"},
    )
    assert late.status_code == 200
    body = late.json()
    assert [d["via"] for d in body["timers_fired"]] == ["timer_exercise_expired"]
    assert body["state"] == "RELEASED"
    assert body["decision"]["note"].startswith("LATE_RESPONSE_IGNORED")
    gate = desk.call(
        "POST",
        "/requests/cr-1/gate",
        "owner",
        {"party": "cloud_x", "terms": TERMS, "at": "2025-03-21T00:00:00Z"},
    ).json()
    assert gate["decision"]["gate"] == "APPROVE"
    worse = dict(TERMS, price_per_gpu_hour="2.60")
    blocked = desk.call(
        "POST",
        "/requests/cr-1/gate",
        "owner",
        {"party": "cloud_x", "terms": worse, "at": "2025-03-22T00:00:00Z"},
    ).json()
    assert blocked["decision"]["gate"] == "BLOCK"
    assert blocked["decision"]["note"].startswith("REOFFER_REQUIRED_FOR_THESE_TERMS")
    signed = desk.call(
        "POST",
        "/requests/cr-1/signatures",
        "owner",
        {"party": "cloud_x", "terms": TERMS, "at": "2025-03-23T00:00:00Z"},
    ).json()
    assert signed["state"] == "CLOSED_THIRD_PARTY"


def test_standing_instruction_answers_the_notice(desk: Desk) -> None:
    policy = {
        "instruction_id": "match-h100",
        "price_per_gpu_hour_max": "3.00",
        "gpu_types": ["H100"],
        "regions": ["us-east"],
        "quantity_gpus_max": 500,
        "at": "2025-02-01T00:00:00Z",
    }
    assert desk.call("POST", "/instructions", "owner", policy).status_code == 403
    made = desk.call("POST", "/instructions", "holder", policy)
    assert made.status_code == 201 and made.json()["holder"] == "microsoft"
    assert desk.call("POST", "/instructions", "holder", policy).status_code == 201
    changed = dict(policy, quantity_gpus_max=600)
    assert desk.call("POST", "/instructions", "holder", changed).status_code == 409
    desk.open()
    notice = desk.notify().json()
    assert notice["state"] == "PARTIALLY_EXERCISED"
    auto = notice["decisions"][-1]
    assert auto["holder_quantity"] == 500
    assert auto["trace"][0]["clause"] == "standing-instruction:match-h100"
    shown = desk.call("GET", "/requests/cr-1", "owner").json()
    assert shown["events"][-1]["actor"] == "instruction:match-h100"
    assert [i["instruction_id"] for i in desk.call("GET", "/instructions", "holder").json()] == [
        "match-h100"
    ]


def test_openapi_lists_the_desk(desk: Desk) -> None:
    paths = desk.client.get("/openapi.json").json()["paths"]
    for path in (
        "/api/rofr/requests",
        "/api/rofr/requests/{request_id}",
        "/api/rofr/requests/{request_id}/notice",
        "/api/rofr/requests/{request_id}/response",
        "/api/rofr/requests/{request_id}/gate",
        "/api/rofr/requests/{request_id}/signatures",
        "/api/rofr/requests/{request_id}/withdrawal",
        "/api/rofr/instructions",
    ):
        assert path in paths, path


def test_bad_bodies_are_422_with_paths(desk: Desk) -> None:
    bad = desk.call("POST", "/requests", "owner", {"request_id": "cr-1", "category": 5})
    assert bad.status_code == 422
    assert "category" in bad.json()["error"]["message"]
    desk.open()
    floaty = {"terms": dict(TERMS, price_per_gpu_hour=2.5), "offeror": "cloud_x"}
    assert desk.call("POST", "/requests/cr-1/notice", "owner", floaty).status_code == 422
