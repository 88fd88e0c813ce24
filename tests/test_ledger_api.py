"""The ledger over HTTP: keys (401), who sees what (403), pagination, bad periods, settling."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.engine import Engine

from firstright.adapters.db import migrate, open_engine
from firstright.adapters.ledger_store import LedgerStore
from firstright.api.app import AdminSettings, create_admin_app
from firstright.limits import LEDGER_PAGE_SIZE_MAX
from firstright.services.auth import create_key
from test_settlement_service import FIXTURES, NOW, seed

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@dataclass
class Api:
    client: TestClient
    keys: dict[str, str]
    engine: Engine

    def get(self, path: str, who: str | None, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[who]}"} if who else {}
        return self.client.get(f"/api/ledger{path}", params=params, headers=headers)

    def settle(self, who: str, body: dict[str, Any]) -> Any:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        return self.client.post("/api/ledger/settlements", json=body, headers=headers)


def build(url: str) -> Iterator[Api]:
    engine = open_engine(url)
    migrate(engine)
    seed(engine)
    keys = {
        who: create_key(engine, party=party, role=role, created_at=T0).secret
        for who, party, role in (
            ("admin", "ops", "admin"),
            ("lab", "lab", "party"),
            ("cloud", "bigcloud", "party"),
            ("other", "outsider", "party"),
            ("tenant", "lab", "tenant"),
        )
    }
    settings = AdminSettings(
        scheduler_enabled=False,
        clock=lambda: NOW,
        extra={"settlement_contracts": str(FIXTURES / "contracts")},
    )
    with TestClient(create_admin_app(engine, settings=settings)) as client:
        yield Api(client, keys, engine)
    engine.dispose()


@pytest.fixture
def api(sqlite_url: str) -> Iterator[Api]:
    yield from build(sqlite_url)


@pytest.fixture
def settled(api: Api) -> Api:
    done = api.settle("admin", {"period": "2025-Q1"})
    assert done.status_code == 200, done.text
    assert done.json()["entries_posted"] > 0
    return api


def test_every_route_needs_a_key(api: Api) -> None:
    for path, params in (
        ("/statements", {"period": "2025-Q1"}),
        ("/statements/2025-Q1/bigcloud/lab", {}),
        ("/balances", {}),
        ("/entries", {}),
    ):
        missing = api.get(path, None, **params)
        assert missing.status_code == 401, path
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        bad = api.client.get(
            f"/api/ledger{path}", params=params, headers={"Authorization": "Bearer frk_nope"}
        )
        assert bad.status_code == 401
        assert bad.json()["error"]["message"] == "unknown API key"
    unsigned = api.client.post("/api/ledger/settlements", json={"period": "2025-Q1"})
    assert unsigned.status_code == 401


def test_settle_is_admin_only_and_idempotent(api: Api) -> None:
    for who in ("lab", "cloud", "tenant"):
        refused = api.settle(who, {"period": "2025-Q1"})
        assert refused.status_code == 403, who
        assert refused.json()["error"]["type"] == "permission_denied"
    assert LedgerStore(api.engine).count_entries() == 0
    first = api.settle("admin", {"period": "2025-Q1"})
    assert first.status_code == 200, first.text
    assert first.json()["entries_posted"] > 0
    again = api.settle("admin", {"period": "2025-Q1"})
    assert again.status_code == 200
    assert again.json()["entries_posted"] == 0
    assert again.json()["statements"] == first.json()["statements"]


def test_statements_match_the_settlement(settled: Api) -> None:
    expected = json.loads((FIXTURES / "expected_statements_2025_Q1.json").read_text())
    for who in ("admin", "lab", "cloud"):
        listed = settled.get("/statements", who, period="2025-Q1")
        assert listed.status_code == 200, listed.text
        assert listed.json()["statements"] == expected, who
        assert listed.json()["months"] == ["2025-01", "2025-02", "2025-03"]
    for who, a, b in (
        ("lab", "lab", "bigcloud"),
        ("cloud", "bigcloud", "lab"),
        ("admin", "lab", "bigcloud"),
    ):
        pair = settled.get(f"/statements/2025-Q1/{a}/{b}", who)
        assert pair.status_code == 200, pair.text
        assert pair.json()["parties"] == ["bigcloud", "lab"]
        assert pair.json()["statements"] == expected
    month = settled.get("/statements/2025-02/lab/bigcloud", "lab").json()["statements"]
    assert month and all(line["period"] == "2025-02" for line in month[0]["lines"])


def test_a_party_sees_only_its_own_pairs(settled: Api) -> None:
    assert settled.get("/statements", "other", period="2025-Q1").json()["statements"] == []
    refused = settled.get("/statements/2025-Q1/bigcloud/lab", "other")
    assert refused.status_code == 403
    assert "not a party to the statement" in refused.json()["error"]["message"]
    for path in ("/entries", "/balances"):
        assert settled.get(path, "lab", party="bigcloud").status_code == 403
        assert settled.get(path, "other").json().get("entries", []) == []
        assert settled.get(path, "tenant").status_code == 403
    assert settled.get("/statements", "tenant", period="2025-Q1").status_code == 403
    assert settled.get("/entries", "other").json()["total"] == 0
    assert settled.get("/balances", "other").json()["balances"] == []
    own = settled.get("/entries", "lab", limit=LEDGER_PAGE_SIZE_MAX).json()
    assert own["total"] > 0
    assert all("lab" in (e["payer"], e["payee"]) for e in own["entries"])
    assert settled.get("/entries", "admin", party="lab").json()["total"] == own["total"]


def test_entries_paginate_with_a_total(settled: Api) -> None:
    everything = settled.get("/entries", "admin", limit=LEDGER_PAGE_SIZE_MAX).json()
    total = everything["total"]
    assert total == len(everything["entries"]) == LedgerStore(settled.engine).count_entries()
    assert total >= 5
    pages: list[str] = []
    for offset in range(0, total, 2):
        page = settled.get("/entries", "admin", limit=2, offset=offset).json()
        assert page["total"] == total
        assert (page["limit"], page["offset"]) == (2, offset)
        assert len(page["entries"]) == min(2, total - offset)
        pages.extend(e["entry_id"] for e in page["entries"])
    assert pages == [e["entry_id"] for e in everything["entries"]]
    assert len(set(pages)) == total
    beyond = settled.get("/entries", "admin", offset=total + 10).json()
    assert beyond == {"total": total, "limit": 100, "offset": total + 10, "entries": []}
    march = settled.get("/entries", "admin", period="2025-03").json()
    assert all(e["period"] == "2025-03" for e in march["entries"])
    for entry in everything["entries"]:
        assert sum(p["amount_micros"] for p in entry["postings"]) == 0


def test_page_size_and_offset_are_limited(settled: Api) -> None:
    too_big = settled.get("/entries", "admin", limit=LEDGER_PAGE_SIZE_MAX + 1)
    assert too_big.status_code == 422
    assert "limit" in too_big.json()["error"]["message"]
    assert str(LEDGER_PAGE_SIZE_MAX) in too_big.json()["error"]["message"]
    assert settled.get("/entries", "admin", limit=0).status_code == 422
    assert settled.get("/entries", "admin", offset=-1).status_code == 422
    assert settled.get("/entries", "admin", limit="many").status_code == 422


@pytest.mark.parametrize("period", ["2025-13", "2025-Q5", "Q1-2025", "march", "0999-01"])
def test_bad_periods_are_refused_clearly(settled: Api, period: str) -> None:
    for path in ("/statements", "/entries", "/balances", f"/statements/{period}/bigcloud/lab"):
        params = {} if path.count("/") > 1 else {"period": period}
        answer = settled.get(path, "admin", **params)
        assert answer.status_code == 400, (path, answer.text)
        message = answer.json()["error"]["message"]
        assert period in message
        assert "YYYY-MM" in message or "year must be" in message
    posted = settled.settle("admin", {"period": period})
    assert posted.status_code == 400
    assert period in posted.json()["error"]["message"]


def test_missing_or_malformed_parameters_are_422(settled: Api) -> None:
    missing = settled.get("/statements", "admin")
    assert missing.status_code == 422
    assert "period" in missing.json()["error"]["message"]
    too_long = settled.get("/statements", "admin", period="2025-01" * 5)
    assert too_long.status_code == 422
    extra = settled.settle("admin", {"period": "2025-Q1", "force": True})
    assert extra.status_code == 422
    assert "force" in extra.json()["error"]["message"]
    negative = settled.settle("admin", {"period": "2025-Q1", "close_after_days": -1})
    assert negative.status_code == 422


def test_balances_through_a_period_are_balanced(settled: Api) -> None:
    everything = settled.get("/balances", "admin", period="2025-Q1").json()
    assert everything["through_month"] == "2025-03"
    assert everything["balances"]
    assert sum(b["amount_micros"] for b in everything["balances"]) == 0
    january = settled.get("/balances", "admin", period="2025-01").json()["balances"]
    assert sum(abs(b["amount_micros"]) for b in january) <= sum(
        abs(b["amount_micros"]) for b in everything["balances"]
    )
    lab = settled.get("/balances", "lab").json()
    assert lab["party"] == "lab"
    assert sum(b["amount_micros"] for b in lab["balances"]) == 0
    assert any(":Lab:" in b["account"] or b["account"].endswith(":Lab") for b in lab["balances"])


def test_close_after_days_closes_months(settled: Api) -> None:
    closed = settled.settle("admin", {"period": "2025-Q1", "close_after_days": 5})
    assert closed.status_code == 200
    assert closed.json()["closed_now"] == ["2025-02", "2025-03"]  # no entries in January
    again = settled.settle("admin", {"period": "2025-Q1"})
    assert again.json()["already_closed"] is True
    assert again.json()["entries_posted"] == 0


def test_same_statements_over_http_on_sqlite_and_postgres(database_url: str) -> None:
    for api in build(database_url):
        assert api.settle("admin", {"period": "2025-Q1"}).status_code == 200
        body = api.get("/statements", "lab", period="2025-Q1").content
        expected = json.loads((FIXTURES / "expected_statements_2025_Q1.json").read_text())
        assert json.loads(body)["statements"] == expected
