"""``firstright place``: JSON shape, JSON Lines for lists, bad request files with positions."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from firstright.cli.main import main

FIXTURES = Path(__file__).parent / "fixtures" / "placement"
AT = "2025-06-01T00:00:00Z"


Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    """Run ``firstright place`` as the installed entry point does (exit codes, stderr lines)."""

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as done:
            main(["place", *args])
        captured = capsys.readouterr()
        code = done.value.code
        return (code if isinstance(code, int) else 1), captured.out, captured.err

    return invoke


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "requests.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_list_prints_json_lines_one_answer_per_request(run: Run) -> None:
    code, out, _ = run(
        str(FIXTURES / "requests.yaml"),
        "--contracts",
        str(FIXTURES / "contracts"),
        "--at",
        AT,
        "--json",
    )
    assert code == 0
    lines = out.strip().splitlines()
    assert len(lines) == 4
    answers = [json.loads(line) for line in lines]
    assert [a["id"] for a in answers] == ["api", "api-gov", "capacity", "train"]
    for answer in answers:
        assert set(answer) >= {"choice", "candidates", "trace", "first_refusal", "counterfactual"}
        choice = answer["choice"]
        assert set(choice) >= {
            "provider",
            "region",
            "zone",
            "instance_type",
            "accelerator",
            "count",
            "num_nodes",
            "hourly_price_usd",
            "total_usd",
        }
        assert isinstance(choice["hourly_price_usd"], str)
        for step in answer["trace"]:
            assert set(step) == {"clause_id", "contract", "kind", "rule", "inputs", "result"}
    assert answers[0]["choice"]["provider"] == "azure"
    assert answers[2]["first_refusal"]["terms"]["offeror"] == "nebius"
    assert answers[3]["counterfactual"]["kind"] == "commitment_shift"


def test_single_request_prints_one_json_object(run: Run, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "party: lab\nworkload: training\naccelerator: H100\ncount: 8\nnum_nodes: 2\n"
        f"hours: 10\nat: {AT}\n",
    )
    code, out, _ = run(path, "--json")
    assert code == 0
    answer = json.loads(out)
    assert answer["choice"]["provider"] == "nebius"
    assert answer["choice"]["hourly_price_usd"] == "47.2"
    assert answer["choice"]["total_usd"] == "472.000000"
    assert answer["trace"] == []
    assert answer["first_refusal"] is None
    assert answer["solver"] == "argmin"


def test_human_output_is_a_table_with_trace(run: Run) -> None:
    code, out, _ = run(
        str(FIXTURES / "requests.yaml"), "--contracts", str(FIXTURES / "contracts"), "--at", AT
    )
    assert code == 0
    assert "Standard_ND96isr_H100_v5" in out
    assert "trace: lab-cloud@2025-01-21 api-on-azure [exclusivity.restrict]" in out
    assert "first refusal due to cloudco" in out
    assert "catalog correction: azure Standard_ND96isr_H100_v5: AcceleratorCount 12 -> 8" in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "party: lab\nworkload: training\naccelerator: H100\ncount: 0\n"
            "at: 2025-01-01T00:00:00Z\n",
            ":4:8: ",
        ),
        (
            "party: lab\nworkload: training\naccelerator: H100\ncount: 8\ncolour: red\n"
            "at: 2025-01-01T00:00:00Z\n",
            ":5:1: unknown key 'colour'",
        ),
        (
            "requests:\n  - party: lab\n    workload: training\n    accelerator: H100\n"
            "    count: 8\n    at: 2025-01-01T00:00:00Z\n  - party: lab\n    workload: training\n"
            "    accelerator: H100\n    count: 8\n    hours: -3\n    at: 2025-01-01T00:00:00Z\n",
            ":11:12: ",
        ),
        (
            "party: lab\nworkload: training\naccelerator: H100\ncount: 8\n",
            ":1:1: no 'at' in this request and no --at given",
        ),
        ("party: lab\nworkload: [training\n", ":"),
    ],
)
def test_bad_request_files_report_positions(
    run: Run, tmp_path: Path, text: str, expected: str
) -> None:
    path = _write(tmp_path, text)
    code, out, err = run(path, "--json")
    assert code == 1
    assert out == ""
    assert err.startswith(path + expected), err


def test_request_without_at_in_a_list_is_located(run: Run, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "requests:\n  - party: lab\n    workload: training\n    accelerator: H100\n    count: 8\n"
        "    at: 2025-01-01T00:00:00Z\n  - party: lab\n    workload: training\n"
        "    accelerator: H100\n    count: 8\n",
    )
    code, _, err = run(path)
    assert code == 1
    assert err.startswith(f"{path}:7:5: ")


def test_unplaceable_request_exits_1_after_printing_every_answer(run: Run, tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "requests:\n"
        "  - {party: lab, workload: training, accelerator: B200, count: 8, clouds: [gcp]}\n"
        "  - {party: lab, workload: training, accelerator: H100, count: 8}\n",
    )
    code, out, err = run(path, "--at", AT, "--json")
    assert code == 1
    lines = [json.loads(line) for line in out.strip().splitlines()]
    assert [a["status"] for a in lines] == ["no_offer", "placed"]
    assert "no catalog offer has 8 x B200" in lines[0]["reason"]
    assert "1 of 2 requests could not be placed" in err


def test_bad_at_option_is_a_usage_error(run: Run, tmp_path: Path) -> None:
    path = _write(tmp_path, "party: lab\nworkload: training\naccelerator: H100\ncount: 8\n")
    code, _, _ = run(path, "--at", "yesterday")
    assert code == 2
