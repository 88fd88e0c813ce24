"""Load contract bundles from files and directories into a ``ContractSet``.

A path is a bundle file (``.yaml`` / ``.yml``, one contract version each) or a directory searched
recursively for such files (in sorted order, hidden entries skipped). Every file is read with
``adapters.yaml_source`` (safe, limited, positioned), validated against ``Contract`` and checked
with ``domain.contracts.rules``. Problems of all files are collected and raised together as one
``ValidationFailed``, each as ``FILE:LINE:COL: message``, so a user fixes a directory in one pass.

The same ``(contract_id, version)`` in two files is fine when the content is equal and an error
naming both files otherwise; two versions of one contract taking effect at the same instant are an
error too. Nothing is returned unless every file is valid.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from firstright.adapters.yaml_source import (
    YamlDocument,
    load_yaml_file,
    problems_of,
    validate_document,
)
from firstright.domain.contracts.model import Contract
from firstright.domain.contracts.rules import contract_problems
from firstright.domain.contracts.versions import ContractSet
from firstright.errors import Problem, SourceError, ValidationFailed
from firstright.limits import FILES_PER_CHECK_MAX

YAML_SUFFIXES = (".yaml", ".yml")


def yaml_files(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """The YAML files named by ``paths``: files as given, directories searched recursively."""
    found: list[Path] = []
    for entry in paths:
        path = Path(entry)
        if path.is_dir():
            for dirpath, dirnames, filenames in os.walk(path, followlinks=True):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                found.extend(
                    Path(dirpath) / name
                    for name in sorted(filenames)
                    if name.endswith(YAML_SUFFIXES) and not name.startswith(".")
                )
                if len(found) > FILES_PER_CHECK_MAX:
                    break
        elif path.exists():
            found.append(path)
        else:
            raise SourceError(os.fspath(path), "no such file or directory")
        if len(found) > FILES_PER_CHECK_MAX:
            raise SourceError(
                os.fspath(path), f"more than {FILES_PER_CHECK_MAX} files to read in one run"
            )
    return found


def check_contract_document(doc: YamlDocument) -> Contract:
    """Validate one parsed bundle: the model, then the cross-field rules, with positions."""
    contract = validate_document(doc, Contract)
    problems = [doc.problem(path, message) for path, message in contract_problems(contract)]
    if problems:
        raise ValidationFailed(sorted(problems, key=lambda p: (p.line or 0, p.column or 0)))
    return contract


def load_contract_file(path: str | os.PathLike[str]) -> Contract:
    """One bundle file as a valid ``Contract`` (raises ``SourceError`` / ``ValidationFailed``)."""
    return check_contract_document(load_yaml_file(path))


def load_contracts(paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str]) -> ContractSet:
    """Every bundle under ``paths`` as one ``ContractSet``; raises ``ValidationFailed`` listing
    the problems of every file when any is invalid."""
    if isinstance(paths, str | os.PathLike):
        paths = [paths]
    problems: list[Problem] = []
    loaded: list[tuple[Contract, YamlDocument]] = []
    for file in yaml_files(paths):
        try:
            doc = load_yaml_file(file)
            loaded.append((check_contract_document(doc), doc))
        except (SourceError, ValidationFailed) as error:
            problems.extend(problems_of(error))
    problems.extend(cross_file_problems(loaded))
    if problems:
        raise ValidationFailed(problems)
    return ContractSet(contract for contract, _ in loaded)


def cross_file_problems(loaded: list[tuple[Contract, YamlDocument]]) -> list[Problem]:
    """Problems between files: one ``contract_id@version`` with two contents, or two versions
    of one contract taking effect at the same instant."""
    problems: list[Problem] = []
    by_key: dict[str, tuple[Contract, YamlDocument]] = {}
    by_start: dict[tuple[str, object], tuple[Contract, YamlDocument]] = {}
    for contract, doc in loaded:
        seen = by_key.get(contract.key)
        if seen is not None:
            if seen[0] != contract:
                problems.append(
                    doc.problem(
                        ("version",),
                        f"contract {contract.key} is also defined in {seen[1].file} "
                        "with different content",
                    )
                )
            continue
        by_key[contract.key] = (contract, doc)
        start = (contract.contract_id, contract.effective_from)
        other = by_start.get(start)
        if other is not None:
            problems.append(
                doc.problem(
                    ("effective_from",),
                    f"{contract.key} takes effect at the same instant as "
                    f"{other[0].key} in {other[1].file}",
                )
            )
        else:
            by_start[start] = (contract, doc)
    return problems
