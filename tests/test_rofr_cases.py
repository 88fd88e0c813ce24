"""The first-refusal scenario catalogue, judged by exactly the rule of specs/ROFR.md.

A case passes when its outcome is equal, every integer in the expected allocation is equal (a
party missing from the output counts as 0), and every expected decision is matched by an output
decision with the same ``t`` whose structured fields (all but ``reason``) are equal; a ``note``
that starts with an UPPER_SNAKE code is compared by that code alone.
"""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from firstright.cli.main import cli, main
from firstright.services.rofr_replay import dumps, replay_file

FIXTURES = Path(__file__).parent / "fixtures"
BASE = FIXTURES / "rofr_cases.yaml"
EXTRA = FIXTURES / "rofr_cases_extra.yaml"
CODE = re.compile(r"^([A-Z][A-Z0-9_]+)\b")


def _t(value: Any) -> str:
    return str(value).replace("+00:00", "Z")


def _field_equal(expected: Any, got: Any) -> bool:
    if isinstance(expected, bool):
        return got == expected
    if isinstance(expected, int | float | Decimal):
        try:
            return abs(Decimal(str(got)) - Decimal(str(expected))) < Decimal("0.000001")
        except (ArithmeticError, ValueError, TypeError):
            return False
    if isinstance(expected, list):
        return isinstance(got, list) and sorted(map(str, got)) == sorted(map(str, expected))
    return _t(got) == _t(expected)


def decision_matches(expected: dict[str, Any], got: dict[str, Any]) -> bool:
    if _t(got.get("t")) != _t(expected["t"]):
        return False
    for key, value in expected.items():
        if key in ("t", "reason"):
            continue
        if key == "note":
            code = CODE.match(str(value))
            if code is None:
                continue  # descriptive note: not compared
            got_code = CODE.match(str(got.get("note", "")))
            if got_code is None or got_code.group(1) != code.group(1):
                return False
            continue
        if not _field_equal(value, got.get(key)):
            return False
    return True


def failures(case: dict[str, Any], output: dict[str, Any]) -> list[str]:
    """Why ``output`` does not pass ``case`` (empty when it passes)."""
    expected = case["expected"]
    problems = []
    if output.get("outcome") != expected["outcome"]:
        problems.append(f"outcome {output.get('outcome')} != {expected['outcome']}")
    for party, quantity in (expected.get("allocation") or {}).items():
        if isinstance(quantity, int) and int(output["allocation"].get(party, 0) or 0) != quantity:
            problems.append(f"allocation[{party}] {output['allocation'].get(party)} != {quantity}")
    for want in expected.get("decisions", []):
        if not any(decision_matches(want, got) for got in output["decisions"]):
            at_t = [d for d in output["decisions"] if _t(d["t"]) == _t(want["t"])]
            problems.append(f"no decision matches {want}; at that t: {at_t}")
    return problems


def _cases(path: Path) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = yaml.safe_load(path.read_text())["cases"]
    return cases


def _outputs(path: Path) -> dict[str, dict[str, Any]]:
    """The replay's JSON, through the same serializer the CLI uses."""
    return {r.id: json.loads(dumps(r.to_json())) for r in replay_file(path)}


BASE_OUT = _outputs(BASE)
EXTRA_OUT = _outputs(EXTRA)


def test_the_fixture_is_the_published_catalogue() -> None:
    spec = Path("/work/shared/specs/rofr_cases.yaml")
    if spec.exists():
        assert spec.read_text() == BASE.read_text()
    assert len(_cases(BASE)) == 24


@pytest.mark.parametrize("case", _cases(BASE), ids=lambda c: c["id"])
def test_catalogue_case(case: dict[str, Any]) -> None:
    assert failures(case, BASE_OUT[case["id"]]) == []


@pytest.mark.parametrize("case", _cases(EXTRA), ids=lambda c: c["id"])
def test_extra_case(case: dict[str, Any]) -> None:
    assert failures(case, EXTRA_OUT[case["id"]]) == []


def test_extra_catalogue_is_large_enough() -> None:
    assert len(_cases(EXTRA)) >= 12


def test_matching_rule_rejects_wrong_fields() -> None:
    got = {
        "t": "2025-03-05T10:00:00Z",
        "state": "OFFER_OPEN",
        "note": "NONCONFORMING_RESPONSE_RECORDED (x)",
    }
    assert decision_matches(
        {"t": "2025-03-05T10:00:00Z", "note": "NONCONFORMING_RESPONSE_RECORDED"}, got
    )
    assert decision_matches({"t": "2025-03-05T10:00:00Z", "note": "free text is not compared"}, got)
    assert not decision_matches({"t": "2025-03-05T10:00:00Z", "note": "LATE_RESPONSE_IGNORED"}, got)
    assert not decision_matches({"t": "2025-03-05T10:00:00Z", "state": "RELEASED"}, got)
    assert not decision_matches({"t": "2025-03-05T10:00:01Z", "state": "OFFER_OPEN"}, got)


def test_cli_json_lines_one_object_per_case() -> None:
    result = CliRunner().invoke(cli, ["rofr", "replay", str(BASE), "--json"])
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [o["id"] for o in lines] == [c["id"] for c in _cases(BASE)]
    first = lines[0]
    assert set(first) == {"id", "decisions", "outcome", "allocation"}
    assert all(d["t"].endswith("Z") for o in lines for d in o["decisions"])
    prices = [d["baseline_price"] for o in lines for d in o["decisions"] if "baseline_price" in d]
    assert prices and all(isinstance(p, int | float) for p in prices)


def test_cli_single_case_table_and_trace() -> None:
    result = CliRunner().invoke(cli, ["rofr", "replay", str(BASE), "--case", "C21"])
    assert result.exit_code == 0, result.output
    assert "ALLOCATE_HOLDER" in result.output
    assert "trace:" in result.output
    assert "2.3858" in result.output  # the cash-equivalent comparison is shown
    assert "holder could have: accept by 2025-03-13T12:00:00Z" in result.output


def test_cli_unknown_case_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["rofr", "replay", str(BASE), "--case", "C99"])
    assert exited.value.code == 1
    assert "no case 'C99'" in capsys.readouterr().err
