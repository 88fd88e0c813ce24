"""Journal entries: immutable, balanced by construction, each with a why-code and its clause.

An :class:`Entry` books one movement of one obligation between a payer and a payee. It is built
only by :func:`obligation_entry`, which writes the postings from the amount, so the postings sum
to zero by construction (and ``__post_init__`` asserts it). Entries are never changed: a changed
amount is a new entry for the difference (``CORRECTION``; ``ADJUSTMENT`` when it concerns a closed
period and lands in a later one, naming that period in ``about_period``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from firstright.domain.ledger import accounts
from firstright.limits import LEDGER_POSTINGS_PER_ENTRY_MAX


class Why(StrEnum):
    """Why an entry exists."""

    USAGE = "USAGE"
    """Usage rated at contract price (or list price where no contract price applies)."""
    REV_SHARE = "REV_SHARE"
    """A revenue_share clause's share of the payer's revenue."""
    COMMIT_DRAWDOWN = "COMMIT_DRAWDOWN"
    """Memo: spend counted against a commitment (moves no money)."""
    TRUE_UP = "TRUE_UP"
    """The shortfall of a commitment at the end of its period."""
    CORRECTION = "CORRECTION"
    """A difference booked later in the same (open) period, e.g. usage that arrived late."""
    ADJUSTMENT = "ADJUSTMENT"
    """A difference for a closed period, booked in the next open period."""


class Kind(StrEnum):
    """What an obligation is; an entry's ``kind`` stays the same through corrections."""

    USAGE = "USAGE"
    REV_SHARE = "REV_SHARE"
    COMMIT_DRAWDOWN = "COMMIT_DRAWDOWN"
    TRUE_UP = "TRUE_UP"

    @property
    def account_name(self) -> str:
        return {
            Kind.USAGE: "Usage",
            Kind.REV_SHARE: "RevShare",
            Kind.COMMIT_DRAWDOWN: "CommitmentDrawn",
            Kind.TRUE_UP: "TrueUp",
        }[self]

    @property
    def moves_money(self) -> bool:
        return self is not Kind.COMMIT_DRAWDOWN


@dataclass(frozen=True, slots=True)
class Posting:
    account: str
    amount_micros: int


@dataclass(frozen=True, slots=True)
class Line:
    """What an obligation is about, shown on statements: the clause, basis, quantity and rate."""

    kind: Kind
    about_period: str
    payer: str
    payee: str
    contract: str | None
    clause_id: str | None
    basis: str
    unit: str
    rate: str
    currency: str = "USD"

    def key(self) -> str:
        """The obligation's identity: every entry of one obligation shares it."""
        parts = (
            self.kind.value,
            self.about_period,
            self.payer,
            self.payee,
            self.contract or "",
            self.clause_id or "",
            self.basis,
            self.unit,
            self.rate,
            self.currency,
        )
        return "|".join(parts)


@dataclass(frozen=True, slots=True)
class Entry:
    entry_id: str
    period: str
    """The month the entry is booked in."""
    why: Why
    line: Line
    quantity: int
    amount_micros: int
    seq: int
    """0 for the first entry of an obligation, then 1, 2, ... for corrections."""
    postings: tuple[Posting, ...]

    def __post_init__(self) -> None:
        assert self.postings, "an entry has postings"
        assert len(self.postings) <= LEDGER_POSTINGS_PER_ENTRY_MAX
        assert sum(p.amount_micros for p in self.postings) == 0, "entry does not balance"
        assert self.period >= self.line.about_period, "an entry is never booked before its period"
        assert self.line.payer != self.line.payee, "an obligation needs two parties"
        assert self.seq >= 0

    @property
    def obligation_key(self) -> str:
        return self.line.key()

    def to_json(self) -> dict[str, Any]:
        line = self.line
        return {
            "entry_id": self.entry_id,
            "period": self.period,
            "about_period": line.about_period,
            "why": self.why.value,
            "kind": line.kind.value,
            "payer": line.payer,
            "payee": line.payee,
            "contract": line.contract,
            "clause_id": line.clause_id,
            "basis": line.basis,
            "quantity": self.quantity,
            "unit": line.unit,
            "rate": line.rate,
            "currency": line.currency,
            "amount_micros": self.amount_micros,
            "seq": self.seq,
            "postings": [
                {"account": p.account, "amount_micros": p.amount_micros} for p in self.postings
            ],
        }


def postings_for(line: Line, amount_micros: int) -> tuple[Posting, ...]:
    """The postings of ``amount_micros`` moving from payer to payee for this line."""
    if not line.kind.moves_money:
        asset, equity = accounts.commitment_drawn(line.payer, line.payee)
        return (Posting(asset, amount_micros), Posting(equity, -amount_micros))
    name = line.kind.account_name
    return (
        Posting(accounts.receivable(line.payee, line.payer), amount_micros),
        Posting(accounts.income(name, line.payee, line.payer), -amount_micros),
        Posting(accounts.expense(name, line.payer, line.payee), amount_micros),
        Posting(accounts.payable(line.payer, line.payee), -amount_micros),
    )


def entry_id_for(key: str, seq: int) -> str:
    return hashlib.sha256(f"{key}#{seq}".encode()).hexdigest()[:32]


def obligation_entry(
    line: Line, *, period: str, quantity: int, amount_micros: int, seq: int
) -> Entry:
    """The entry booking ``amount_micros`` of ``line`` in ``period`` (the seq-th of its key)."""
    if period != line.about_period:
        why = Why.ADJUSTMENT
    elif seq > 0:
        why = Why.CORRECTION
    else:
        why = Why(line.kind.value)
    return Entry(
        entry_id=entry_id_for(line.key(), seq),
        period=period,
        why=why,
        line=line,
        quantity=quantity,
        amount_micros=amount_micros,
        seq=seq,
        postings=postings_for(line, amount_micros),
    )
