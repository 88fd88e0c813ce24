"""Bad case files are refused with FILE:LINE:COL and exit 1, before anything is replayed."""

from __future__ import annotations

from pathlib import Path

import pytest

from firstright.cli.main import main
from firstright.errors import ValidationFailed
from firstright.services.rofr_replay import load_case_file

BASE = (Path(__file__).parent / "fixtures" / "rofr_cases.yaml").read_text()
HEAD = BASE[: BASE.index("\ncases:")]


def _file(events: str, given: str = "{request: {id: R1, category: new_capacity}}") -> str:
    case = f"  - id: B1\n    given: {given}\n    events:\n{events}\n"
    return f"{HEAD}\ncases:\n{case}    expected: {{outcome: PENDING}}\n"


def _problems(text: str) -> list[str]:
    with pytest.raises(ValidationFailed) as failed:
        load_case_file("bad.yaml", text=text)
    return [p.render() for p in failed.value.problems]


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def test_unknown_event_type_is_located() -> None:
    text = _file('      - {t: "2025-03-03T09:00:00Z", type: tp_offer_recieved, party: cloud_x}')
    (problem,) = _problems(text)
    assert problem.startswith(f"bad.yaml:{_line_of(text, 'tp_offer_recieved')}:")
    assert "unknown event type 'tp_offer_recieved'" in problem


def test_bad_timestamp_is_located() -> None:
    text = _file('      - {t: "2025-13-03T09:00:00Z", type: request_withdrawn}')
    (problem,) = _problems(text)
    assert f"bad.yaml:{_line_of(text, '2025-13-03')}:" in problem
    assert "not an ISO-8601 timestamp" in problem


def test_naive_timestamp_is_refused() -> None:
    (problem,) = _problems(_file('      - {t: "2025-03-03T09:00:00", type: request_withdrawn}'))
    assert "needs a time zone" in problem


def test_events_out_of_order_are_refused() -> None:
    text = _file(
        '      - {t: "2025-03-04T09:00:00Z", type: capacity_request}\n'
        '      - {t: "2025-03-03T09:00:00Z", type: request_withdrawn}'
    )
    (problem,) = _problems(text)
    assert f"bad.yaml:{_line_of(text, 'request_withdrawn')}:" in problem
    assert "out of order" in problem


def test_unknown_term_set_is_refused() -> None:
    text = _file(
        '      - {t: "2025-03-03T09:00:00Z", type: tp_contract_request, party: cloud_x, terms: T9}'
    )
    (problem,) = _problems(text)
    assert "unknown term set 'T9'" in problem and "T0" in problem


def test_bad_term_value_is_located() -> None:
    text = _file(
        '      - {t: "2025-03-03T09:00:00Z", type: tp_contract_request, party: cloud_x, terms: T0,'
        ' terms_overrides: {start_date: "soon"}}'
    )
    (problem,) = _problems(text)
    assert "start_date must be a date" in problem


def test_bad_clause_parameter_points_at_the_override() -> None:
    text = _file(
        '      - {t: "2025-03-03T09:00:00Z", type: request_withdrawn}',
        given="{request: {id: R1}, contract_overrides: {rofr: {partial_min_fraction: 0.5}}}",
    )
    (problem,) = _problems(text)
    assert "partial_min_fraction is only allowed" in problem
    assert problem.startswith(f"bad.yaml:{_line_of(text, 'partial_min_fraction: 0.5')}:")


def test_bad_holder_response_kind() -> None:
    (problem,) = _problems(
        _file('      - {t: "2025-03-03T09:00:00Z", type: holder_response, kind: maybe}')
    )
    assert "kind must be one of" in problem


def test_cli_exits_1_with_the_position(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "cases.yaml"
    path.write_text(_file('      - {t: "2025-03-03T09:00:00Z", type: nonsense}'))
    with pytest.raises(SystemExit) as exited:
        main(["rofr", "replay", str(path), "--json"])
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{path}:" in captured.err and "unknown event type 'nonsense'" in captured.err
