"""Contract what-if: the same demand placed under two sets of contracts, and what changed.

    result = compare(requests, side_a, side_b)            # Side = label + ContractSet
    result.to_json()                                      # `firstright whatif --json`

Each request is placed on the demo market (the shipped catalogs plus the assumed offers of
``services/demo_capacity.py``) at its own instant under each side, then the two answers are
compared: the cloud, the cost, the time to capacity and the clauses that made the difference.

Sides. A directory is used as loaded: each request meets the version in force at its instant. A
single version file is taken to govern the whole demand: its ``effective_from`` moves back to the
earliest request (its clauses keep their own dates: a right that starts in 2025 does not bind a
2019 request). That is the question "what if these terms had applied?".

Time to capacity. A request whose placement owes a first refusal and goes to someone other than
the holder waits the right's exercise period (the holder may answer on the last day); a request
placed on the holder's cloud, or owing no right, has its capacity at once. (The demo's desk shows
what a holder that answers at once does instead.)

Commitments. By default every commitment counts as on track (drawn by spend outside the demand,
see ``commitments_on_track``), so a true-up does not pull capacity to the committed cloud; with
``commitments_open=True`` the full amounts are still to be drawn and shape the choice.

Causes. For each request that differs, the clauses cited by one side's trace and not by the
other's, with their rules and results — e.g. ``rofr-new-capacity`` (first_refusal.applies) on
side A only, or ``us-gov-national-security`` (exception.lift) on side B only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from firstright.domain.contracts.model import Contract, FirstRefusalClause
from firstright.domain.contracts.trace import TraceStep
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.market.catalog import Market
from firstright.domain.money import micros_to_decimal
from firstright.domain.placement.answer import PlacementAnswer
from firstright.domain.placement.request import PlacementRequest
from firstright.errors import InputError, Problem, ValidationFailed
from firstright.services import demo_capacity
from firstright.services.demo_desk import OFFEROR_PARTY

PERCENT = Decimal("0.1")


@dataclass(frozen=True, slots=True)
class Side:
    label: str
    contracts: ContractSet


def load_side(path: str | Path, requests: Sequence[PlacementRequest]) -> Side:
    """A side from a contract directory (as loaded) or one version file (governing all)."""
    from firstright.services.contract_loader import load_contracts  # noqa: PLC0415 - edge

    target = Path(path)
    contracts = load_contracts([target])
    if len(contracts) == 0:
        raise ValidationFailed([Problem(str(target), "no contract bundle found")])
    if target.is_dir():
        return Side(label=target.name, contracts=contracts)
    return governing_side(list(contracts), requests)


def governing_side(versions: Sequence[Contract], requests: Sequence[PlacementRequest]) -> Side:
    """A side where ``versions`` govern the whole demand (moved back to its earliest request)."""
    earliest = min((r.at for r in requests if r.at is not None), default=None)
    if earliest is None:
        raise InputError("the demand's requests need an 'at' each")
    start = min(earliest, *(c.effective_from for c in versions)) - timedelta(days=1)
    rebased = [
        c.model_copy(update={"effective_from": start, "effective_until": None}) for c in versions
    ]
    label = ", ".join(c.key for c in versions)
    return Side(label=label, contracts=ContractSet(rebased))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One request under one side."""

    answer: PlacementAnswer
    wait_days: int
    contract: str | None

    @property
    def provider(self) -> str | None:
        return None if self.answer.choice is None else self.answer.choice.offer.provider

    @property
    def total_micros(self) -> int:
        return 0 if self.answer.choice is None else self.answer.choice.total_micros

    def to_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "contract": self.contract,
            "total_usd": str(micros_to_decimal(self.total_micros)),
            "days_to_capacity": self.wait_days,
            "first_refusal": self.answer.first_refusal is not None,
            "clause_ids": demo_capacity.clause_ids_of(self.answer),
            "why": demo_capacity.why(self.answer),
        }


def _wait_days(answer: PlacementAnswer, contracts: ContractSet) -> int:
    notice = answer.first_refusal
    if notice is None or answer.choice is None:
        return 0
    if answer.choice.offer.provider in notice.holder_providers:
        return 0
    for contract in contracts.in_force_at(answer.at):
        for clause in contract.clauses:
            if isinstance(clause, FirstRefusalClause) and clause.id == notice.clause_id:
                return max(0, clause.params.exercise_period.days)
    return 0


def _place(
    requests: Sequence[PlacementRequest], side: Side, market: Market, commitments_open: bool
) -> list[Outcome]:
    spent = {} if commitments_open else demo_capacity.commitments_on_track(side.contracts)
    answers = demo_capacity.place_demand(requests, side.contracts, market=market, spent_usd=spent)
    outcomes = []
    for answer in answers:
        keys = demo_capacity.contract_keys_of(answer)
        in_force = [c.key for c in side.contracts.in_force_at(answer.at)]
        outcomes.append(
            Outcome(
                answer=answer,
                wait_days=_wait_days(answer, side.contracts),
                contract=keys[0] if keys else (in_force[0] if in_force else None),
            )
        )
    return outcomes


def _share(part: int, whole: int) -> Decimal:
    if whole == 0:
        return Decimal(0)
    return (Decimal(part) * 100 / Decimal(whole)).quantize(PERCENT)


def _aggregate(outcomes: Sequence[Outcome]) -> dict[str, Any]:
    gpus: dict[str, int] = {}
    cost: dict[str, int] = {}
    flows: dict[tuple[str, str], int] = {}
    for outcome in outcomes:
        provider = outcome.provider
        if provider is None:
            continue
        gpus[provider] = gpus.get(provider, 0) + outcome.answer.request.gpus
        cost[provider] = cost.get(provider, 0) + outcome.total_micros
        pair = (outcome.answer.request.party, OFFEROR_PARTY.get(provider, provider))
        flows[pair] = flows.get(pair, 0) + outcome.total_micros
    total_gpus = sum(gpus.values())
    total = sum(cost.values())
    return {
        "total_usd": str(micros_to_decimal(total)),
        "total_micros": total,
        "total_gpus": total_gpus,
        "days_to_capacity": sum(o.wait_days for o in outcomes),
        "requests_waiting": sum(1 for o in outcomes if o.wait_days > 0),
        "by_cloud": [
            {
                "provider": p,
                "gpus": gpus[p],
                "share_pct": str(_share(gpus[p], total_gpus)),
                "total_usd": str(micros_to_decimal(cost[p])),
            }
            for p in sorted(gpus, key=lambda p: (-gpus[p], p))
        ],
        "flows": [
            {"payer": payer, "payee": payee, "amount_usd": str(micros_to_decimal(amount))}
            for (payer, payee), amount in sorted(flows.items(), key=lambda kv: -kv[1])
        ],
    }


def _idle_commitment(step: TraceStep) -> bool:
    """A commitment with nothing left to draw (on track): it shapes nothing."""
    if step.rule != "commitment.effective_price":
        return False
    try:
        return Decimal(step.inputs.get("remaining_usd", "0")) == 0
    except ArithmeticError:
        return False


def _cited(trace: Sequence[TraceStep]) -> dict[str, TraceStep]:
    """The first trace step citing each clause (a step naming several counts for each)."""
    found: dict[str, TraceStep] = {}
    for step in trace:
        if _idle_commitment(step):
            continue
        for clause_id in step.clause_id.split(","):
            found.setdefault(clause_id, step)
    return found


def _causes(a: Outcome, b: Outcome) -> list[dict[str, str]]:
    """Clauses one side cites and the other does not (or cites with another result)."""
    cited_a, cited_b = _cited(a.answer.trace), _cited(b.answer.trace)
    causes = []
    for side, mine, theirs in (("a", cited_a, cited_b), ("b", cited_b, cited_a)):
        for clause_id, step in mine.items():
            other = theirs.get(clause_id)
            if other is not None and (other.rule, other.result) == (step.rule, step.result):
                continue
            rule = step.rule
            causes.append(
                {
                    "side": side,
                    "clause_id": clause_id,
                    "contract": step.contract,
                    "rule": rule,
                    "result": step.result,
                }
            )
    return causes


@dataclass(frozen=True, slots=True)
class WhatIf:
    side_a: Side
    side_b: Side
    a: list[Outcome]
    b: list[Outcome]

    def differences(self) -> list[dict[str, Any]]:
        out = []
        for a, b in zip(self.a, self.b, strict=True):
            if (a.provider, a.total_micros, a.wait_days) == (
                b.provider,
                b.total_micros,
                b.wait_days,
            ):
                continue
            out.append(
                {
                    "request_id": a.answer.request_id,
                    "at": a.answer.at.isoformat(),
                    "gpus": a.answer.request.gpus,
                    "workload": a.answer.request.category or a.answer.request.workload,
                    "a": a.to_json(),
                    "b": b.to_json(),
                    "cost_difference_usd": str(micros_to_decimal(b.total_micros - a.total_micros)),
                    "days_difference": b.wait_days - a.wait_days,
                    "caused_by": _causes(a, b),
                }
            )
        return out

    def share_table(self) -> list[dict[str, str]]:
        agg_a, agg_b = _aggregate(self.a), _aggregate(self.b)
        shares_a = {row["provider"]: Decimal(row["share_pct"]) for row in agg_a["by_cloud"]}
        shares_b = {row["provider"]: Decimal(row["share_pct"]) for row in agg_b["by_cloud"]}
        providers = sorted(set(shares_a) | set(shares_b))
        return [
            {
                "provider": p,
                "a_pct": str(shares_a.get(p, Decimal("0.0"))),
                "b_pct": str(shares_b.get(p, Decimal("0.0"))),
                "difference_pct": str(shares_b.get(p, Decimal(0)) - shares_a.get(p, Decimal(0))),
            }
            for p in providers
        ]

    def to_json(self) -> dict[str, Any]:
        agg_a, agg_b = _aggregate(self.a), _aggregate(self.b)
        differences = self.differences()
        clauses: dict[str, None] = {}
        for diff in differences:
            for cause in diff["caused_by"]:
                clauses.setdefault(f"{cause['contract']}#{cause['clause_id']}", None)
        return {
            "a": {"label": self.side_a.label, **agg_a},
            "b": {"label": self.side_b.label, **agg_b},
            "requests": len(self.a),
            "cost_difference_usd": str(
                micros_to_decimal(agg_b["total_micros"] - agg_a["total_micros"])
            ),
            "days_to_capacity_difference": agg_b["days_to_capacity"] - agg_a["days_to_capacity"],
            "share": self.share_table(),
            "differences": differences,
            "clauses_causing_differences": list(clauses),
        }


def compare(
    requests: Sequence[PlacementRequest],
    side_a: Side,
    side_b: Side,
    *,
    market: Market | None = None,
    commitments_open: bool = False,
) -> WhatIf:
    """Place ``requests`` under both sides and keep both answers per request."""
    if not requests:
        raise InputError("the demand holds no request")
    missing = [i + 1 for i, r in enumerate(requests) if r.at is None]
    if missing:
        raise InputError(f"requests {missing} have no 'at': a what-if needs each request's instant")
    chosen = market if market is not None else demo_capacity.demo_market()
    return WhatIf(
        side_a=side_a,
        side_b=side_b,
        a=_place(requests, side_a, chosen, commitments_open),
        b=_place(requests, side_b, chosen, commitments_open),
    )
