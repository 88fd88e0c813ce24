"""From placement to desk: a placement under msft-openai@2025-01-21 that owes Microsoft a first
refusal opens a desk request with the catalog terms; the final placement follows the holder's
standing instruction (decline → the third party, match → Azure)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from firstright.adapters.db import open_engine
from firstright.cli.main import cli
from firstright.domain.placement.answer import PlacementAnswer, rate
from firstright.domain.placement.request import PlacementRequest
from firstright.errors import Forbidden, InputError, NotFound
from firstright.examples import default_contracts_dir
from firstright.services.auth import Principal
from firstright.services.contract_loader import load_contracts
from firstright.services.placement import place_requests
from firstright.services.rofr_desk import RofrDesk
from firstright.services.rofr_from_placement import NOTICE_DEFAULTS, final_placement
from firstright.services.rofr_wire import InstructionBody, OpenBody

AT = datetime(2025, 3, 10, tzinfo=UTC)
CONTRACTS = load_contracts([str(default_contracts_dir())])


def placed(**changes: object) -> PlacementAnswer:
    fields: dict[str, object] = {
        "id": "cap-2025-03",
        "at": AT,
        "party": "openai",
        "workload": "new_capacity",
        "accelerator": "H100",
        "count": 8,
        "num_nodes": 64,
        "hours": Decimal(730),
        "clouds": ["gcp", "aws", "oci", "lambda"],
    }
    fields.update(changes)
    [answer] = place_requests([PlacementRequest.model_validate(fields)], contracts=CONTRACTS)
    return answer


@pytest.fixture(scope="module")
def answer() -> PlacementAnswer:
    found = placed()
    assert found.first_refusal is not None and found.choice is not None
    assert found.first_refusal.contract == "msft-openai@2025-01-21"
    assert found.first_refusal.holder_best is not None
    return found


@pytest.fixture
def desk(database_url: str) -> Iterator[RofrDesk]:
    engine = open_engine(database_url)
    yield RofrDesk(engine, list(CONTRACTS))
    engine.dispose()


def instruct(desk: RofrDesk, price_max: str) -> None:
    desk.add_instruction(
        None,
        "microsoft",
        InstructionBody(
            instruction_id=f"h100-at-{price_max}",
            price_per_gpu_hour_max=Decimal(price_max),
            gpu_types=["H100"],
            quantity_gpus_max=100_000,
        ),
        at=AT - timedelta(days=1),
    )


def test_opens_with_the_catalog_terms_and_waits_for_the_holder(
    desk: RofrDesk, answer: PlacementAnswer
) -> None:
    assert answer.first_refusal is not None and answer.choice is not None
    terms = answer.first_refusal.terms
    opened = desk.open_from_placement(None, answer, at=AT)
    assert opened["state"] == "OFFER_OPEN"
    assert opened["request_id"] == "cap-2025-03"
    expected = {
        "quantity_gpus": 512,
        "gpu_type": "H100",
        "region": answer.choice.offer.region,
        "start_date": "2025-03-10",
        "commit_months": terms.commit_months,
        "price_per_gpu_hour": rate(terms.price_per_gpu_hour),
        **NOTICE_DEFAULTS,
    }
    assert opened["notice_terms"] == expected
    shown = desk.show(None, "cap-2025-03")
    types = [e["type"] for e in shown["events"]]
    assert types == ["capacity_request", "tp_offer_received", "notice_delivered"]
    offer = shown["events"][1]["body"]
    assert offer["party"] == opened["offeror"] == answer.choice.offer.provider
    assert offer["terms"] == expected
    notice = shown["decisions"][2]
    assert notice["state"] == "OFFER_OPEN" and notice["cycle"] == 1
    defaults = notice["trace"][0]
    assert defaults["clause"] == "placement-notice-defaults"
    assert defaults["inputs"]["sla_pct"] == "99.5" and "offer_documents" in defaults["reason"]
    assert shown["decisions"][0]["trace"][0]["clause"] == "placement"
    final = final_placement(desk, "cap-2025-03")
    assert final.status == "pending" and final.outcome == "PENDING"
    assert final.deadline == "2025-03-20T00:00:00Z"
    assert opened["final"] == final.to_json()
    # Same call again: the stored answer, nothing new written.
    again = desk.open_from_placement(None, answer, at=AT)
    assert again["state"] == "OFFER_OPEN"
    assert len(desk.show(None, "cap-2025-03")["events"]) == 3


def test_declining_instruction_leaves_the_third_party(
    desk: RofrDesk, answer: PlacementAnswer
) -> None:
    assert answer.choice is not None
    instruct(desk, "0.50")
    opened = desk.open_from_placement(None, answer, at=AT)
    assert opened["state"] == "RELEASED"
    final = final_placement(desk, "cap-2025-03")
    assert final.outcome == "ALLOCATE_THIRD_PARTY" and final.status == "allocated"
    [line] = final.allocations
    assert (line.provider, line.region, line.quantity_gpus) == (
        answer.choice.offer.provider,
        answer.choice.offer.region,
        512,
    )
    assert final.deadline == "2025-06-08T00:00:00Z"  # the release window (90 days)


def test_matching_instruction_moves_the_capacity_to_azure(
    desk: RofrDesk, answer: PlacementAnswer
) -> None:
    assert answer.first_refusal is not None and answer.first_refusal.holder_best is not None
    instruct(desk, "50.00")
    opened = desk.open_from_placement(None, answer, at=AT)
    assert opened["state"] == "EXERCISED"
    final = final_placement(desk, "cap-2025-03")
    assert final.outcome == "ALLOCATE_HOLDER"
    [line] = final.allocations
    best = answer.first_refusal.holder_best.offer
    assert (line.party, line.provider, line.region, line.instance_type) == (
        "microsoft",
        "azure",
        best.region,
        best.instance_type,
    )
    assert line.quantity_gpus == 512


def test_refusals_write_nothing(sqlite_url: str, answer: PlacementAnswer) -> None:
    desk = RofrDesk(open_engine(sqlite_url), list(CONTRACTS))
    stranger = Principal(party="anthropic", role="party", key_id="k1", channel=None, product=None)
    with pytest.raises(Forbidden):
        desk.open_from_placement(stranger, answer, at=AT)
    on_azure = placed(id="on-azure", clouds=None)
    assert on_azure.first_refusal is None
    with pytest.raises(InputError, match="no first refusal is owed"):
        desk.open_from_placement(None, on_azure, at=AT)
    with pytest.raises(InputError, match="no first_refusal clause in force at 2025-11-01"):
        desk.open_from_placement(None, answer, at=datetime(2025, 11, 1, tzinfo=UTC))
    assert desk.list_requests(None, open_only=False) == []
    desk.open(None, OpenBody(request_id="plain", category="new_capacity"), key="p", at=AT)
    with pytest.raises(NotFound, match="not opened from a placement"):
        final_placement(desk, "plain")


def test_cli_open_from_placement(sqlite_url: str, tmp_path: Path) -> None:
    requests = tmp_path / "requests.yaml"
    requests.write_text(
        "requests:\n"
        "  - {id: cap-h100, party: openai, workload: new_capacity, accelerator: H100,\n"
        "     count: 8, num_nodes: 64, hours: 730, clouds: [gcp, aws, oci, lambda]}\n"
        "  - {id: on-azure, party: openai, workload: new_capacity, accelerator: H100,\n"
        "     count: 8, num_nodes: 64, hours: 730}\n"
    )
    args = [
        "rofr",
        "open-from-placement",
        str(requests),
        "--contracts",
        str(default_contracts_dir()),
        "--at",
        "2025-03-10T00:00:00Z",
        "--database",
        sqlite_url,
        "--json",
    ]
    runner = CliRunner()
    first = runner.invoke(cli, args)
    assert first.exit_code == 0, first.output
    owed, free = (json.loads(line) for line in first.output.splitlines())
    assert owed["desk"]["state"] == "OFFER_OPEN" and owed["final"]["status"] == "pending"
    assert free["desk"] is None and free["final"]["allocations"][0]["provider"] == "azure"
    again = runner.invoke(cli, args)  # idempotent: same answer, nothing new
    assert again.exit_code == 0, again.output
    assert json.loads(again.output.splitlines()[0])["final"] == owed["final"]
    shown = runner.invoke(cli, ["rofr", "show", "cap-h100", "--database", sqlite_url, "--json"])
    assert len(json.loads(shown.output)["events"]) == 3
    human = runner.invoke(cli, args[:-1])
    assert "cap-h100: pending (PENDING)" in human.output
    assert "on-azure: allocated (NO_FIRST_REFUSAL)" in human.output
