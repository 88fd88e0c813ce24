"""``firstright check PATH... [--json]``: validate input files without acting on them.

A path is a file or a directory (searched recursively for ``.yaml`` / ``.yml``). The kind of each
file is told by its top-level keys:

- ``contract_id``: a contract bundle, checked with the contract model and its cross-field rules
  (and, across files, one ``id@version`` given with two different contents);
- ``requests`` or ``accelerator``: placement requests (``domain.placement.request``);
- ``cases``: a first-refusal case file (``services.rofr_replay.load_case_file``);
- ``backends``: a gateway configuration (``gateway.config.load_gateway_config``).

Exit 0 when every file is valid. Otherwise exit 1 with one line per problem on stderr,
``FILE:LINE:COL: message`` (``FILE: message`` where no position exists); ``--json`` also prints
the problems as a JSON list on stdout (``[]`` when valid).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import click
import orjson

from firstright.adapters.yaml_source import (
    YamlDocument,
    load_yaml_file,
    problems_of,
    validate_document,
)
from firstright.domain.contracts.model import Contract
from firstright.errors import FirstrightError, Problem, SourceError, ValidationFailed
from firstright.services.contract_loader import (
    check_contract_document,
    cross_file_problems,
    yaml_files,
)

KINDS_HELP = (
    "contract_id (contract bundle), requests or accelerator (placement requests), "
    "cases (first-refusal case file) or backends (gateway configuration)"
)


def kind_of(data: object) -> str | None:
    """The kind of an input file from its top-level keys, or None when it cannot be told."""
    if not isinstance(data, dict):
        return None
    if "contract_id" in data:
        return "contract"
    if "requests" in data or "accelerator" in data:
        return "placement_requests"
    if "cases" in data:
        return "rofr_cases"
    if "backends" in data:
        return "gateway_config"
    return None


def _optional_module(name: str) -> ModuleType | None:
    """Import a module another part of firstright provides, or None when it is absent."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise


class Checker:
    """Checks files one by one, collecting every problem; contracts are compared across files."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []
        self.contracts: list[tuple[Contract, YamlDocument]] = []
        self.counts: dict[str, int] = {}

    def check_paths(self, paths: Sequence[str]) -> None:
        files: list[Path] = []
        for path in paths:
            try:
                files.extend(yaml_files([path]))
            except SourceError as error:
                self.problems.append(error.problem)
        for file in files:
            self.check_file(file)
        self.problems.extend(cross_file_problems(self.contracts))

    def check_file(self, file: Path) -> None:
        try:
            doc = load_yaml_file(file)
            kind = kind_of(doc.data)
            if kind is None:
                raise ValidationFailed(
                    [doc.problem((), f"cannot tell what this file is: expected {KINDS_HELP}")]
                )
            checks: dict[str, Callable[[YamlDocument, Path], None]] = {
                "contract": self._contract,
                "placement_requests": self._placement_requests,
                "rofr_cases": self._rofr_cases,
                "gateway_config": self._gateway_config,
            }
            checks[kind](doc, file)
            self.counts[kind] = self.counts.get(kind, 0) + 1
        except (SourceError, ValidationFailed) as error:
            self.problems.extend(problems_of(error))
        except FirstrightError as error:
            self.problems.append(Problem(os.fspath(file), error.message))

    def _contract(self, doc: YamlDocument, file: Path) -> None:
        self.contracts.append((check_contract_document(doc), doc))

    def _placement_requests(self, doc: YamlDocument, file: Path) -> None:
        module = _optional_module("firstright.domain.placement.request")
        if module is None:
            raise ValidationFailed([doc.problem((), "placement requests cannot be checked here")])
        model: Any = (
            module.PlacementRequestFile
            if module.is_request_list(doc.data)
            else module.PlacementRequest
        )
        validate_document(doc, model)

    def _rofr_cases(self, doc: YamlDocument, file: Path) -> None:
        module = _optional_module("firstright.services.rofr_replay")
        if module is not None:
            module.load_case_file(file)
        elif not isinstance(doc.data, dict) or not isinstance(doc.data.get("cases"), list):
            raise ValidationFailed([doc.problem(("cases",), "cases must be a list")])

    def _gateway_config(self, doc: YamlDocument, file: Path) -> None:
        module = _optional_module("firstright.gateway.config")
        if module is None:
            raise ValidationFailed(
                [doc.problem((), "gateway configurations cannot be checked here")]
            )
        module.load_gateway_config(file)


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option("--json", "as_json", is_flag=True, help="Print the problems as a JSON list.")
def check(paths: tuple[str, ...], as_json: bool) -> None:
    """Validate contract bundles and other input files (kind told by top-level keys)."""
    checker = Checker()
    checker.check_paths(paths)
    problems = checker.problems
    if as_json:
        listed = [
            {
                "file": p.file,
                "line": p.line,
                "column": p.column,
                "path": list(p.path),
                "message": p.message,
            }
            for p in problems
        ]
        click.echo(orjson.dumps(listed, option=orjson.OPT_INDENT_2).decode())
    if problems:
        raise ValidationFailed(problems)
    if not as_json:
        checked = sum(checker.counts.values())
        detail = ", ".join(
            f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(checker.counts.items())
        )
        click.echo(f"ok: {checked} file{'s' if checked != 1 else ''} valid ({detail or 'none'})")
