"""API exclusivity (with its exceptions) and ship-first (with its escape) on the desk: the
placement and launch gates, the contract gate for a named workload, over the service and HTTP;
and ``POST /api/rofr/from-placement``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from firstright.adapters.db import open_engine
from firstright.api.app import AdminSettings, create_admin_app
from firstright.domain.contracts.model import Contract
from firstright.examples import default_contracts_dir
from firstright.services.auth import create_key
from firstright.services.contract_loader import load_contracts
from firstright.services.rofr_clauses import api_exclusivity_of, ship_first_of
from firstright.services.rofr_desk import RofrDesk
from firstright.services.rofr_wire import (
    CapabilityBody,
    GateBody,
    LaunchGateBody,
    NoticeBody,
    OfferBody,
    OpenBody,
    PlacementGateBody,
    ResponseBody,
)

CONTRACT = Path(__file__).parent / "data" / "rofr_desk_gates_contract.yaml"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
TERMS = {
    "quantity_gpus": 1000,
    "gpu_type": "H100",
    "region": "us-east",
    "price_per_gpu_hour": "2.5",
}


@pytest.fixture
def desk(sqlite_url: str) -> Iterator[RofrDesk]:
    engine = open_engine(sqlite_url)
    desk = RofrDesk(engine, list(load_contracts([str(CONTRACT)])))
    desk.open(
        None,
        OpenBody(
            request_id="cr-1",
            category="new_capacity",
            quantity_gpus=1000,
            offer=OfferBody(party="google", terms=TERMS),
        ),
        key="open",
        at=T0,
    )
    yield desk
    engine.dispose()


def tick(n: int) -> datetime:
    return T0 + timedelta(hours=n)


def placement(desk: RofrDesk, n: int, **body: Any) -> dict[str, Any]:
    answer = desk.placement_gate(
        None, "cr-1", PlacementGateBody.model_validate(body), key=f"p{n}", at=tick(n)
    )
    decision: dict[str, Any] = answer["decision"]
    return decision


def test_api_exclusivity_with_its_exception_decides_placements(desk: RofrDesk) -> None:
    blocked = placement(desk, 1, party="gcp", workload="api_serving")
    assert blocked["gate"] == "BLOCK"
    assert [s["clause"] for s in blocked["trace"]][-1] == "api-exclusive-azure"
    assert "until agi_verified_by_panel" in blocked["trace"][-1]["reason"]
    assert placement(desk, 2, party="azure", workload="api_serving")["gate"] == "APPROVE"
    excepted = placement(
        desk, 3, party="gcp", workload="api_serving", customer_segment="us_gov_national_security"
    )
    assert excepted["gate"] == "APPROVE"
    assert "exception us_gov_national_security" in excepted["trace"][-1]["reason"]
    free = placement(desk, 4, party="gcp", workload="training")
    assert free["gate"] == "APPROVE" and "no clause restricts" in free["reason"]
    # The first-refusal state is untouched by these gates.
    assert desk.show(None, "cr-1")["state"] == "TRIGGERED"


def test_contract_gate_for_an_exclusive_workload_is_blocked_even_when_released(
    desk: RofrDesk,
) -> None:
    desk.notify(None, "cr-1", NoticeBody(terms=TERMS, offeror="google"), key="n", at=tick(1))
    desk.respond(None, "cr-1", ResponseBody(kind="decline"), key="r", at=tick(2))
    api = desk.gate(
        None, "cr-1", GateBody(party="google", workload="api_serving"), key="g1", at=tick(3)
    )
    assert api["decision"]["gate"] == "BLOCK"
    assert "blocked by api-exclusive-azure" in api["decision"]["reason"]
    training = desk.gate(
        None, "cr-1", GateBody(party="google", workload="training"), key="g2", at=tick(4)
    )
    assert training["decision"]["gate"] == "APPROVE"


def test_ship_first_and_its_conjunctive_escape_decide_launches(desk: RofrDesk) -> None:
    def launch(n: int, party: str, **extra: Any) -> str:
        body = LaunchGateBody.model_validate({"party": party, "product": "sora", **extra})
        gate: str = desk.launch_gate(None, "cr-1", body, key=f"l{n}", at=tick(n))["decision"][
            "gate"
        ]
        return gate

    def capability(n: int, can: bool, chooses: bool) -> None:
        body = CapabilityBody(can_support=can, chooses_to_support=chooses)
        desk.capability(None, "cr-1", body, key=f"c{n}", at=tick(n))

    assert launch(1, "gcp") == "BLOCK"  # no capability answer from the holder yet
    assert launch(2, "azure") == "APPROVE"
    assert launch(3, "gcp", first_launch=False) == "APPROVE"
    capability(4, can=False, chooses=True)
    assert launch(5, "gcp") == "BLOCK"  # cannot, but chooses to: the AND escape is not met
    capability(6, can=False, chooses=False)
    shown = desk.launch_gate(None, "cr-1", LaunchGateBody(party="gcp"), key="l7", at=tick(7))[
        "decision"
    ]
    assert shown["gate"] == "APPROVE"
    step = shown["trace"][-1]
    assert step["clause"] == "ship-first-azure"
    assert step["inputs"]["escape_parse"] == "conjunctive"


def test_clause_mapping_from_the_example_contracts() -> None:
    contracts = {c.key: c for c in load_contracts([str(default_contracts_dir())])}
    jan: Contract = contracts["msft-openai@2025-01-21"]
    oct_: Contract = contracts["msft-openai@2025-10-28"]
    apr: Contract = contracts["msft-openai@2026-04-27"]
    parties = {"owner": "openai", "holder": "microsoft"}
    at = datetime(2025, 11, 1, tzinfo=UTC)
    api = api_exclusivity_of(jan, at=datetime(2025, 3, 1, tzinfo=UTC), **parties)
    assert api is not None
    assert (api.clause_id, api.platform, api.workloads, api.exceptions) == (
        "api-exclusive-azure",
        "azure",
        frozenset({"api_serving"}),
        frozenset(),
    )
    later = api_exclusivity_of(oct_, at=at, **parties)
    assert later is not None and "us_gov_national_security" in later.exceptions
    assert later.until_event == "agi_verified_by_panel"
    ship = ship_first_of(apr, at=datetime(2026, 5, 1, tzinfo=UTC), **parties)
    assert ship is not None and ship.platform == "azure"
    assert ship_first_of(jan, at=at, **parties) is None
    assert api_exclusivity_of(jan, at=at, owner="openai", holder="amazon") is None


@pytest.fixture
def http(sqlite_url: str) -> Iterator[tuple[TestClient, dict[str, str]]]:
    engine = open_engine(sqlite_url)
    keys = {
        who: create_key(engine, party=party, role="party", created_at=T0).secret
        for who, party in (("owner", "openai"), ("holder", "microsoft"), ("other", "anthropic"))
    }
    settings = AdminSettings(rofr_contract_path=CONTRACT, scheduler_enabled=False, clock=lambda: T0)
    with TestClient(create_admin_app(engine, settings=settings)) as client:
        yield client, {who: f"Bearer {secret}" for who, secret in keys.items()}
    engine.dispose()


def test_gates_over_http_with_roles(http: tuple[TestClient, dict[str, str]]) -> None:
    client, auth = http
    opened = client.post(
        "/api/rofr/requests",
        json={"request_id": "cr-1", "category": "new_capacity", "quantity_gpus": 1000},
        headers={"Authorization": auth["owner"]},
    )
    assert opened.status_code == 201, opened.text
    body = {"party": "gcp", "workload": "api_serving"}
    url = "/api/rofr/requests/cr-1/placement-gate"
    assert client.post(url, json=body, headers={"Authorization": auth["holder"]}).status_code == 403
    gate = client.post(url, json=body, headers={"Authorization": auth["owner"]})
    assert gate.status_code == 200 and gate.json()["decision"]["gate"] == "BLOCK"
    answer = {"can_support": False, "chooses_to_support": False, "at": "2025-03-01T10:00:00Z"}
    cap_url = "/api/rofr/requests/cr-1/capability"
    assert (
        client.post(cap_url, json=answer, headers={"Authorization": auth["owner"]}).status_code
        == 403
    )
    assert (
        client.post(cap_url, json=answer, headers={"Authorization": auth["holder"]}).status_code
        == 200
    )
    launch = client.post(
        "/api/rofr/requests/cr-1/launch-gate",
        json={"party": "gcp", "at": "2025-03-01T11:00:00Z"},
        headers={"Authorization": auth["owner"]},
    )
    assert launch.status_code == 200 and launch.json()["decision"]["gate"] == "APPROVE"


def test_from_placement_over_http(sqlite_url: str) -> None:
    engine = open_engine(sqlite_url)
    owner = create_key(engine, party="openai", role="party", created_at=T0).secret
    other = create_key(engine, party="anthropic", role="party", created_at=T0).secret
    settings = AdminSettings(
        rofr_contract_path=default_contracts_dir(), scheduler_enabled=False, clock=lambda: T0
    )
    request = {
        "id": "cap-h100",
        "at": "2025-03-10T00:00:00Z",
        "party": "openai",
        "workload": "new_capacity",
        "accelerator": "H100",
        "count": 8,
        "num_nodes": 64,
        "hours": "730",
        "clouds": ["gcp", "aws", "oci", "lambda"],
    }
    with TestClient(create_admin_app(engine, settings=settings)) as client:
        refused = client.post(
            "/api/rofr/from-placement",
            json={"requests": [request]},
            headers={"Authorization": f"Bearer {other}"},
        )
        assert refused.status_code == 403
        made = client.post(
            "/api/rofr/from-placement",
            json={"requests": [request, {**request, "id": "on-azure", "clouds": None}]},
            headers={"Authorization": f"Bearer {owner}"},
        )
        assert made.status_code == 201, made.text
        first, second = made.json()
        assert first["desk"]["state"] == "OFFER_OPEN"
        assert first["final"]["status"] == "pending"
        assert first["desk"]["notice_terms"]["sla_pct"] == "99.5"
        assert second["desk"] is None
        assert second["final"]["allocations"][0]["provider"] == "azure"
        shown = client.get(
            "/api/rofr/requests/cap-h100", headers={"Authorization": f"Bearer {owner}"}
        )
        assert shown.json()["state"] == "OFFER_OPEN"
    engine.dispose()
