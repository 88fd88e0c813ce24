"""Loading contract bundles: the examples are valid; each kind of mistake is reported at its
exact position; versions across files are consistent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from firstright.domain.contracts.versions import ContractSet
from firstright.errors import ConflictError, ValidationFailed
from firstright.examples import default_contracts_dir
from firstright.services.contract_loader import load_contract_file, load_contracts

BAD = Path(__file__).parent / "fixtures" / "contracts_bad"
EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "contracts"


def rendered(*paths: Path) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        load_contracts(list(paths))
    return [p.render() for p in caught.value.problems]


def test_examples_load_with_zero_problems() -> None:
    contracts = load_contracts(default_contracts_dir())
    assert [c.key for c in contracts] == [
        "amazon-anthropic@2023-09",
        "amazon-anthropic@2024-11",
        "amazon-anthropic@2026-04",
        "msft-openai@2019",
        "msft-openai@2024-06",
        "msft-openai@2025-01-21",
        "msft-openai@2025-10-28",
        "msft-openai@2026-04-27",
    ]


def test_examples_are_one_copy_linked_into_the_repository() -> None:
    assert EXAMPLES.is_symlink() or default_contracts_dir().is_symlink()
    assert EXAMPLES.resolve() == default_contracts_dir().resolve()


def test_every_example_clause_cites_a_source_or_is_an_assumption() -> None:
    for contract in load_contracts(default_contracts_dir()):
        for clause in contract.clauses:
            source = clause.source
            assert source.url or source.assumption, (contract.key, clause.id)
            if source.assumption:
                assert source.note, (contract.key, clause.id)


def test_versions_in_force() -> None:
    contracts = load_contracts(default_contracts_dir())

    def keys(at: datetime) -> list[str]:
        return [c.key for c in contracts.in_force_at(at)]

    assert keys(datetime(2018, 1, 1, tzinfo=UTC)) == []
    assert keys(datetime(2024, 1, 1, tzinfo=UTC)) == [
        "amazon-anthropic@2023-09",
        "msft-openai@2019",
    ]
    assert keys(datetime(2025, 1, 21, tzinfo=UTC)) == [
        "amazon-anthropic@2024-11",
        "msft-openai@2025-01-21",
    ]
    assert keys(datetime(2025, 10, 27, 23, 59, tzinfo=UTC))[1] == "msft-openai@2025-01-21"
    assert keys(datetime(2025, 10, 28, tzinfo=UTC))[1] == "msft-openai@2025-10-28"
    assert keys(datetime(2027, 1, 1, tzinfo=UTC)) == [
        "amazon-anthropic@2026-04",
        "msft-openai@2026-04-27",
    ]
    assert [c.version for c in contracts.versions("msft-openai")] == [
        "2019",
        "2024-06",
        "2025-01-21",
        "2025-10-28",
        "2026-04-27",
    ]


def test_unknown_key_on_line_7() -> None:
    assert rendered(BAD / "unknown_key.yaml") == [
        f"{BAD / 'unknown_key.yaml'}:7:1: unknown key 'colour'"
    ]


def test_dangling_overrides() -> None:
    assert rendered(BAD / "dangling_overrides.yaml") == [
        f"{BAD / 'dangling_overrides.yaml'}:16:38: clauses.1.overrides.1: "
        "overrides unknown clause 'api-exclusive-aws'"
    ]


def test_partial_min_fraction_without_allowed() -> None:
    assert rendered(BAD / "partial_min_fraction.yaml") == [
        f"{BAD / 'partial_min_fraction.yaml'}:18:29: clauses.0.params.partial_min_fraction: "
        "partial_min_fraction is only allowed with partial_exercise: allowed"
    ]


def test_bad_date() -> None:
    [line] = rendered(BAD / "bad_date.yaml")
    assert line.startswith(f"{BAD / 'bad_date.yaml'}:3:17: effective_from: Input should be a ")
    assert "month value is outside expected range" in line


def test_duplicate_key_and_tag() -> None:
    assert rendered(BAD / "duplicate_key.yaml", BAD / "tagged.yaml") == [
        f"{BAD / 'duplicate_key.yaml'}:7:3: duplicate key 'microsoft' (first at line 5, column 3)",
        f"{BAD / 'tagged.yaml'}:3:17: explicit tags are not allowed (!!timestamp)",
    ]


def test_undeclared_party_and_duplicate_clause_id() -> None:
    file = BAD / "undeclared_party.yaml"
    assert rendered(file) == [
        f"{file}:11:12: clauses.0.payee: party 'microsfot' is not declared under parties "
        "(microsoft, openai)",
        f"{file}:14:9: clauses.1.id: duplicate clause id 'share' (first used by clauses[0])",
    ]


def test_exemption_overrides_only_what_it_can_lift() -> None:
    file = BAD / "wrong_override_kind.yaml"
    assert rendered(file) == [
        f"{file}:16:17: clauses.1.overrides.0: a carve_out cannot override 'share' of kind "
        "revenue_share (only exclusivity, first_refusal, ship_first)"
    ]


def test_the_whole_bad_directory_reports_every_file() -> None:
    lines = rendered(BAD)
    files = {line.split(":")[0] for line in lines}
    assert files == {str(p) for p in BAD.glob("*.yaml")}


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


BUNDLE = """contract_id: twin
version: "1"
effective_from: 2025-01-01T00:00:00Z
parties:
  microsoft: {clouds: [azure]}
  openai: {}
title: %s
"""


def test_same_version_same_content_is_fine(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", BUNDLE % "same")
    b = _write(tmp_path / "b.yaml", "# a copy\n" + BUNDLE % "same")
    assert [c.key for c in load_contracts([a, b])] == ["twin@1"]


def test_same_version_different_content_names_both_files(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", BUNDLE % "one")
    b = _write(tmp_path / "b.yaml", BUNDLE % "two")
    with pytest.raises(ValidationFailed) as caught:
        load_contracts([a, b])
    [problem] = caught.value.problems
    assert (problem.file, problem.line, problem.column, problem.path) == (
        str(b),
        2,
        10,
        ("version",),
    )
    assert problem.message == f"contract twin@1 is also defined in {a} with different content"


def test_two_versions_at_the_same_instant(tmp_path: Path) -> None:
    a = _write(tmp_path / "a.yaml", BUNDLE % "one")
    b = _write(tmp_path / "b.yaml", (BUNDLE % "two").replace('"1"', '"2"'))
    assert rendered(a, b) == [
        f"{b}:3:17: effective_from: twin@2 takes effect at the same instant as twin@1 in {a}"
    ]


def test_contract_set_refuses_conflicting_versions() -> None:
    first = load_contract_file(
        BAD.parent.parent.parent / "examples/contracts/msft-openai-2019.yaml"
    )
    changed = first.model_copy(update={"title": "changed"})
    with pytest.raises(ConflictError):
        ContractSet([first, changed])
    assert len(ContractSet([first, first])) == 1


def test_missing_path_is_a_located_problem(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="no such file or directory"):
        load_contracts([tmp_path / "nope"])
