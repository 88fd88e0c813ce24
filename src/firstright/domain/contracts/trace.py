"""One step of a decision's explanation: which clause, which rule, on what inputs, with what result.

Rules are dotted names ``<kind>.<what>``: ``exclusivity.restrict``, ``exclusivity.superseded``,
``exclusivity.intersect``, ``carve_out.lift`` / ``exception.lift`` (the overridden clause does not
apply), ``carve_out.extend`` / ``exception.extend`` (more providers allowed),
``carve_out.bound_exceeded`` / ``exception.bound_exceeded``, ``policy.conflict``,
``first_refusal.applies``, ``first_refusal.exempt``, ``first_refusal.not_in_force``,
``ship_first.applies``, ``ip_license.serve``. ``inputs`` shows the demand fields the clause looked
at and the clause's own parameters; ``result`` says what followed, in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class TraceStep:
    clause_id: str
    contract: str
    """The contract version's key, ``"contract_id@version"``."""
    kind: str
    rule: str
    inputs: Mapping[str, str]
    result: str

    def to_json(self) -> dict[str, Any]:
        return {
            "clause_id": self.clause_id,
            "contract": self.contract,
            "kind": self.kind,
            "rule": self.rule,
            "inputs": dict(self.inputs),
            "result": self.result,
        }

    def render(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.inputs.items())
        return f"{self.contract} {self.clause_id} [{self.rule}] ({shown}) -> {self.result}"
