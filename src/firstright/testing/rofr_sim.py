"""Deterministic simulation of first-refusal workflows (in the manner of TigerBeetle's VOPR).

:func:`simulate` generates, from one seed per workflow, a random contract (mode, trigger, partial
exercise, tolerances, release scope, deadline convention, ...) and a random stream of events on
a virtual clock, chosen with the current state in view (responses near and exactly at the
deadline, gate requests on better and worse terms, signatures with and without approval, noise
events that do not fit the state). It drives :func:`firstright.domain.rofr.machine.step`, firing
timers as the replay does, and checks invariants after every step:

* the machine is total: no event of the vocabulary raises in any state;
* the allocation never exceeds the quantity, and holder and third parties never both get it all;
* an APPROVE of a third-party contract happens only outside the right or inside a release
  window, to the named offeror where required, and never on terms worse for the owner than the
  baseline beyond the tolerance (checked by an independent oracle on price, identity and
  quantity);
* VIOLATION appears only on a signature, and a signature of approved terms is never one;
* replaying the same events reproduces the same decisions and final state;
* monotonicity: a lower third-party price never turns APPROVE into BLOCK, and the same holder
  response sent later is never more timely.

Each failure carries its workflow seed; ``simulate(seed, 1)`` replays it exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from firstright.domain.contracts.model import RofrParams
from firstright.domain.rofr.contract import RofrContract
from firstright.domain.rofr.decision import Decision
from firstright.domain.rofr.events import (
    BonaFide,
    CapacityRequest,
    Event,
    HolderDefinitiveAgreementSigned,
    HolderResponse,
    NoticeDelivered,
    RequestWithdrawn,
    ResponseKind,
    TimerFired,
    TpContractRequest,
    TpContractSigned,
    TpOfferReceived,
    TpTermsChanged,
)
from firstright.domain.rofr.machine import next_timer, open_request, step
from firstright.domain.rofr.outcome import allocation_of
from firstright.domain.rofr.request import RofrRequest
from firstright.domain.rofr.states import RELEASE_STATES, Gate, RofrState
from firstright.domain.rofr.terms import NonCash, TermSet, effective_price

START = datetime(2025, 3, 1, tzinfo=UTC)
EVENTS_PER_WORKFLOW_MAX = 10
PARTIES = ("cloud_x", "cloud_y")


@dataclass(frozen=True, slots=True)
class Failure:
    seed: int
    message: str

    def __str__(self) -> str:
        return f"seed {self.seed}: {self.message} (replay: FIRSTRIGHT_SEED={self.seed})"


@dataclass(slots=True)
class Report:
    workflows: int = 0
    steps: int = 0
    failures: list[Failure] = field(default_factory=list)
    states_seen: set[str] = field(default_factory=set)
    gates: dict[str, int] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------
# Generation


def random_contract(rng: random.Random) -> RofrContract:
    rofo = rng.random() < 0.2
    partial = rng.random() < 0.35
    raw: dict[str, Any] = {
        "mode": "rofo" if rofo else "rofr",
        "trigger": "owner_intent" if rofo or rng.random() < 0.15 else "third_party_offer",
        "scope": {"covered_categories": ["new_capacity"], "exempt": ["owner_built"]},
        "effective_from": "2025-01-21T00:00:00Z",
        "terminated_at": rng.choice([None, "2025-10-28T00:00:00Z", "2025-04-01T00:00:00Z"]),
        "exercise_period": timedelta(days=rng.choice([5, 10, 30])),
        "deadline_inclusive": rng.random() < 0.7,
        "nonconforming_response_is_rejection": rng.random() < 0.25,
        "partial_exercise": "allowed" if partial else "all_or_none",
        "partial_min_fraction": Decimal(rng.choice(["0.25", "0.5"])) if partial else None,
        "release_window": timedelta(days=rng.choice([30, 90])),
        "release_scope": rng.choice(["any_third_party", "named_offeror"]),
        "holder_closing_window": timedelta(days=rng.choice([15, 30])),
        "unmatchable_terms": rng.choice(["cash_equivalent", "flag_for_review", "invalid_trigger"]),
        "terms_order": {
            "price_per_gpu_hour": "lower",
            "start_date": "earlier",
            "commit_months": "lower",
            "sla_pct": "higher",
        },
        "identity_terms": ["gpu_type", "region"],
        "reoffer_tolerance": {
            "price_per_gpu_hour": {"pct": Decimal(rng.choice([0, 0, 2, 5]))},
            "start_date": {"days": rng.choice([0, 30])},
            "commit_months": {"abs": Decimal(0)},
            "sla_pct": {"abs": Decimal(0)},
        },
    }
    if rofo:
        raw["rofo_max_price_pct_of_offered"] = Decimal(rng.choice([100, 105, 110]))
    return RofrContract("sim@1", "lab", "azure", RofrParams.model_validate(raw))


def base_terms(rng: random.Random) -> TermSet:
    return TermSet.of(
        {
            "quantity_gpus": rng.choice([1000, 8000, 100000]),
            "gpu_type": "GB300",
            "region": "us-central",
            "start_date": date(2025, 9, 1),
            "commit_months": 36,
            "price_per_gpu_hour": Decimal("2.50"),
            "sla_pct": Decimal("99.9"),
        }
    )


def vary(rng: random.Random, terms: TermSet, *, quantity: int | None = None) -> TermSet:
    """Perturb a term set: mostly small price moves, sometimes other terms or identity."""
    values = terms.as_dict()
    price = values["price_per_gpu_hour"]
    assert isinstance(price, Decimal)
    values["price_per_gpu_hour"] = price + Decimal(rng.randint(-20, 20)) / 100
    roll = rng.random()
    if roll < 0.1:
        values["region"] = "eu-west"
    elif roll < 0.2:
        start = values["start_date"]
        assert isinstance(start, date)
        values["start_date"] = start + timedelta(days=rng.choice([-10, 10, 40]))
    elif roll < 0.25:
        values["sla_pct"] = Decimal("99.5")
    if quantity is not None:
        values["quantity_gpus"] = quantity
    non_cash = terms.non_cash if rng.random() < 0.8 else None
    return TermSet.of(values, non_cash)


@dataclass(slots=True)
class _World:
    """The generator's view while it builds one workflow."""

    rng: random.Random
    contract: RofrContract
    terms: TermSet
    request: RofrRequest
    now: datetime
    events: list[tuple[datetime, Event]] = field(default_factory=list)


def _next_time(world: _World) -> datetime:
    rng = world.rng
    timer = next_timer(world.request)
    roll = rng.random()
    if timer is not None and roll < 0.25:
        return max(world.now, timer.deadline + rng.choice([timedelta(0), timedelta(seconds=1)]))
    if timer is not None and roll < 0.35:
        return max(world.now, timer.deadline - timedelta(seconds=1))
    return world.now + timedelta(hours=rng.choice([0, 1, 6, 30, 24 * 7, 24 * 40]))


def _event_for(world: _World) -> Event:
    rng = world.rng
    r = world.request
    state = r.state
    baseline = r.baseline or world.terms
    full = r.full_quantity or baseline.quantity_gpus or 1
    party = r.named_offeror if r.named_offeror and rng.random() < 0.75 else rng.choice(PARTIES)
    options: list[Callable[[], Event]] = [
        lambda: TpOfferReceived(
            rng.choice(PARTIES),
            vary(rng, world.terms),
            BonaFide(signed=rng.random() < 0.85),
        ),
        lambda: NoticeDelivered(
            vary(rng, world.terms) if rng.random() < 0.3 else world.terms,
            rng.choice(PARTIES),
            complete=rng.random() < 0.75,
            missing=("offer_documents",),
        ),
        lambda: HolderResponse(
            rng.choice(list(ResponseKind)),
            quantity_gpus=rng.choice([full, full, full // 2, max(1, full // 5)]),
            terms=vary(rng, baseline) if rng.random() < 0.5 else baseline,
        ),
        lambda: TpContractRequest(party, vary(rng, baseline, quantity=_some_quantity(rng, r))),
        lambda: TpContractSigned(party, vary(rng, baseline)),
        lambda: TpTermsChanged(party, vary(rng, baseline)),
        HolderDefinitiveAgreementSigned,
        lambda: CapacityRequest(category=rng.choice(["new_capacity", "owner_built"])),
    ]
    if rng.random() < 0.03:
        return RequestWithdrawn()
    # Follow the workflow most of the time, so deep states are reached.
    if state in (RofrState.INIT, RofrState.NOT_TRIGGERED) and rng.random() < 0.7:
        if world.contract.params.trigger == "owner_intent" and rng.random() < 0.5:
            return CapacityRequest(category="new_capacity")
        return options[0]()
    if state in (RofrState.TRIGGERED, RofrState.NOTICE_INCOMPLETE) and rng.random() < 0.7:
        return options[1]()
    if state is RofrState.OFFER_OPEN and rng.random() < 0.6:
        return options[2]()
    if state in RELEASE_STATES and rng.random() < 0.7:
        approved = r.approvals[-1] if r.approvals else None
        if approved is not None and rng.random() < 0.4:
            return TpContractSigned(approved.party, approved.terms)
        return options[3]()
    if state is RofrState.EXERCISED and rng.random() < 0.4:
        return HolderDefinitiveAgreementSigned()
    return rng.choice(options)()


def _some_quantity(rng: random.Random, request: RofrRequest) -> int:
    available = request.available_quantity or request.full_quantity or 1000
    return max(1, rng.choice([available, available, available // 2, available + 1]))


def generate(
    seed: int, log: list[Stepped] | None = None
) -> tuple[RofrContract, RofrRequest, list[tuple[datetime, Event]]]:
    """The contract, the opened request and the event stream of workflow ``seed`` (``log``
    receives the steps taken while generating: the first run of the workflow)."""
    rng = random.Random(seed)
    contract = random_contract(rng)
    terms = base_terms(rng)
    if rng.random() < 0.15:
        terms = TermSet.of(terms.as_dict(), NonCash("service_credits", Decimal(30_000_000)))
    category = "new_capacity" if rng.random() < 0.9 else "owner_built"
    request = open_request("sim", contract, category=category, quantity_gpus=terms.quantity_gpus)
    world = _World(rng, contract, terms, request, START + timedelta(days=rng.randint(0, 60)))
    for _ in range(rng.randint(3, EVENTS_PER_WORKFLOW_MAX)):
        at = _next_time(world)
        event = _event_for(world)
        world.request, _ = drive(world.request, [(at, event)], log)
        world.now = at
        world.events.append((at, event))
    return contract, request, world.events


# ---------------------------------------------------------------------------------------------
# Driving and checking


@dataclass(frozen=True, slots=True)
class Stepped:
    """One event as processed: the state before it, the decision, the state after."""

    at: datetime
    event: Event
    before: RofrRequest
    decision: Decision
    after: RofrRequest


def fire_due(
    request: RofrRequest, before: datetime, log: list[Stepped] | None = None
) -> RofrRequest:
    """Fire every timer whose deadline is before ``before`` (as the replay does)."""
    while (timer := next_timer(request)) is not None and timer.deadline < before:
        fired = TimerFired(timer)
        after, effects = step(request, fired, timer.deadline)
        if log is not None:
            log.append(Stepped(timer.deadline, fired, request, _decision(effects), after))
        request = after
    return request


def _decision(effects: tuple[object, ...]) -> Decision:
    found = [e for e in effects if isinstance(e, Decision)]
    assert len(found) == 1, "every step yields exactly one decision"
    return found[0]


def drive(
    request: RofrRequest, events: list[tuple[datetime, Event]], log: list[Stepped] | None = None
) -> tuple[RofrRequest, list[Stepped]]:
    steps: list[Stepped] = [] if log is None else log
    for at, event in events:
        request = fire_due(request, at, steps)
        after, effects = step(request, event, at)
        steps.append(Stepped(at, event, request, _decision(effects), after))
        request = after
    return request, steps


def _oracle_approvable(before: RofrRequest, event: TpContractRequest, at: datetime) -> str | None:
    """An independent reading of ROFR.md for a third-party contract request in a release state:
    why it must NOT be approved, or None."""
    params = before.contract.params
    assert before.release_until is not None and before.baseline is not None
    if at > before.release_until:
        return f"after the release window {before.release_until}"
    if (
        params.release_scope == "named_offeror"
        and before.named_offeror is not None
        and event.party != before.named_offeror
    ):
        return f"{event.party} is not the named offeror {before.named_offeror}"
    terms = event.terms or before.baseline
    for name in params.identity_terms:
        if terms.get(name) != before.baseline.get(name):
            return f"identity term {name} differs"
    quantity = terms.quantity_gpus
    available = before.available_quantity
    if quantity is not None and available is not None and quantity > available:
        return f"quantity {quantity} above released {available}"
    base_price = effective_price(before.baseline)
    price = effective_price(terms)
    assert base_price is not None and price is not None
    if params.mode == "rofo" and params.rofo_max_price_pct_of_offered is not None:
        limit = base_price * params.rofo_max_price_pct_of_offered / 100
    else:
        tolerance = params.reoffer_tolerance.get("price_per_gpu_hour")
        pct = tolerance.pct if tolerance is not None and tolerance.pct is not None else Decimal(0)
        limit = base_price + abs(base_price) * pct / 100
    if price > limit:
        return f"price {price} above the limit {limit}"
    return None


def check_workflow(seed: int, report: Report | None = None) -> list[Failure]:
    """Generate workflow ``seed``, run it and check every invariant; the failures found."""
    failures: list[Failure] = []

    def fail(message: str) -> None:
        failures.append(Failure(seed, message))

    try:
        _check(seed, fail, report)
    except Exception as exc:  # the machine must be total: any exception is a finding
        fail(f"{type(exc).__name__}: {exc}")
    return failures


def _check(seed: int, fail: Callable[[str], None], report: Report | None) -> None:
    steps: list[Stepped] = []
    _, request, events = generate(seed, steps)
    final = steps[-1].after
    # Replaying the same events reproduces the state and the decisions.
    final_again, steps_again = drive(request, events)
    if final_again != final or [s.decision for s in steps_again] != [s.decision for s in steps]:
        fail("replay of the same events diverged")
    approved: set[tuple[str, TermSet, int]] = set()
    outside = any(s.after.state is RofrState.NO_ROFR for s in steps)
    for index, s in enumerate(steps):
        d = s.decision
        if report is not None:
            report.states_seen.add(d.state.value)
            if d.gate is not None:
                report.gates[d.gate.value] = report.gates.get(d.gate.value, 0) + 1
        if d.state is RofrState.VIOLATION and s.before.state is not RofrState.VIOLATION:
            if not isinstance(s.event, TpContractSigned):
                fail(f"step {index}: VIOLATION on {s.event.TYPE}")
            elif (s.event.party, s.event.terms, s.before.cycle) in approved and (
                s.before.state in RELEASE_STATES
            ):
                fail(f"step {index}: VIOLATION on a signature of approved terms")
        if not outside:  # outside the right deals are recorded, not limited
            _check_allocation(s, index, fail)
        if isinstance(s.event, TpContractRequest) and d.gate is Gate.APPROVE:
            if s.event.terms is not None:
                approved.add((s.event.party, s.event.terms, s.before.cycle))
            _check_approve(s, index, fail)
            _check_lower_price(s, index, fail)
        if s.before.state in RELEASE_STATES and s.after.state not in RELEASE_STATES:
            approved.clear()
        if isinstance(s.event, HolderResponse):
            _check_later_response(s, index, fail)
    if report is not None:
        report.workflows += 1
        report.steps += len(steps)


def _check_allocation(s: Stepped, index: int, fail: Callable[[str], None]) -> None:
    after = s.after
    full = after.full_quantity
    if full is None:
        return
    holder = after.holder_quantity
    signed = after.signed_quantity
    if holder + signed > full:
        fail(f"step {index}: holder {holder} + third parties {signed} > quantity {full}")
    if after.state is RofrState.CLOSED_HOLDER and signed:
        fail(f"step {index}: closed to the holder after third-party signatures")
    allocation = allocation_of(after)
    if (
        after.state not in (RofrState.NO_ROFR, RofrState.VIOLATION)
        and sum(allocation.values()) > full
    ):
        fail(f"step {index}: allocation {allocation} above quantity {full}")


def _check_approve(s: Stepped, index: int, fail: Callable[[str], None]) -> None:
    before = s.before
    assert isinstance(s.event, TpContractRequest)
    if before.state is RofrState.NO_ROFR:
        return
    if before.state is RofrState.INIT and s.after.state is RofrState.NO_ROFR:
        return
    if before.state not in RELEASE_STATES:
        fail(f"step {index}: APPROVE in {before.state.value}")
        return
    why = _oracle_approvable(before, s.event, s.at)
    if why is not None:
        fail(f"step {index}: APPROVE although {why}")


def _check_lower_price(s: Stepped, index: int, fail: Callable[[str], None]) -> None:
    event = s.event
    assert isinstance(event, TpContractRequest)
    if event.terms is None or event.terms.price is None:
        return
    values = event.terms.as_dict()
    values["price_per_gpu_hour"] = event.terms.price - Decimal("0.05")
    cheaper = replace(event, terms=TermSet.of(values, event.terms.non_cash))
    _, effects = step(s.before, cheaper, s.at)
    if _decision(effects).gate is not Gate.APPROVE:
        fail(f"step {index}: a lower price turned APPROVE into BLOCK")


def _check_later_response(s: Stepped, index: int, fail: Callable[[str], None]) -> None:
    timely = s.decision.timely
    for delay in (timedelta(seconds=1), timedelta(days=40)):
        later_at = s.at + delay
        before = fire_due(s.before, later_at)
        _, effects = step(before, s.event, later_at)
        later = _decision(effects).timely
        if later and not timely:
            fail(f"step {index}: the same response {delay} later is timely, the original is not")


def simulate(seed: int, count: int) -> Report:
    """Check ``count`` workflows with seeds ``seed, seed + 1, ...``."""
    report = Report()
    for offset in range(count):
        report.failures.extend(check_workflow(seed + offset, report))
    return report
