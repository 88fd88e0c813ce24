"""All versions of all contracts, and which version is in force at an instant.

A version of ``contract_id`` is in force from its ``effective_from`` until the next version of the
same id takes effect (or until its own ``effective_until``, whichever is first). At an instant the
set therefore holds at most one version per contract id. Two versions of one id with the same
``effective_from`` are ambiguous and refused; the same ``(contract_id, version)`` given twice is
accepted when the content is equal and refused otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import pairwise

from firstright.domain.contracts.model import Contract
from firstright.errors import ConflictError


class ContractSet:
    """An immutable collection of contract versions, ordered by id then effective date."""

    __slots__ = ("_by_id", "_by_key")

    def __init__(self, contracts: Iterable[Contract] = ()) -> None:
        by_key: dict[str, Contract] = {}
        for contract in contracts:
            known = by_key.get(contract.key)
            if known is not None and known != contract:
                raise ConflictError(
                    f"contract {contract.key} is given twice with different content"
                )
            by_key[contract.key] = contract
        by_id: dict[str, list[Contract]] = {}
        for contract in by_key.values():
            by_id.setdefault(contract.contract_id, []).append(contract)
        for contract_id, versions in by_id.items():
            versions.sort(key=lambda c: (c.effective_from, c.version))
            for earlier, later in pairwise(versions):
                if earlier.effective_from == later.effective_from:
                    raise ConflictError(
                        f"versions {earlier.version!r} and {later.version!r} of {contract_id} "
                        f"take effect at the same instant {later.effective_from.isoformat()}"
                    )
        self._by_key = by_key
        self._by_id = {cid: tuple(by_id[cid]) for cid in sorted(by_id)}

    def __iter__(self) -> Iterator[Contract]:
        for versions in self._by_id.values():
            yield from versions

    def __len__(self) -> int:
        return len(self._by_key)

    def __contains__(self, key: object) -> bool:
        return key in self._by_key

    def contract_ids(self) -> list[str]:
        return list(self._by_id)

    def versions(self, contract_id: str) -> list[Contract]:
        """Every version of ``contract_id``, oldest first (empty if unknown)."""
        return list(self._by_id.get(contract_id, ()))

    def get(self, key: str) -> Contract | None:
        """The version named ``"contract_id@version"``, or None."""
        return self._by_key.get(key)

    def in_force_at(self, at: datetime) -> list[Contract]:
        """The version of each contract in force at ``at`` (an aware instant), by contract id."""
        assert at.tzinfo is not None, "in_force_at needs an aware datetime"
        found: list[Contract] = []
        for versions in self._by_id.values():
            current = version_in_force(versions, at)
            if current is not None:
                found.append(current)
        return found


def version_in_force(versions: Iterable[Contract], at: datetime) -> Contract | None:
    """The latest version with ``effective_from <= at``, unless it ended (``effective_until``)."""
    latest: Contract | None = None
    for contract in versions:
        if contract.effective_from <= at and (
            latest is None or contract.effective_from > latest.effective_from
        ):
            latest = contract
    if latest is None or (latest.effective_until is not None and at >= latest.effective_until):
        return None
    return latest
