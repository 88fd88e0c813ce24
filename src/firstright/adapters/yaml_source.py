"""Safe YAML input with positions: every value firstright reads from a file comes through here.

``load_yaml`` parses with PyYAML's event API (libyaml's C parser where available) and builds plain
data itself, so nothing hostile is ever constructed:

- aliases and anchors are refused at the first one (a "billion laughs" file fails in
  microseconds, before any expansion);
- any explicit tag (``!!python/object``, ``!!str``, ``!custom``, ``!``) is refused;
- nesting deeper than ``YAML_DEPTH_MAX``, more than ``YAML_NODES_MAX`` nodes, scalars longer than
  ``YAML_SCALAR_CHARS_MAX`` and files larger than ``INPUT_FILE_BYTES_MAX`` (checked with ``stat``
  before reading) are refused;
- bytes that are not UTF-8, duplicate mapping keys, non-string keys, merge keys (``<<``) and
  streams with more than one document are refused.

Plain scalars resolve as YAML 1.1 (PyYAML's safe resolver) with two deliberate changes: floats
become ``Decimal`` built from their source text (money and rates are never binary floats), and
timestamps stay strings (pydantic parses them with their time zone). Every refusal raises
``SourceError(file, message, line, column)``.

``YamlDocument.position(path)`` gives the 1-based (line, column) of any value by its path of keys
and indices; ``key_position(path)`` the position of the key itself. ``validate_document`` runs a
pydantic model over the data and turns every pydantic error into a located ``Problem``: an unknown
key points at that key, a wrong value at the value, a missing key at the mapping that lacks it.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from firstright.errors import Problem, SourceError, ValidationFailed
from firstright.limits import (
    INPUT_FILE_BYTES_MAX,
    YAML_DEPTH_MAX,
    YAML_NODES_MAX,
    YAML_SCALAR_CHARS_MAX,
)

try:  # libyaml's C parser when the wheel has it, the pure-Python parser otherwise
    _Loader: Any = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the platform's wheel
    _Loader = yaml.SafeLoader

PathKey = str | int
DataPath = tuple[PathKey, ...]
Position = tuple[int, int]
M = TypeVar("M", bound=BaseModel)

_YAML_TAG_PREFIX = "tag:yaml.org,2002:"
_STR = "tag:yaml.org,2002:str"
_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_MERGE = "tag:yaml.org,2002:merge"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_SEXAGESIMAL = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_RESOLVER: Any = yaml.resolver.Resolver()


@dataclass(frozen=True, slots=True)
class YamlDocument:
    """Plain data (dict, list, str, int, Decimal, bool, None) plus where each piece came from."""

    data: Any
    file: str
    _value_positions: dict[DataPath, Position] = field(repr=False)
    _key_positions: dict[DataPath, Position] = field(repr=False)

    def position(self, path: Sequence[PathKey] = ()) -> Position:
        """1-based (line, column) of the value at ``path``; the nearest existing ancestor's value
        when the path does not exist (e.g. a key that is missing)."""
        key = tuple(path)
        while key not in self._value_positions and key:
            key = key[:-1]
        return self._value_positions.get(key, (1, 1))

    def key_position(self, path: Sequence[PathKey]) -> Position:
        """1-based (line, column) of the key (or list item) that holds the value at ``path``."""
        key = tuple(path)
        if key in self._key_positions:
            return self._key_positions[key]
        return self.position(key)

    def has(self, path: Sequence[PathKey]) -> bool:
        return tuple(path) in self._value_positions

    def problem(self, path: Sequence[PathKey], message: str, *, at_key: bool = False) -> Problem:
        """A ``Problem`` located at the value (or key) of ``path`` in this document."""
        line, column = self.key_position(path) if at_key else self.position(path)
        return Problem(self.file, message, line, column, tuple(path))


# ---------------------------------------------------------------------------------------------
# Reading


def load_yaml(source: str | bytes | os.PathLike[str], *, file: str | None = None) -> YamlDocument:
    """Parse one YAML document safely.

    ``source`` is a path (``pathlib.Path`` or any ``os.PathLike``: the file is read, its size
    checked first), ``bytes`` (must be UTF-8) or ``str`` (the YAML text itself). ``file`` names
    the source in problems; it defaults to the path, or ``<string>``.
    """
    if isinstance(source, os.PathLike):
        name = file if file is not None else os.fspath(source)
        text = _decode(_read_file(Path(source), name), name)
    elif isinstance(source, bytes):
        name = file if file is not None else "<bytes>"
        if len(source) > INPUT_FILE_BYTES_MAX:
            raise SourceError(name, _too_big(len(source)))
        text = _decode(source, name)
    else:
        name = file if file is not None else "<string>"
        if len(source) > INPUT_FILE_BYTES_MAX or len(source.encode()) > INPUT_FILE_BYTES_MAX:
            raise SourceError(name, _too_big(len(source.encode())))
        text = source
    return _Builder(name).build(text)


def load_yaml_file(path: str | os.PathLike[str]) -> YamlDocument:
    """``load_yaml`` for a path given as a string."""
    return load_yaml(Path(path), file=os.fspath(path))


def _too_big(size: int) -> str:
    return f"file is {size} bytes, more than the limit of {INPUT_FILE_BYTES_MAX} bytes"


def _read_file(path: Path, name: str) -> bytes:
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise SourceError(name, "no such file") from exc
    except OSError as exc:
        raise SourceError(name, f"cannot read: {exc.strerror or exc}") from exc
    if not stat.S_ISREG(info.st_mode):
        raise SourceError(name, "not a regular file")
    if info.st_size > INPUT_FILE_BYTES_MAX:
        raise SourceError(name, _too_big(info.st_size))
    try:
        with path.open("rb") as handle:
            raw = handle.read(INPUT_FILE_BYTES_MAX + 1)
    except OSError as exc:
        raise SourceError(name, f"cannot read: {exc.strerror or exc}") from exc
    if len(raw) > INPUT_FILE_BYTES_MAX:  # the file grew after stat
        raise SourceError(name, _too_big(len(raw)))
    return raw


def _decode(raw: bytes, name: str) -> str:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = len(before) - (before.rfind(b"\n") + 1) + 1
        raise SourceError(
            name, f"not UTF-8: byte 0x{raw[exc.start]:02x} cannot be decoded", line, column
        ) from exc
    return text.removeprefix("\ufeff")


class _Builder:
    """Turns the event stream into plain data, checking every limit as it goes."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.nodes = 0
        self.values: dict[DataPath, Position] = {}
        self.keys: dict[DataPath, Position] = {}

    def fail(self, message: str, mark: Any) -> SourceError:
        if mark is None:
            return SourceError(self.file, message)
        return SourceError(self.file, message, mark.line + 1, mark.column + 1)

    def build(self, text: str) -> YamlDocument:
        loader = _Loader(text)
        try:
            data = self._stream(loader)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = " ".join(str(part) for part in (exc.context, exc.problem) if part)
            raise self.fail(f"invalid YAML: {message or 'syntax error'}", mark) from exc
        except yaml.YAMLError as exc:
            raise SourceError(self.file, f"invalid YAML: {exc}") from exc
        finally:
            loader.dispose()
        return YamlDocument(data, self.file, self.values, self.keys)

    def _stream(self, loader: Any) -> Any:
        event = loader.get_event()
        assert isinstance(event, yaml.StreamStartEvent)
        event = loader.get_event()
        if isinstance(event, yaml.StreamEndEvent):
            self.values[()] = (1, 1)
            return None
        assert isinstance(event, yaml.DocumentStartEvent)
        if event.tags:
            raise self.fail("%TAG directives are not allowed", event.start_mark)
        data = self._node(loader, loader.get_event(), (), 0)
        end = loader.get_event()
        assert isinstance(end, yaml.DocumentEndEvent)
        after = loader.get_event()
        if not isinstance(after, yaml.StreamEndEvent):
            raise self.fail("only one YAML document per file is allowed", after.start_mark)
        return data

    def _node(self, loader: Any, event: Any, path: DataPath, depth: int) -> Any:
        if isinstance(event, yaml.AliasEvent):
            raise self.fail(f"aliases are not allowed (*{event.anchor})", event.start_mark)
        if event.anchor is not None:
            raise self.fail(f"anchors are not allowed (&{event.anchor})", event.start_mark)
        if event.tag is not None:
            raise self.fail(
                f"explicit tags are not allowed ({_short(event.tag)})", event.start_mark
            )
        self.nodes += 1
        if self.nodes > YAML_NODES_MAX:
            raise self.fail(f"more than {YAML_NODES_MAX} YAML nodes", event.start_mark)
        self.values[path] = (event.start_mark.line + 1, event.start_mark.column + 1)
        if isinstance(event, yaml.ScalarEvent):
            return self._scalar(event)
        if depth + 1 > YAML_DEPTH_MAX:
            raise self.fail(f"nesting deeper than {YAML_DEPTH_MAX} levels", event.start_mark)
        if isinstance(event, yaml.SequenceStartEvent):
            items: list[Any] = []
            while not isinstance(nxt := loader.get_event(), yaml.SequenceEndEvent):
                here = (*path, len(items))
                self.keys[here] = (nxt.start_mark.line + 1, nxt.start_mark.column + 1)
                items.append(self._node(loader, nxt, here, depth + 1))
            return items
        assert isinstance(event, yaml.MappingStartEvent), event
        mapping: dict[str, Any] = {}
        while not isinstance(key_event := loader.get_event(), yaml.MappingEndEvent):
            key = self._key(key_event)
            if key in mapping:
                first = self.keys[(*path, key)]
                raise self.fail(
                    f"duplicate key {key!r} (first at line {first[0]}, column {first[1]})",
                    key_event.start_mark,
                )
            here = (*path, key)
            self.keys[here] = (key_event.start_mark.line + 1, key_event.start_mark.column + 1)
            mapping[key] = self._node(loader, loader.get_event(), here, depth + 1)
        return mapping

    def _key(self, event: Any) -> str:
        if isinstance(event, yaml.AliasEvent):
            raise self.fail(f"aliases are not allowed (*{event.anchor})", event.start_mark)
        if not isinstance(event, yaml.ScalarEvent):
            raise self.fail("mapping keys must be strings, not collections", event.start_mark)
        if event.anchor is not None:
            raise self.fail(f"anchors are not allowed (&{event.anchor})", event.start_mark)
        if event.tag is not None:
            raise self.fail(
                f"explicit tags are not allowed ({_short(event.tag)})", event.start_mark
            )
        self.nodes += 1
        if self.nodes > YAML_NODES_MAX:
            raise self.fail(f"more than {YAML_NODES_MAX} YAML nodes", event.start_mark)
        if event.implicit[0]:
            tag = _RESOLVER.resolve(yaml.ScalarNode, event.value, (True, False))
            if tag == _MERGE:
                raise self.fail("merge keys (<<) are not allowed", event.start_mark)
            if tag not in (_STR, _TIMESTAMP):
                raise self.fail(
                    f"mapping keys must be strings; quote {event.value!r}", event.start_mark
                )
        if len(event.value) > YAML_SCALAR_CHARS_MAX:
            raise self.fail("mapping key too long", event.start_mark)
        value: str = event.value
        return value

    def _scalar(self, event: Any) -> Any:
        value: str = event.value
        if len(value) > YAML_SCALAR_CHARS_MAX:
            raise self.fail(
                f"scalar of {len(value)} characters, more than {YAML_SCALAR_CHARS_MAX}",
                event.start_mark,
            )
        if not event.implicit[0]:  # quoted or block scalar: always a string
            return value
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return value.lower() in ("yes", "true", "on")
        if tag == _INT:
            return _int(value)
        if tag == _FLOAT:
            try:
                return _decimal(value)
            except (InvalidOperation, ValueError) as exc:
                raise self.fail(f"not a number: {value!r}", event.start_mark) from exc
        return value  # strings, timestamps (parsed later, with their zone), merge-like text


def _short(tag: str) -> str:
    return "!!" + tag.removeprefix(_YAML_TAG_PREFIX) if tag.startswith(_YAML_TAG_PREFIX) else tag


def _int(text: str) -> int:
    """YAML 1.1 integers: sign, ``_`` separators, 0b / 0x / 0o-style octal, sexagesimal."""
    digits = text.replace("_", "")
    sign = -1 if digits.startswith("-") else 1
    digits = digits.lstrip("+-")
    if digits == "0":
        return 0
    if digits.startswith("0b"):
        return sign * int(digits[2:], 2)
    if digits.startswith("0x"):
        return sign * int(digits[2:], 16)
    if digits.startswith("0") and ":" not in digits:
        return sign * int(digits, 8)
    if ":" in digits:
        total = 0
        for part in digits.split(":"):
            total = total * 60 + int(part)
        return sign * total
    return sign * int(digits)


def _decimal(text: str) -> Decimal:
    """A YAML float as the exact decimal its source text spells."""
    lowered = text.lower()
    if lowered in (".inf", "+.inf"):
        return Decimal("Infinity")
    if lowered == "-.inf":
        return Decimal("-Infinity")
    if lowered == ".nan":
        return Decimal("NaN")
    digits = text.replace("_", "")
    if _SEXAGESIMAL.match(digits):
        sign = -1 if digits.startswith("-") else 1
        total = Decimal(0)
        for part in digits.lstrip("+-").split(":"):
            total = total * 60 + Decimal(part or "0")
        return sign * total
    return Decimal(digits)


# ---------------------------------------------------------------------------------------------
# Validation against a pydantic model


def validate_document(doc: YamlDocument, model: type[M], file: str | None = None) -> M:
    """Validate ``doc.data`` with ``model``; raise ``ValidationFailed`` with one located problem
    per pydantic error."""
    try:
        return model.model_validate(doc.data)
    except PydanticValidationError as exc:
        raise ValidationFailed(pydantic_problems(doc, exc, file)) from exc


def pydantic_problems(
    doc: YamlDocument, error: PydanticValidationError, file: str | None = None
) -> list[Problem]:
    """Locate each error of a pydantic validation in ``doc``."""
    name = file if file is not None else doc.file
    problems = [_locate(doc, name, detail) for detail in error.errors(include_url=False)]
    return sorted(problems, key=lambda p: (p.line or 0, p.column or 0, p.message))


def _locate(doc: YamlDocument, file: str, detail: Any) -> Problem:
    kind: str = detail["type"]
    loc: tuple[PathKey, ...] = tuple(detail["loc"])
    path, rest, at_key = _data_path(doc.data, loc)
    message = _message(kind, detail, rest)
    if kind == "extra_forbidden":
        line, column = doc.key_position(path)
    elif kind == "missing":
        line, column = doc.position(path)
    elif at_key:
        line, column = doc.key_position(path)
    else:
        line, column = doc.position(path)
    return Problem(file, message, line, column, path)


def _data_path(data: Any, loc: Iterable[PathKey]) -> tuple[DataPath, list[PathKey], bool]:
    """Follow a pydantic ``loc`` through the data. Elements that are not in the data (union tags,
    the name of a missing key) are skipped; ``rest`` keeps the ones after the last match."""
    node = data
    path: list[PathKey] = []
    rest: list[PathKey] = []
    at_key = False
    for element in loc:
        if element == "[key]":
            at_key = True
            continue
        in_dict = isinstance(node, dict) and isinstance(element, str) and element in node
        in_list = (
            isinstance(node, list)
            and isinstance(element, int)
            and not isinstance(element, bool)
            and 0 <= element < len(node)
        )
        if in_dict or in_list:
            node = node[element]
            path.append(element)
            rest = []
        else:
            rest.append(element)
    return tuple(path), rest, at_key


def _message(kind: str, detail: Any, rest: list[PathKey]) -> str:
    if kind == "extra_forbidden":
        return f"unknown key {_last(detail['loc'])!r}"
    if kind == "missing":
        return f"missing key {_last(rest or detail['loc'])!r}"
    text = str(detail["msg"])
    if kind in ("value_error", "assertion_error"):
        text = text.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    inp = detail.get("input")
    if kind not in ("value_error", "assertion_error") and isinstance(inp, str | int | Decimal):
        shown = repr(inp) if len(repr(inp)) <= 60 else repr(inp)[:57] + "..."
        text = f"{text} (got {shown})"
    return text


def _last(loc: Sequence[PathKey]) -> str:
    for element in reversed(loc):
        if element != "[key]":
            return str(element)
    return "?"


def problems_of(error: SourceError | ValidationFailed) -> list[Problem]:
    """The located problems of an input error, for tools that report many files at once."""
    if isinstance(error, ValidationFailed):
        return list(error.problems)
    return [error.problem]
