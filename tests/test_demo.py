"""``firstright demo --no-serve``: runs end to end on a fresh database, twice, and its printed
summary equals what the admin API returns for the same database — placements, traffic through
the gateway and money."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from fastapi.testclient import TestClient

from firstright.adapters.db import open_engine
from firstright.adapters.usage_store import usage_records
from firstright.api.app import AdminSettings, create_admin_app
from firstright.cli.main import cli
from firstright.services.auth import create_key


def run_demo_json(url: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["demo", "--no-serve", "--json", "--database", url])
    assert result.exit_code == 0, result.output + (result.stderr or "")
    data: dict[str, Any] = orjson.loads(result.stdout)
    return data


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    path: Path = tmp_path_factory.mktemp("demo") / "demo.db"
    url = f"sqlite:///{path}"
    run_demo_json(url)  # the first run; the second must replace, not duplicate, its rows
    return url, run_demo_json(url)


@pytest.fixture(scope="module")
def api(demo_db: tuple[str, dict[str, Any]]) -> TestClient:
    url, summary = demo_db
    app = create_admin_app(open_engine(url), settings=AdminSettings(scheduler_enabled=False))
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {summary['admin_key']}"
    return client


def test_contract_versions_over_time(demo_db: tuple[str, dict[str, Any]]) -> None:
    _, summary = demo_db
    versions = [span["version"] for span in summary["contracts"]]
    assert versions == ["2019", "2024-06", "2025-01-21", "2025-10-28", "2026-04-27"]
    assert summary["contracts"][-1]["effective_until"] is None
    for earlier, later in zip(summary["contracts"], summary["contracts"][1:], strict=False):
        assert earlier["effective_until"] == later["effective_from"]


def test_capacity_follows_the_deals(demo_db: tuple[str, dict[str, Any]]) -> None:
    _, summary = demo_db
    by_id = {row["request_id"]: row for row in summary["capacity"]["requests"]}
    assert by_id["train-2019-gpt3"]["provider"] == "azure"  # exclusivity of 2019
    assert by_id["capacity-2024-oracle"]["provider"] == "oci"  # the 2024 exception
    for request_id, cloud in [
        ("capacity-2025-03-coreweave", "coreweave"),
        ("capacity-2025-05-google", "gcp"),
    ]:
        row = by_id[request_id]
        assert row["provider"] == cloud
        assert row["first_refusal"] is True
        assert "rofr-new-capacity" in row["clause_ids"]
    assert "research-training-carve-out" in by_id["research-2025-06-own-build"]["why"]
    aws = by_id["capacity-2025-11-aws"]
    assert aws["provider"] == "aws" and aws["first_refusal"] is False
    assert aws["contract"] == "msft-openai@2025-10-28"
    assert by_id["api-2025-11"]["provider"] == "azure"  # the API stays on Azure
    desk = {run["request_id"]: run for run in summary["desk"]}
    assert set(desk) == {
        "demo-capacity-2025-03-coreweave",
        "demo-capacity-2025-05-google",
        "demo-capacity-2025-09-oracle",
    }
    assert all(run["gate"] == "APPROVE" for run in desk.values())
    assert all(run["holder_response"].startswith("RELEASED") for run in desk.values())


def test_summary_equals_the_api(demo_db: tuple[str, dict[str, Any]], api: TestClient) -> None:
    _, summary = demo_db
    response = api.get("/api/placements/summary")
    assert response.status_code == 200, response.text
    assert response.json() == summary["capacity"]
    listed = api.get("/api/placements", params={"limit": 1000}).json()
    assert listed["count"] == len(summary["capacity"]["requests"]) == 13


def test_party_sees_only_its_rows(demo_db: tuple[str, dict[str, Any]]) -> None:
    url, _ = demo_db
    engine = open_engine(url)
    google = create_key(engine, party="google", role="party", created_at=datetime.now(UTC))
    app = create_admin_app(engine, settings=AdminSettings(scheduler_enabled=False))
    client = TestClient(app)
    client.headers["Authorization"] = f"Bearer {google.secret}"
    summary = client.get("/api/placements/summary").json()
    # Google sees the placement it won and nothing else.
    assert [row["request_id"] for row in summary["requests"]] == ["capacity-2025-05-google"]
    hidden = client.get("/api/placements/demo:capacity-2025-03-coreweave")
    assert hidden.status_code == 404
    assert client.get("/api/placements/demo:capacity-2025-05-google").json()["answer"]["trace"]


def test_money_equals_the_ledger_api(demo_db: tuple[str, dict[str, Any]], api: TestClient) -> None:
    _, summary = demo_db
    periods = summary["settlement"]["periods"]
    assert [p["period"] for p in periods][:2] == ["2025-Q1", "2025-Q2"]
    for period in periods:
        statements = api.get("/api/ledger/statements", params={"period": period["period"]})
        assert statements.status_code == 200, statements.text
        nets = {
            (s["net"]["payer"], s["net"]["payee"]): s["net"]["amount_micros"]
            for s in statements.json()["statements"]
            if s["net"]["payer"] is not None
        }
        assert nets == {(n["payer"], n["payee"]): n["amount_micros"] for n in period["net"]}
    # Revenue shares flow both ways in 2025 and only to Microsoft after April 2026.
    first = {(f["payer"], f["payee"]) for f in periods[0]["flows"] if f["kind"] == "REV_SHARE"}
    assert first == {("openai", "microsoft"), ("microsoft", "openai")}
    burn = {c["commitment"]: c for c in summary["settlement"]["commitments"]}
    jan = burn["msft-openai#azure-commitment"]
    assert jan["amount_micros"] == 50_000_000_000 * 1_000_000
    assert jan["points"][-1]["remaining_micros"] == (
        jan["amount_micros"] - jan["points"][-1]["cumulative_micros"]
    )
    assert all(run["entries_posted"] == 0 for run in summary["settlement_runs"])  # second run


def test_traffic_equals_the_api(demo_db: tuple[str, dict[str, Any]], api: TestClient) -> None:
    _, summary = demo_db
    response = api.get("/api/traffic")
    assert response.status_code == 200, response.text
    assert response.json() == summary["traffic"]
    run = summary["traffic_run"]
    # The second run replaced the first run's records: one record per request sent.
    assert summary["traffic"]["requests"] == run["sent"] == run["stored"] == 480
    assert run["answered"] == {"200": 480} and run["failed"] == 0
    assert summary["traffic"]["amount_micros"] == sum(
        row["amount_micros"] for row in summary["traffic"]["by_backend"]
    )
    assert summary["traffic"]["amount_micros"] > 0
    copilot = api.get("/api/traffic", params={"tenant": "demo-copilot"}).json()
    assert copilot["requests"] == sum(
        r["requests"] for r in summary["traffic"]["by_backend"] if r["tenant"] == "demo-copilot"
    )
    assert {r["tenant"] for r in copilot["by_backend"]} == {"demo-copilot"}


def test_traffic_refusals_are_recorded_with_reasons(demo_db: tuple[str, dict[str, Any]]) -> None:
    _, summary = demo_db
    refusals = {(r["backend"], r["reason"]): r["count"] for r in summary["traffic"]["refusals"]}
    assert refusals, "no refusal recorded"
    assert set(reason for _, reason in refusals) <= {
        "in_flight_max",
        "deadline",
        "price_over_cap",
        "tokens_per_minute",
    }
    # Microsoft's Swedish backend is priced over rofr-new-capacity's match_price_cap: it refuses
    # every ChatGPT request on new capacity that the holder's East US backend could not take.
    assert refusals[("azure-sweden", "price_over_cap")] > 0
    rows = {(r["tenant"], r["backend"]): r for r in summary["traffic"]["by_backend"]}
    spilled = rows[("demo-chatgpt", "openai-direct")]
    assert spilled["requests"] == spilled["after_refusal"] > 0
    assert rows[("demo-chatgpt", "azure-eastus")]["after_refusal"] == 0
    # Copilot goes to the cheaper MAI model first and to GPT-4o on Azure when MAI refuses.
    assert rows[("demo-copilot", "azure-mai")]["vendor"] == "microsoft"
    assert rows[("demo-copilot", "azure-mai")]["after_refusal"] == 0
    assert any(backend == "azure-mai" for backend, _ in refusals)
    copilot_vendors = {r["vendor"] for (tenant, _), r in rows.items() if tenant == "demo-copilot"}
    assert copilot_vendors == {"microsoft", "openai"}
    assert all(r["operator"] == "microsoft" for (t, _), r in rows.items() if t == "demo-copilot")


def test_openai_api_traffic_only_on_azure(demo_db: tuple[str, dict[str, Any]]) -> None:
    url, summary = demo_db
    api_rows = [r for r in summary["traffic"]["by_backend"] if r["tenant"] == "demo-openai-api"]
    assert sum(r["requests"] for r in api_rows) == 180
    engine = open_engine(url)
    c = usage_records.c
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(c.provider, c.operator, c.backend, c.clause_ids, c.status).where(
                c.source == "gateway", c.tenant == "demo-openai-api"
            )
        ).all()
    assert len(rows) == 180
    for row in rows:
        assert (row.provider, row.operator, row.status) == ("azure", "microsoft", 200), row
        assert row.backend.startswith("azure-")
        assert "api-channels-azure" in orjson.loads(row.clause_ids)


def test_traffic_settlement_is_stated(demo_db: tuple[str, dict[str, Any]]) -> None:
    _, summary = demo_db
    run = summary["traffic_run"]
    assert run["contract_version"] == "msft-openai@2025-01-21"
    settled_quarters = [p["period"] for p in run_periods(summary)]
    assert run["settled"] == (run["quarter"] in settled_quarters)
    assert run["quarter"] in run["settlement_note"]
    first, last = summary["traffic"]["first_at"], summary["traffic"]["last_at"]
    assert run["started_at"] <= first <= last <= run["finished_at"]


def run_periods(summary: dict[str, Any]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = summary["settlement_runs"]
    return runs
