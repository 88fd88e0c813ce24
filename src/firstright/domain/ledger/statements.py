"""Statements: what one party owes another for a period, line by line, and the net.

A statement covers one pair of parties and the entries booked in the period's months between
them (in either direction). ``COMMIT_DRAWDOWN`` lines are shown but move no money. The net
position says who pays whom: ``a_owes_b - b_owes_a``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from firstright.domain.ledger.entries import Entry
from firstright.domain.ledger.periods import Period
from firstright.domain.money import micros_to_decimal


@dataclass(frozen=True, slots=True)
class StatementLine:
    entry_id: str
    period: str
    about_period: str
    why: str
    kind: str
    payer: str
    payee: str
    contract: str | None
    clause_id: str | None
    basis: str
    quantity: int
    unit: str
    rate: str
    amount_micros: int
    moves_money: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "entry_id": self.entry_id,
            "period": self.period,
            "about_period": self.about_period,
            "why": self.why,
            "kind": self.kind,
            "payer": self.payer,
            "payee": self.payee,
            "contract": self.contract,
            "clause_id": self.clause_id,
            "basis": self.basis,
            "quantity": self.quantity,
            "unit": self.unit,
            "rate": self.rate,
            "amount_micros": self.amount_micros,
            "amount": f"{micros_to_decimal(self.amount_micros):f}",
            "moves_money": self.moves_money,
        }


@dataclass(frozen=True, slots=True)
class Statement:
    period: str
    party_a: str
    party_b: str
    currency: str
    lines: tuple[StatementLine, ...]
    a_owes_b_micros: int
    b_owes_a_micros: int

    @property
    def net_micros(self) -> int:
        """Positive: ``party_a`` pays ``party_b``; negative: the other way."""
        return self.a_owes_b_micros - self.b_owes_a_micros

    @property
    def net_payer(self) -> str | None:
        if self.net_micros == 0:
            return None
        return self.party_a if self.net_micros > 0 else self.party_b

    @property
    def net_payee(self) -> str | None:
        if self.net_micros == 0:
            return None
        return self.party_b if self.net_micros > 0 else self.party_a

    def involves(self, party: str) -> bool:
        return party in (self.party_a, self.party_b)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "parties": [self.party_a, self.party_b],
            "currency": self.currency,
            "lines": [line.to_json() for line in self.lines],
            "owed_micros": {
                f"{self.party_a}->{self.party_b}": self.a_owes_b_micros,
                f"{self.party_b}->{self.party_a}": self.b_owes_a_micros,
            },
            "net": {
                "payer": self.net_payer,
                "payee": self.net_payee,
                "amount_micros": abs(self.net_micros),
                "amount": f"{micros_to_decimal(abs(self.net_micros)):f}",
            },
        }


def build_statements(period: Period, entries: Iterable[Entry]) -> list[Statement]:
    """One statement per pair of parties with entries booked in ``period``, sorted by pair."""
    months = set(period.months)
    by_pair: dict[tuple[str, str, str], list[Entry]] = {}
    for entry in entries:
        if entry.period not in months:
            continue
        a, b = sorted((entry.line.payer, entry.line.payee))
        by_pair.setdefault((a, b, entry.line.currency), []).append(entry)
    statements: list[Statement] = []
    for (a, b, currency), found in sorted(by_pair.items()):
        found.sort(
            key=lambda e: (e.period, e.line.kind.value, e.line.clause_id or "", e.line.key(), e.seq)
        )
        lines = tuple(
            StatementLine(
                entry_id=e.entry_id,
                period=e.period,
                about_period=e.line.about_period,
                why=e.why.value,
                kind=e.line.kind.value,
                payer=e.line.payer,
                payee=e.line.payee,
                contract=e.line.contract,
                clause_id=e.line.clause_id,
                basis=e.line.basis,
                quantity=e.quantity,
                unit=e.line.unit,
                rate=e.line.rate,
                amount_micros=e.amount_micros,
                moves_money=e.line.kind.moves_money,
            )
            for e in found
        )
        a_owes = sum(x.amount_micros for x in lines if x.moves_money and x.payer == a)
        b_owes = sum(x.amount_micros for x in lines if x.moves_money and x.payer == b)
        statements.append(Statement(period.label, a, b, currency, lines, a_owes, b_owes))
    return statements
