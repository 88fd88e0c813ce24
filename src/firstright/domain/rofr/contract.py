"""The clauses one first-refusal workflow is judged by, and the scope test (R12).

:class:`RofrContract` is what the machine needs of a contract version: who owns and who holds
the right (the holder's cloud), the first-refusal parameters (:class:`RofrParams`, the
``first_refusal`` clause's params) and the other clauses that decide non-ROFR gates.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from firstright.domain.contracts.model import RofrParams
from firstright.domain.rofr.other_clauses import ApiExclusivity, ShipFirst


@dataclass(frozen=True, slots=True)
class RofrContract:
    contract_key: str
    """``contract_id@version``, cited in every decision."""
    owner: str
    holder: str
    """The holder's cloud (the provider a holder allocation goes to)."""
    params: RofrParams
    clause_id: str = "rofr"
    api_exclusivity: ApiExclusivity | None = None
    ship_first: ShipFirst | None = None

    def in_force(self, at: datetime) -> bool:
        params = self.params
        if params.effective_from is not None and at < params.effective_from:
            return False
        return params.terminated_at is None or at < params.terminated_at


def scope_of(contract: RofrContract, category: str | None, at: datetime) -> str | None:
    """Why the request is out of the right's scope at ``at``, or None when it is covered."""
    params = contract.params
    if category is not None and category in params.scope.exempt:
        return f"category exempt: {category}"
    if category is None or category not in params.scope.covered_categories:
        return f"category not covered: {category or '-'}"
    if params.effective_from is not None and at < params.effective_from:
        return f"right not yet in force (from {params.effective_from.isoformat()})"
    if params.terminated_at is not None and at >= params.terminated_at:
        return f"right terminated at {params.terminated_at.isoformat()}"
    return None
