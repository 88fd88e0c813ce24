"""Ledger accounts. Names follow beancount's rules so an export needs no translation.

Every obligation between two parties is booked in both parties' books at once (four postings):

    Assets:Receivable:<Payee>:<Payer>        +amount   the payee is owed
    Income:<Kind>:<Payee>:<Payer>            -amount   and earned it
    Expenses:<Kind>:<Payer>:<Payee>          +amount   the payer spent it
    Liabilities:Payable:<Payer>:<Payee>      -amount   and owes it

so each party's sub-ledger balances on its own. Commitment drawdown is a memo: it moves
``Assets:CommitmentDrawn:<Payer>:<Payee>`` against ``Equity:CommitmentDrawn:<Payer>:<Payee>`` and
never touches what anyone owes. The net position of a pair is the difference of their
receivables from each other.
"""

from __future__ import annotations

import re

_PARTY = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


def party_component(party: str) -> str:
    """A party id as a beancount account component: ``open_ai`` -> ``Open-ai`` (injective)."""
    assert _PARTY.match(party), f"not a party id: {party!r}"
    return party[0].upper() + party[1:].replace("_", "-")


def receivable(payee: str, payer: str) -> str:
    return f"Assets:Receivable:{party_component(payee)}:{party_component(payer)}"


def payable(payer: str, payee: str) -> str:
    return f"Liabilities:Payable:{party_component(payer)}:{party_component(payee)}"


def income(kind_name: str, payee: str, payer: str) -> str:
    return f"Income:{kind_name}:{party_component(payee)}:{party_component(payer)}"


def expense(kind_name: str, payer: str, payee: str) -> str:
    return f"Expenses:{kind_name}:{party_component(payer)}:{party_component(payee)}"


def commitment_drawn(payer: str, payee: str) -> tuple[str, str]:
    """The memo pair (asset, equity) tracking how much of a commitment has been drawn."""
    suffix = f"{party_component(payer)}:{party_component(payee)}"
    return f"Assets:CommitmentDrawn:{suffix}", f"Equity:CommitmentDrawn:{suffix}"
