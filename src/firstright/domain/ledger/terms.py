"""The money terms in force over time: price, revenue_share and commitment clauses.

Time is cut into *segments* at every instant where the set of clauses in force can change (a
contract version starts or ends, a clause's ``effective`` bound, a commitment period's start or
end). Inside one segment the terms are constant, so usage is rated per (month, segment) group
instead of per record. Segment ``s`` covers ``[boundary[s-1], boundary[s])`` in epoch
microseconds (segment 0 is everything before the first boundary).

A revenue share or a commitment keeps its identity across contract versions while its id and
parameters stay the same (``identity``), so tiers, caps and drawdown accumulate over versions
that merely repeat it.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from firstright.domain.contracts.model import (
    Clause,
    CommitmentClause,
    Contract,
    PriceClause,
    RevenueShareClause,
    Selector,
)
from firstright.domain.contracts.versions import ContractSet

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(moment: datetime) -> int:
    assert moment.tzinfo is not None
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def clause_in_force(contract: Contract, clause: Clause, at: datetime) -> bool:
    start = clause.effective.from_
    until = clause.effective.until
    return (start is None or start <= at) and (until is None or at < until)


@dataclass(frozen=True, slots=True)
class SegmentTerms:
    """The money clauses in force in one segment, in contract-id then clause order."""

    prices: tuple[tuple[str, PriceClause], ...] = ()
    shares: tuple[tuple[str, RevenueShareClause], ...] = ()
    commitments: tuple[tuple[str, CommitmentClause], ...] = ()
    cloud_owner: dict[str, str] = field(default_factory=dict)


def identity(contract_id: str, clause: RevenueShareClause | CommitmentClause) -> str:
    return f"{contract_id}|{clause.id}|{clause.params.model_dump_json()}"


class MoneyTerms:
    """Segments of constant terms, built once per settlement from a contract set."""

    def __init__(self, contracts: ContractSet) -> None:
        self.contracts = contracts
        instants: set[int] = set()
        parties: set[str] = set()
        for contract in contracts:
            parties.update(contract.parties)
            instants.add(to_us(contract.effective_from))
            if contract.effective_until is not None:
                instants.add(to_us(contract.effective_until))
            for clause in contract.clauses:
                if clause.effective.from_ is not None:
                    instants.add(to_us(clause.effective.from_))
                if clause.effective.until is not None:
                    instants.add(to_us(clause.effective.until))
                if isinstance(clause, CommitmentClause):
                    instants.add(to_us(clause.params.period_start))
                    instants.add(to_us(clause.params.period_end))
        self.boundaries_us: tuple[int, ...] = tuple(sorted(instants))
        self.parties: frozenset[str] = frozenset(parties)
        self._segments: list[SegmentTerms] = [
            self._terms_at(self.segment_instant(s)) for s in range(len(self.boundaries_us) + 1)
        ]

    @property
    def segment_count(self) -> int:
        return len(self._segments)

    def segment_of_us(self, occurred_us: int) -> int:
        return bisect_right(self.boundaries_us, occurred_us)

    def segment_instant(self, segment: int) -> datetime:
        """An instant inside the segment (its start; just before the first boundary for 0)."""
        if not self.boundaries_us:
            return _EPOCH
        if segment == 0:
            return from_us(self.boundaries_us[0] - 1)
        return from_us(self.boundaries_us[segment - 1])

    def segment_start(self, segment: int) -> datetime | None:
        return None if segment == 0 else from_us(self.boundaries_us[segment - 1])

    def terms(self, segment: int) -> SegmentTerms:
        return self._segments[segment]

    def _terms_at(self, at: datetime) -> SegmentTerms:
        prices: list[tuple[str, PriceClause]] = []
        shares: list[tuple[str, RevenueShareClause]] = []
        commitments: list[tuple[str, CommitmentClause]] = []
        owner: dict[str, str] = {}
        for contract in self.contracts.in_force_at(at):
            for party_id, party in contract.parties.items():
                for cloud in party.clouds:
                    owner.setdefault(cloud, party_id)
            for clause in contract.clauses:
                if not clause_in_force(contract, clause, at):
                    continue
                if isinstance(clause, PriceClause):
                    prices.append((contract.key, clause))
                elif isinstance(clause, RevenueShareClause):
                    shares.append((contract.contract_id, clause))
                elif isinstance(clause, CommitmentClause):
                    commitments.append((contract.contract_id, clause))
        return SegmentTerms(tuple(prices), tuple(shares), tuple(commitments), owner)


def selector_matches(
    selector: Selector, *, channel: str | None, product: str | None, tenant: str | None
) -> bool:
    """Does a usage or revenue group fall under ``selector``? Empty lists match anything;
    ``workloads`` and ``categories`` match the group's product or channel."""
    if selector.channels and channel not in selector.channels:
        return False
    if selector.products and product not in selector.products:
        return False
    if selector.customers and tenant not in selector.customers:
        return False
    for names in (selector.workloads, selector.categories):
        if names and product not in names and channel not in names:
            return False
    return True


def describe_selector(selector: Selector) -> str:
    parts = [
        f"{name}={','.join(values)}"
        for name, values in (
            ("workloads", selector.workloads),
            ("categories", selector.categories),
            ("channels", selector.channels),
            ("products", selector.products),
            ("customers", selector.customers),
        )
        if values
    ]
    return " ".join(parts) if parts else "all"
