"""``firstright check`` and ``firstright schema`` end to end (in process)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from firstright.cli.main import main
from firstright.examples import default_contracts_dir

BAD = Path(__file__).parent / "fixtures" / "contracts_bad"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as done:
        main(list(argv))
    out, err = capsys.readouterr()
    code = done.value.code
    return (code if isinstance(code, int) else 0), out, err


def test_check_examples_ok(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "check", str(default_contracts_dir()))
    assert (code, err) == (0, "")
    assert out.strip() == "ok: 8 files valid (8 contract)"


def test_check_reports_file_line_col(capsys: pytest.CaptureFixture[str]) -> None:
    file = BAD / "unknown_key.yaml"
    code, out, err = run(capsys, "check", str(file))
    assert code == 1
    assert out == ""
    assert err.splitlines() == [f"{file}:7:1: unknown key 'colour'"]


def test_check_json_lists_problems(capsys: pytest.CaptureFixture[str]) -> None:
    file = BAD / "dangling_overrides.yaml"
    code, out, _ = run(capsys, "check", "--json", str(file))
    assert code == 1
    assert json.loads(out) == [
        {
            "file": str(file),
            "line": 16,
            "column": 38,
            "path": ["clauses", 1, "overrides", 1],
            "message": "overrides unknown clause 'api-exclusive-aws'",
        }
    ]
    code, out, _ = run(capsys, "check", "--json", str(default_contracts_dir()))
    assert (code, json.loads(out)) == (0, [])


def test_check_tells_kinds_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    unknown = tmp_path / "what.yaml"
    unknown.write_text("hello: world\n")
    cases = tmp_path / "cases.yaml"
    cases.write_text("cases: 3\n")
    code, _, err = run(capsys, "check", str(unknown), str(cases), str(tmp_path / "absent.yaml"))
    assert code == 1
    lines = err.splitlines()
    assert (
        f"{unknown}:1:1: cannot tell what this file is: expected contract_id (contract bundle)"
        in ("\n".join(lines))
    )
    assert any(line.startswith(f"{tmp_path / 'absent.yaml'}: no such file") for line in lines)
    assert any(line.startswith(f"{cases}:") for line in lines)


def test_check_placement_requests(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    requests = tmp_path / "requests.yaml"
    requests.write_text(
        "requests:\n  - party: openai\n    workload: training\n    accelerator: H100\n"
        "    count: 8\n    colour: red\n"
    )
    code, _, err = run(capsys, "check", str(requests))
    assert code == 1
    assert err.splitlines() == [f"{requests}:6:5: requests.0.colour: unknown key 'colour'"]


def test_schema_contract(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "schema")
    schema = json.loads(out)
    assert code == 0
    assert schema["title"] == "Contract"
    assert set(schema["required"]) >= {"contract_id", "version", "effective_from", "parties"}
    kinds = json.dumps(schema["$defs"])
    for kind in ("exclusivity", "first_refusal", "ship_first", "ip_license", "revenue_share"):
        assert kind in kinds


def test_schema_unknown_kind_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "schema", "nonsense")
    assert code == 2
