"""The clauses besides the first refusal that decide the non-ROFR gates (R19, R20).

They are evaluated independently of the first-refusal state: API exclusivity (a workload class
runs only on one platform, with customer-segment exceptions) decides workload placements and any
third-party contract that names such a workload; ship-first (a first launch goes to the holder's
platform unless the holder cannot and/or chooses not to support it) decides launches. The parse
of ship-first's escape is a contract parameter and every decision names the one it used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from firstright.domain.rofr.decision import Explanation
from firstright.domain.rofr.states import Gate

EscapeParse = Literal["conjunctive", "disjunctive"]

ESCAPE_PARSES: dict[str, EscapeParse] = {
    "cannot_and_declines": "conjunctive",
    "cannot_and_chooses_not": "conjunctive",
    "cannot_or_declines": "disjunctive",
    "cannot_or_chooses_not": "disjunctive",
}
"""Spellings of the ship-first escape a contract may use, and how each is read."""


@dataclass(frozen=True, slots=True)
class ApiExclusivity:
    clause_id: str
    platform: str
    workloads: frozenset[str]
    """Workloads bound to the platform; empty means every workload."""
    exceptions: frozenset[str] = frozenset()
    """Customer segments that may be served anywhere (e.g. national security)."""
    until: datetime | None = None
    until_event: str | None = None
    """A named event that ends the clause (e.g. ``agi_verified_by_expert_panel``); it has not
    happened while the clause is in the contract."""


@dataclass(frozen=True, slots=True)
class ShipFirst:
    clause_id: str
    platform: str
    escape: str
    """The escape as the contract spells it (a key of :data:`ESCAPE_PARSES`)."""
    interpretation_flag: str | None = None

    @property
    def parse(self) -> EscapeParse:
        return ESCAPE_PARSES[self.escape]


@dataclass(frozen=True, slots=True)
class CapabilityAnswer:
    """The holder's latest answer on supporting a launch's capabilities."""

    at: datetime
    can_support: bool
    chooses_to_support: bool
    committed_date: str | None = None


def judge_api_exclusivity(
    clause: ApiExclusivity,
    *,
    party: str,
    workload: str | None,
    customer_segment: str | None,
    at: datetime,
) -> tuple[Gate, Explanation] | None:
    """The clause's answer for one placement, or None when the clause does not speak to it."""
    if workload is None or (clause.workloads and workload not in clause.workloads):
        return None
    if clause.until is not None and at >= clause.until:
        return None
    inputs = {
        "party": party,
        "workload": workload,
        "customer_segment": customer_segment or "-",
        "platform": clause.platform,
    }
    if party == clause.platform:
        gate, reason = Gate.APPROVE, f"{workload} runs on {clause.platform}, the bound platform"
    elif customer_segment is not None and customer_segment in clause.exceptions:
        gate = Gate.APPROVE
        reason = f"exception {customer_segment}: {workload} may run on any cloud for this segment"
    else:
        gate = Gate.BLOCK
        reason = f"{clause.clause_id}: {workload} runs only on {clause.platform}"
        if clause.until_event:
            reason += f" until {clause.until_event}"
    return gate, Explanation(
        clause_id=clause.clause_id,
        rule_ids=("R19",),
        result=gate.value,
        reason=reason,
        inputs=inputs,
    )


def judge_ship_first(
    clause: ShipFirst,
    *,
    party: str,
    first_launch: bool,
    capability: CapabilityAnswer | None,
) -> tuple[Gate, Explanation]:
    """Whether a launch may go first on ``party`` (R20)."""
    parse = clause.parse
    inputs = {
        "party": party,
        "first_launch": str(first_launch).lower(),
        "platform": clause.platform,
        "escape": clause.escape,
        "escape_parse": parse,
        "can_support": "-" if capability is None else str(capability.can_support).lower(),
        "chooses_to_support": (
            "-" if capability is None else str(capability.chooses_to_support).lower()
        ),
    }
    if clause.interpretation_flag:
        inputs["interpretation_flag"] = clause.interpretation_flag
    if not first_launch:
        gate, reason = Gate.APPROVE, "not a first launch; ship-first does not apply"
    elif party == clause.platform:
        gate, reason = Gate.APPROVE, f"first launch on {clause.platform}"
    elif capability is None:
        gate, reason = (
            Gate.BLOCK,
            f"no capability answer from the holder; ship first on {clause.platform}",
        )
    else:
        cannot = not capability.can_support
        declines = not capability.chooses_to_support
        met = (cannot and declines) if parse == "conjunctive" else (cannot or declines)
        joiner = "AND" if parse == "conjunctive" else "OR"
        facts = (
            f"{'cannot' if cannot else 'can'} support, "
            f"{'chooses not to' if declines else 'chooses to'}"
        )
        if met:
            gate, reason = Gate.APPROVE, f"{facts}: escape (cannot {joiner} chooses not to) met"
        else:
            gate = Gate.BLOCK
            reason = (
                f"{facts}: escape (cannot {joiner} chooses not to) not met; "
                f"ship first on {clause.platform}"
            )
    return gate, Explanation(
        clause_id=clause.clause_id,
        rule_ids=("R20", "R19"),
        result=gate.value,
        reason=reason,
        inputs=inputs,
    )
