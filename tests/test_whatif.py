"""``firstright whatif``: the demo demand under 2025-01-21 (first refusal) and 2025-10-28
(none) differs in Azure's capacity share and time to capacity, and names the clauses."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
from click.testing import CliRunner

from firstright.cli.main import cli
from firstright.examples import default_contracts_dir
from firstright.services import demo_capacity
from firstright.services.whatif import compare, load_side

CONTRACTS = default_contracts_dir()
JAN = CONTRACTS / "msft-openai-2025-01-21.yaml"
OCT = CONTRACTS / "msft-openai-2025-10-28.yaml"


def whatif_json(*args: str) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["whatif", *args, "--json"])
    assert result.exit_code == 0, result.output
    data: dict[str, Any] = orjson.loads(result.stdout)
    return data


def share(side: dict[str, Any], provider: str) -> str:
    return next((r["share_pct"] for r in side["by_cloud"] if r["provider"] == provider), "0.0")


def test_rofr_version_against_the_october_agreement() -> None:
    data = whatif_json("--contracts", str(JAN), "--vs", str(OCT))
    assert share(data["a"], "azure") != share(data["b"], "azure")
    causes = data["clauses_causing_differences"]
    assert "msft-openai@2025-01-21#rofr-new-capacity" in causes
    assert "msft-openai@2025-10-28#us-gov-national-security" in causes
    by_id = {d["request_id"]: d for d in data["differences"]}
    coreweave = by_id["capacity-2025-03-coreweave"]
    assert coreweave["a"]["days_to_capacity"] == 10  # the exercise period of the right
    assert coreweave["b"]["days_to_capacity"] == 0
    assert [c["clause_id"] for c in coreweave["caused_by"]] == ["rofr-new-capacity"]
    security = by_id["api-2025-12-national-security"]
    assert security["a"]["provider"] == "azure" and security["b"]["provider"] != "azure"
    assert {(c["side"], c["clause_id"]) for c in security["caused_by"]} >= {
        ("a", "api-exclusive-azure"),
        ("b", "us-gov-national-security"),
    }
    assert data["days_to_capacity_difference"] < 0
    # The share rows add up per side and name the same clouds on both sides.
    assert {r["provider"] for r in data["share"]} >= {"azure", "coreweave", "aws"}


def test_same_contracts_make_no_difference() -> None:
    data = whatif_json("--contracts", str(JAN), "--vs", str(JAN))
    assert data["differences"] == []
    assert Decimal(data["cost_difference_usd"]) == 0
    assert data["a"]["by_cloud"] == data["b"]["by_cloud"]


def test_directory_uses_the_version_in_force() -> None:
    requests = demo_capacity.load_demand()
    whole = load_side(CONTRACTS, requests)
    assert whole.label == CONTRACTS.name
    single = load_side(JAN, requests)
    result = compare(requests, whole, single).to_json()
    by_id = {d["request_id"]: d for d in result["differences"]}
    # In 2019 the directory's exclusivity kept training on Azure; the 2025 terms would not.
    assert by_id["train-2019-gpt3"]["a"]["provider"] == "azure"
    assert by_id["train-2019-gpt3"]["b"]["provider"] != "azure"
    assert any(
        c["clause_id"] == "compute-exclusive-azure" for c in by_id["train-2019-gpt3"]["caused_by"]
    )


def test_commitments_open_pull_capacity_to_azure() -> None:
    data = whatif_json("--contracts", str(JAN), "--vs", str(OCT), "--commitments-open")
    assert float(share(data["a"], "azure")) > 50


def test_human_output_names_the_clauses() -> None:
    result = CliRunner().invoke(cli, ["whatif", "--contracts", str(JAN), "--vs", str(OCT)])
    assert result.exit_code == 0, result.output
    assert "rofr-new-capacity" in result.stdout
    assert "Capacity share per cloud" in result.stdout


def test_bad_contract_file_is_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("contract_id: x\nversion: '1'\n")
    result = CliRunner().invoke(cli, ["whatif", "--contracts", str(bad), "--vs", str(OCT)])
    assert result.exit_code == 1
    assert f"{bad}:1:1: missing key 'effective_from'" in str(result.exception)
