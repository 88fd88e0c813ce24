"""Safe YAML loading: hostile input is refused with an exact position; positions map pydantic
errors to the key or value at fault."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel, ConfigDict

from firstright.adapters.yaml_source import load_yaml, load_yaml_file, validate_document
from firstright.errors import SourceError, ValidationFailed
from firstright.limits import INPUT_FILE_BYTES_MAX, YAML_DEPTH_MAX, YAML_SCALAR_CHARS_MAX


def refused(text: str | bytes) -> str:
    with pytest.raises(SourceError) as caught:
        load_yaml(text, file="in.yaml")
    return caught.value.problem.render()


def test_plain_data_and_exact_decimals() -> None:
    doc = load_yaml(
        "a: 1\nb: 2.50\nc: 2025-01-21T00:00:00Z\nd: [x, 'y', 0x10, 1_000, null, true]\n"
        "e: {f: 1e3}\ng: '3.10'\nh: 0.1\n"
    )
    assert doc.data == {
        "a": 1,
        "b": Decimal("2.50"),
        "c": "2025-01-21T00:00:00Z",
        "d": ["x", "y", 16, 1000, None, True],
        "e": {"f": "1e3"},  # YAML 1.1: no dot, not a float
        "g": "3.10",
        "h": Decimal("0.1"),
    }
    assert isinstance(doc.data["b"], Decimal) and str(doc.data["b"]) == "2.50"
    assert not any(isinstance(v, float) for v in doc.data.values())


def test_positions_of_keys_and_values() -> None:
    doc = load_yaml("top:\n  inner:\n    - first\n    - {k: v}\n", file="p.yaml")
    assert doc.position(("top",)) == (2, 3)
    assert doc.key_position(("top",)) == (1, 1)
    assert doc.key_position(("top", "inner")) == (2, 3)
    assert doc.position(("top", "inner", 0)) == (3, 7)
    assert doc.position(("top", "inner", 1, "k")) == (4, 11)
    assert doc.key_position(("top", "inner", 1, "k")) == (4, 8)
    # a path that does not exist falls back to its nearest ancestor
    assert doc.position(("top", "inner", 1, "missing")) == (4, 7)


@pytest.mark.timeout(5)
def test_billion_laughs_is_refused_at_the_first_anchor() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, name = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]")
    assert refused("\n".join(lines)) == "in.yaml:1:4: anchors are not allowed (&a)"


def test_alias_without_anchor_and_merge_key() -> None:
    assert refused("a: 1\nb: *x\n") == "in.yaml:2:4: aliases are not allowed (*x)"
    assert refused("a:\n  <<: {b: 1}\n") == "in.yaml:2:3: merge keys (<<) are not allowed"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a: !!python/object:os.system x\n", "in.yaml:1:4: explicit tags are not allowed"),
        ("a: !!str 1\n", "in.yaml:1:4: explicit tags are not allowed (!!str)"),
        ("a:\n  - !custom 1\n", "in.yaml:2:5: explicit tags are not allowed (!custom)"),
        ("a: ! x\n", "in.yaml:1:4: explicit tags are not allowed (!)"),
    ],
)
def test_explicit_tags_are_refused(text: str, expected: str) -> None:
    assert refused(text).startswith(expected)


def test_duplicate_keys_point_at_the_second() -> None:
    assert (
        refused("a: 1\nb:\n  c: 1\n  c: 2\n")
        == "in.yaml:4:3: duplicate key 'c' (first at line 3, column 3)"
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1: a\n", "in.yaml:1:1: mapping keys must be strings; quote '1'"),
        ("a:\n  true: x\n", "in.yaml:2:3: mapping keys must be strings; quote 'true'"),
        ("? [a]\n: 1\n", "in.yaml:1:3: mapping keys must be strings, not collections"),
        ("~: 1\n", "in.yaml:1:1: mapping keys must be strings; quote '~'"),
    ],
)
def test_non_string_keys(text: str, expected: str) -> None:
    assert refused(text) == expected


def test_deep_nesting_is_refused_where_it_gets_too_deep() -> None:
    text = "a: " + "[" * (YAML_DEPTH_MAX + 5) + "]" * (YAML_DEPTH_MAX + 5) + "\n"
    # the root mapping is level 1, so the (YAML_DEPTH_MAX)th bracket is one too many
    column = 3 + YAML_DEPTH_MAX
    assert refused(text) == f"in.yaml:1:{column}: nesting deeper than {YAML_DEPTH_MAX} levels"
    ok = "a: " + "[" * (YAML_DEPTH_MAX - 1) + "]" * (YAML_DEPTH_MAX - 1) + "\n"
    assert load_yaml(ok).data is not None


def test_huge_file_is_refused_before_reading(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    with big.open("wb") as handle:  # sparse: nothing is written, nothing needs to be read
        handle.truncate(INPUT_FILE_BYTES_MAX + 1)
    with pytest.raises(SourceError) as caught:
        load_yaml_file(big)
    assert caught.value.problem.render() == (
        f"{big}: file is {INPUT_FILE_BYTES_MAX + 1} bytes, more than the limit of "
        f"{INPUT_FILE_BYTES_MAX} bytes"
    )


def test_long_scalar_and_too_many_bytes_of_text() -> None:
    assert refused("a: " + "x" * (YAML_SCALAR_CHARS_MAX + 1)).startswith(
        f"in.yaml:1:4: scalar of {YAML_SCALAR_CHARS_MAX + 1} characters"
    )
    assert "more than the limit" in refused("a: " + "é" * (INPUT_FILE_BYTES_MAX // 2 + 1))


def test_non_utf8_is_located() -> None:
    assert refused(b"a: 1\nb: caf\xe9\n") == ("in.yaml:2:7: not UTF-8: byte 0xe9 cannot be decoded")


def test_one_document_per_file_and_syntax_errors() -> None:
    assert refused("a: 1\n---\nb: 2\n") == (
        "in.yaml:2:1: only one YAML document per file is allowed"
    )
    assert refused("a: [1, 2\nb: 3\n").startswith("in.yaml:2:")
    assert load_yaml("").data is None
    assert load_yaml("# only a comment\n").data is None


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no such file"):
        load_yaml_file(tmp_path / "absent.yaml")
    with pytest.raises(SourceError, match="not a regular file"):
        load_yaml_file(tmp_path)


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    size: int
    name: str = "x"


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str
    items: list[Inner]


def problems(text: str) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        validate_document(load_yaml(text, file="m.yaml"), Outer)
    return [p.render() for p in caught.value.problems]


def test_validation_points_at_the_key_the_value_or_the_mapping() -> None:
    text = "title: t\nitems:\n  - size: 1\n    colour: red\n  - size: many\n  - name: n\n"
    assert problems(text) == [
        "m.yaml:4:5: items.0.colour: unknown key 'colour'",
        "m.yaml:5:11: items.1.size: Input should be a valid integer, unable to parse string "
        "as an integer (got 'many')",
        "m.yaml:6:5: items.2: missing key 'size'",
    ]


def test_validation_success_returns_the_model() -> None:
    model = validate_document(load_yaml("title: t\nitems: [{size: 2}]\n"), Outer)
    assert model.items[0].size == 2
