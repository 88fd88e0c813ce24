"""The machine's API as the desk service uses it: effects, timers as data, refused pairs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from firstright.domain.contracts.model import RofrParams
from firstright.domain.rofr.contract import RofrContract
from firstright.domain.rofr.decision import Decision
from firstright.domain.rofr.errors import EventOutOfOrder, RofrTransitionError, TimerOverdue
from firstright.domain.rofr.events import (
    BonaFide,
    HolderResponse,
    NoticeDelivered,
    ResponseKind,
    Timer,
    TimerFired,
    TimerKind,
    TpContractRequest,
    TpOfferReceived,
)
from firstright.domain.rofr.machine import (
    CancelTimer,
    ScheduleTimer,
    next_timer,
    open_request,
    step,
)
from firstright.domain.rofr.outcome import allocation_of, outcome_of
from firstright.domain.rofr.request import RofrRequest
from firstright.domain.rofr.states import Gate, Outcome, RofrState
from firstright.domain.rofr.terms import NonCash, TermSet, effective_price

T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)
TERMS = TermSet.of(
    {
        "quantity_gpus": 8000,
        "gpu_type": "GB300",
        "region": "us-central",
        "start_date": date(2025, 9, 1),
        "commit_months": 36,
        "price_per_gpu_hour": Decimal("2.50"),
    }
)


def _contract(**params: object) -> RofrContract:
    raw: dict[str, object] = {
        "scope": {"covered_categories": ["new_capacity"]},
        "exercise_period": timedelta(days=10),
        "release_window": timedelta(days=90),
        "holder_closing_window": timedelta(days=30),
        "terms_order": {"price_per_gpu_hour": "lower", "start_date": "earlier"},
        **params,
    }
    return RofrContract("demo@1", "lab", "azure", RofrParams.model_validate(raw))


def _go(request: RofrRequest, event: object, at: datetime) -> tuple[RofrRequest, Decision]:
    after, effects = step(request, event, at)  # type: ignore[arg-type]
    decisions = [e for e in effects if isinstance(e, Decision)]
    assert len(decisions) == 1
    return after, decisions[0]


def _open_offer(contract: RofrContract) -> RofrRequest:
    r = open_request("CR-1", contract, category="new_capacity", quantity_gpus=8000)
    r, _ = _go(r, TpOfferReceived("cloud_x", TERMS, BonaFide()), T0)
    r, _ = _go(r, NoticeDelivered(TERMS, "cloud_x", complete=True), T0 + timedelta(hours=3))
    return r


def test_notice_schedules_the_exercise_timer_and_exercise_swaps_it() -> None:
    r = open_request("CR-1", _contract(), category="new_capacity")
    r, _ = _go(r, TpOfferReceived("cloud_x", TERMS, BonaFide()), T0)
    at = T0 + timedelta(hours=3)
    r2, effects = step(r, NoticeDelivered(TERMS, "cloud_x", complete=True), at)
    exercise = Timer(TimerKind.EXERCISE, at + timedelta(days=10), "CR-1")
    assert ScheduleTimer(exercise) in effects
    assert next_timer(r2) == exercise
    r3, effects = step(r2, HolderResponse(ResponseKind.ACCEPT, 8000), at + timedelta(days=1))
    closing = Timer(TimerKind.HOLDER_CLOSING, at + timedelta(days=31), "CR-1")
    assert CancelTimer(exercise) in effects and ScheduleTimer(closing) in effects
    assert r3.state is RofrState.EXERCISED and r2.state is RofrState.OFFER_OPEN  # r2 untouched


def test_timer_fires_at_its_deadline_and_decision_is_stamped_there() -> None:
    r = _open_offer(_contract())
    timer = next_timer(r)
    assert timer is not None
    late = timer.deadline + timedelta(hours=5)  # the scheduler may run late
    r, decision = _go(r, TimerFired(timer), late)
    assert r.state is RofrState.RELEASED
    assert decision.t == timer.deadline
    assert r.release_until == timer.deadline + timedelta(days=90)
    assert decision.via is not None and decision.via.value == "timer_exercise_expired"


def test_refused_pairs_raise() -> None:
    r = _open_offer(_contract())
    timer = next_timer(r)
    assert timer is not None
    with pytest.raises(TimerOverdue):
        step(r, TpContractRequest("cloud_x", TERMS), timer.deadline + timedelta(seconds=1))
    with pytest.raises(EventOutOfOrder):
        step(r, TpContractRequest("cloud_x", TERMS), T0)
    with pytest.raises(RofrTransitionError):
        step(r, TimerFired(Timer(TimerKind.RELEASE, timer.deadline, "CR-1")), timer.deadline)
    with pytest.raises(RofrTransitionError):  # not due yet
        step(r, TimerFired(timer), timer.deadline - timedelta(seconds=1))


def test_explanation_carries_the_holders_counterfactual_and_comparison() -> None:
    r = _open_offer(_contract())
    at = T0 + timedelta(days=1)
    worse = TermSet.of({**TERMS.as_dict(), "price_per_gpu_hour": Decimal("2.60")})
    r, decision = _go(r, HolderResponse(ResponseKind.ACCEPT, 8000, worse), at)
    assert decision.state is RofrState.OFFER_OPEN
    assert decision.note_code == "NONCONFORMING_RESPONSE_RECORDED"
    e = decision.explanation
    assert e.clause_id == "rofr" and "R3" in e.rule_ids
    assert any("price_per_gpu_hour: 2.60 vs 2.50 -> worse" in line for line in e.comparison)
    assert e.counterfactual is not None
    assert e.counterfactual.startswith("accept by 2025-03-13T12:00:00Z at <= 2.50 USD/GPU-h")


def test_cash_equivalent_is_exact() -> None:
    terms = TermSet.of(
        {**TERMS.as_dict(), "quantity_gpus": 100000},
        NonCash("service_credits", Decimal(300_000_000)),
    )
    expected = Decimal("2.50") - Decimal(300_000_000) / (Decimal(100000) * 36 * 730)
    assert effective_price(terms) == expected
    assert str(expected).startswith("2.38584474")


def test_partial_after_an_earlier_release_allocates_within_the_quantity() -> None:
    """Regression (simulation): an approval from an earlier release must not count after a new
    notice and a partial exercise."""
    contract = _contract(partial_exercise="allowed", partial_min_fraction=Decimal("0.25"))
    r = _open_offer(contract)
    r, _ = _go(r, HolderResponse(ResponseKind.DECLINE), T0 + timedelta(days=1))
    r, d = _go(r, TpContractRequest("cloud_y", TERMS), T0 + timedelta(days=2))
    assert d.gate is Gate.APPROVE
    r, _ = _go(r, NoticeDelivered(TERMS, "cloud_x", complete=True), T0 + timedelta(days=3))
    r, d = _go(r, HolderResponse(ResponseKind.ACCEPT, 4000), T0 + timedelta(days=4))
    assert d.state is RofrState.PARTIALLY_EXERCISED and d.released_quantity == 4000
    assert outcome_of(r) is Outcome.SPLIT
    assert allocation_of(r) == {"azure": 4000, "cloud_x": 4000}
