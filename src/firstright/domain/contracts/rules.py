"""Cross-field rules of one contract version, beyond what the pydantic model checks per object.

``contract_problems(contract)`` returns ``(path, message)`` pairs; the path is a tuple of keys and
indices into the bundle as written, so the loader can turn each into ``FILE:LINE:COL``. The rules:

- clause ids are unique within a version;
- every id in ``overrides`` names another clause of the same version, and the override graph has
  no cycle;
- a ``carve_out`` / ``exception`` overrides only clauses it can lift: ``exclusivity``,
  ``first_refusal``, ``ship_first``; any other clause overrides only clauses of its own kind;
- every party a clause names (holder, owner, payer, payee, licensor, licensee, seller, buyer,
  approved_by) is declared under ``parties``; the two sides of a clause are different parties;
- the holder of a ``first_refusal`` operates at least one cloud (its providers are what the right
  protects);
- a clause whose ``effective.until`` is not after the version's ``effective_from`` is never in
  force, and ``effective_until`` comes after ``effective_from``.
"""

from __future__ import annotations

from collections.abc import Iterator

from firstright.domain.contracts.model import (
    Clause,
    CommitmentClause,
    Contract,
    ExclusivityClause,
    ExemptionClause,
    FirstRefusalClause,
    IpLicenseClause,
    PriceClause,
    RevenueShareClause,
    ShipFirstClause,
)

RulePath = tuple[str | int, ...]
RuleProblem = tuple[RulePath, str]

OVERRIDABLE_BY_EXEMPTION = frozenset({"exclusivity", "first_refusal", "ship_first"})
"""Clause kinds a carve-out or exception can lift or widen."""


def contract_problems(contract: Contract) -> list[RuleProblem]:
    """Every cross-field problem of one contract version, in file order."""
    problems: list[RuleProblem] = []
    if contract.effective_until is not None and contract.effective_until <= contract.effective_from:
        problems.append((("effective_until",), "effective_until must be after effective_from"))
    problems.extend(_unique_ids(contract))
    problems.extend(_overrides(contract))
    problems.extend(_parties(contract))
    problems.extend(_effective(contract))
    return problems


def _unique_ids(contract: Contract) -> Iterator[RuleProblem]:
    first: dict[str, int] = {}
    for index, clause in enumerate(contract.clauses):
        if clause.id in first:
            yield (
                ("clauses", index, "id"),
                f"duplicate clause id {clause.id!r} (first used by clauses[{first[clause.id]}])",
            )
        else:
            first[clause.id] = index


def _overrides(contract: Contract) -> Iterator[RuleProblem]:
    by_id = {clause.id: clause for clause in contract.clauses}
    for index, clause in enumerate(contract.clauses):
        for position, target_id in enumerate(clause.overrides):
            path: RulePath = ("clauses", index, "overrides", position)
            target = by_id.get(target_id)
            if target is None:
                yield path, f"overrides unknown clause {target_id!r}"
            elif target_id == clause.id:
                yield path, "a clause cannot override itself"
            elif isinstance(clause, ExemptionClause):
                if target.kind not in OVERRIDABLE_BY_EXEMPTION:
                    allowed = ", ".join(sorted(OVERRIDABLE_BY_EXEMPTION))
                    yield (
                        path,
                        f"a {clause.kind} cannot override {target_id!r} of kind {target.kind} "
                        f"(only {allowed})",
                    )
            elif target.kind != clause.kind:
                yield (
                    path,
                    f"a {clause.kind} clause can only override another {clause.kind}, "
                    f"not {target_id!r} of kind {target.kind}",
                )
    yield from _override_cycles(contract)


def _override_cycles(contract: Contract) -> Iterator[RuleProblem]:
    edges = {clause.id: list(clause.overrides) for clause in contract.clauses}
    index_of = {clause.id: i for i, clause in enumerate(contract.clauses)}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    reported: set[str] = set()

    def visit(node: str, trail: list[str]) -> Iterator[RuleProblem]:
        state[node] = 1
        for target in edges.get(node, []):
            if target not in edges or target == node:
                continue
            if state.get(target) == 1:
                cycle = [*trail[trail.index(target) :], node, target]
                if target not in reported:
                    reported.add(target)
                    yield (
                        ("clauses", index_of[node], "overrides"),
                        f"overrides form a cycle: {' -> '.join(cycle)}",
                    )
            elif state.get(target) is None:
                yield from visit(target, [*trail, node])
        state[node] = 2

    for clause in contract.clauses:
        if state.get(clause.id) is None:
            yield from visit(clause.id, [])


def _sides(clause: Clause) -> list[tuple[str, str]]:
    """The (field, party) pairs a clause names."""
    if isinstance(clause, ExclusivityClause | FirstRefusalClause | ShipFirstClause):
        return [("holder", clause.holder), ("owner", clause.owner)]
    if isinstance(clause, CommitmentClause | RevenueShareClause):
        return [("payer", clause.payer), ("payee", clause.payee)]
    if isinstance(clause, IpLicenseClause):
        return [("licensor", clause.licensor), ("licensee", clause.licensee)]
    if isinstance(clause, PriceClause):
        return [("seller", clause.seller), ("buyer", clause.buyer)]
    assert isinstance(clause, ExemptionClause)
    return [("approved_by", clause.approved_by)] if clause.approved_by else []


def _parties(contract: Contract) -> Iterator[RuleProblem]:
    declared = ", ".join(sorted(contract.parties))
    for index, clause in enumerate(contract.clauses):
        sides = _sides(clause)
        for name, party in sides:
            if party not in contract.parties:
                yield (
                    ("clauses", index, name),
                    f"party {party!r} is not declared under parties ({declared})",
                )
        if len(sides) == 2 and sides[0][1] == sides[1][1]:
            yield (
                ("clauses", index, sides[1][0]),
                f"{sides[0][0]} and {sides[1][0]} are the same party {sides[0][1]!r}",
            )
        if (
            isinstance(clause, FirstRefusalClause)
            and clause.holder in contract.parties
            and not contract.clouds_of(clause.holder)
        ):
            yield (
                ("clauses", index, "holder"),
                f"the first-refusal holder {clause.holder!r} has no clouds; "
                "declare them under parties",
            )


def _effective(contract: Contract) -> Iterator[RuleProblem]:
    for index, clause in enumerate(contract.clauses):
        until = clause.effective.until
        if until is not None and until <= contract.effective_from:
            yield (
                ("clauses", index, "effective", "until"),
                "the clause ends before its contract version takes effect, so it is never in force",
            )
