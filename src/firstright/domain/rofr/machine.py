"""The first-refusal state machine: pure, total, deterministic (specs/ROFR.md).

API (for the replay, the desk service and tests)
------------------------------------------------

``open_request(request_id, contract, *, category=None, quantity_gpus=None) -> RofrRequest``
    A new request in state ``INIT``. ``contract`` is a :class:`RofrContract` (owner, the
    holder's cloud, the :class:`~firstright.domain.contracts.model.RofrParams` of the
    ``first_refusal`` clause, and the optional API-exclusivity and ship-first clauses).

``step(request, event, now) -> (RofrRequest, tuple[Effect, ...])``
    Apply one event (:mod:`firstright.domain.rofr.events`) that happened at ``now`` (an aware
    datetime; the machine never reads a clock). Returns the new state and the effects, in order:

    * exactly one :class:`~firstright.domain.rofr.decision.Decision` — the answer (state, gate,
      note code, timers, explanation with clause, rule ids, inputs, comparison, reason and the
      holder's counterfactual). Every pair (state, event) has a defined answer; an event that
      changes nothing still yields a decision with a note code saying why.
    * :class:`CancelTimer` / :class:`ScheduleTimer` for timers that stopped / started pending.

    Errors (all :class:`~firstright.domain.rofr.errors.RofrTransitionError`, a
    ``ConflictError``): ``EventOutOfOrder`` when ``now`` is before the request's last instant;
    ``TimerOverdue`` when a pending timer's deadline is before ``now`` (fire it first);
    a ``TimerFired`` for a timer that is not pending. The input request is never modified.

``next_timer(request) -> Timer | None``
    The earliest pending timer. A timer with deadline ``D`` fires just after ``D``: the caller
    processes events stamped ``<= D`` first, then calls ``step(request, TimerFired(timer), now)``
    with any ``now >= D``; the decision is stamped ``D``. ``pending_timers(request)`` lists all.

``outcome_of(request)`` / ``allocation_of(request)`` (module ``outcome``)
    The outcome of the request's state and GPUs per party.

Driving several requests (one per ``request_id``): keep one ``RofrRequest`` per id; before each
event at ``t`` fire, across all requests and in deadline order, every timer with deadline
``< t``; then step the event's request. A contract amendment is stepped into every request
(``ContractAmended(new_contract)``): requests at ``INIT`` adopt it, in-flight ones follow the
amended clause's ``in_flight`` policy (``continue`` keeps the clause they were triggered under,
``terminate`` ends the right for them, now or at its ``terminated_at``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace as dataclass_replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from firstright.domain.rofr.contract import RofrContract, scope_of
from firstright.domain.rofr.decision import Decision, Explanation, Note, Via
from firstright.domain.rofr.errors import EventOutOfOrder, RofrTransitionError, TimerOverdue
from firstright.domain.rofr.events import (
    CapacityRequest,
    ContractAmended,
    Event,
    HolderCapabilityResponse,
    HolderDefinitiveAgreementSigned,
    HolderResponse,
    LaunchRequest,
    NoticeDelivered,
    RequestWithdrawn,
    ResponseKind,
    Timer,
    TimerFired,
    TimerKind,
    TpContractRequest,
    TpContractSigned,
    TpOfferReceived,
    TpTermsChanged,
    WorkloadPlacementRequest,
)
from firstright.domain.rofr.other_clauses import (
    CapabilityAnswer,
    judge_api_exclusivity,
    judge_ship_first,
)
from firstright.domain.rofr.request import Approval, RofrRequest, Signature, evolve, pending_timers
from firstright.domain.rofr.states import (
    BLOCKING_STATES,
    IN_FLIGHT_STATES,
    NOTICE_STATES,
    RELEASE_STATES,
    TERMINAL_STATES,
    Gate,
    RofrState,
)
from firstright.domain.rofr.terms import (
    Comparison,
    TermSet,
    check_match,
    check_release,
    effective_price,
    show,
    show_price,
)

S = RofrState


@dataclass(frozen=True, slots=True)
class ScheduleTimer:
    timer: Timer


@dataclass(frozen=True, slots=True)
class CancelTimer:
    timer: Timer


Effect = Decision | ScheduleTimer | CancelTimer


def open_request(
    request_id: str,
    contract: RofrContract,
    *,
    category: str | None = None,
    quantity_gpus: int | None = None,
) -> RofrRequest:
    assert request_id, "a request has an id"
    return RofrRequest(
        request_id=request_id, contract=contract, category=category, quantity_gpus=quantity_gpus
    )


def next_timer(request: RofrRequest) -> Timer | None:
    timers = pending_timers(request)
    return timers[0] if timers else None


def step(
    request: RofrRequest, event: Event, now: datetime
) -> tuple[RofrRequest, tuple[Effect, ...]]:
    """Apply ``event`` at ``now``; see the module docstring."""
    assert now.tzinfo is not None, "now must be an aware datetime"
    if request.updated_at is not None and now < request.updated_at:
        raise EventOutOfOrder(
            f"event at {now.isoformat()} is before {request.updated_at.isoformat()}",
            request_id=request.request_id,
            state=request.state.value,
            event=event.TYPE,
        )
    before_timers = pending_timers(request)
    if isinstance(event, TimerFired):
        after, decision = _fire(request, event.timer, now)
    else:
        due = before_timers[0] if before_timers else None
        if due is not None and due.deadline < now:
            raise TimerOverdue(
                f"timer {due.kind.value} due {due.deadline.isoformat()} must fire first",
                request_id=request.request_id,
                state=request.state.value,
                event=event.TYPE,
            )
        after, decision = _Step(request, event, now).run()
    after_timers = pending_timers(after)
    effects: list[Effect] = [decision]
    if before_timers != after_timers:
        effects += [CancelTimer(t) for t in before_timers if t not in after_timers]
        effects += [ScheduleTimer(t) for t in after_timers if t not in before_timers]
    return after, tuple(effects)


# ---------------------------------------------------------------------------------------------
# Decision building


def _decide(
    request: RofrRequest,
    t: datetime,
    explanation: Explanation,
    *,
    event: str,
    gate: Gate | None = None,
    via: Via | None = None,
    note: str | None = None,
    timely: bool | None = None,
    missing: tuple[str, ...] | None = None,
    also: tuple[Explanation, ...] = (),
) -> Decision:
    """A decision with every state-derived field filled from ``request`` (the new state)."""
    state = request.state
    partial = state is S.PARTIALLY_EXERCISED
    return Decision(
        t=t,
        request_id=request.request_id,
        state=state,
        explanation=explanation,
        gate=gate,
        via=via,
        note=note,
        needs_review=request.needs_review,
        deadline=request.exercise_deadline if state is S.OFFER_OPEN else None,
        closing_deadline=request.closing_deadline if state is S.EXERCISED else None,
        release_until=request.release_until if state in RELEASE_STATES else None,
        cycle=request.cycle or None,
        baseline_price=request.baseline.price if request.baseline is not None else None,
        timely=timely,
        holder_quantity=(
            request.holder_quantity if partial or state in (S.EXERCISED, S.CLOSED_HOLDER) else None
        ),
        released_quantity=request.released_quantity if state in RELEASE_STATES else None,
        missing=missing,
        event=event,
        also=also,
    )


def _money(value: Decimal | None) -> str:
    return "-" if value is None else show_price(value)


def _counterfactual(request: RofrRequest) -> str | None:
    """What the holder had to do to keep the capacity under the current baseline."""
    baseline = request.baseline
    if baseline is None or request.exercise_deadline is None:
        return None
    price = effective_price(baseline)
    identity = ", ".join(
        f"{name} {show(baseline.get(name))}" for name in request.contract.params.identity_terms
    )
    quantity = request.full_quantity
    text = f"accept by {_iso(request.exercise_deadline)} at <= {_money(price)} USD/GPU-h"
    if quantity is not None:
        text += f" for {quantity} GPUs"
    if identity:
        text += f" ({identity}, other ordered terms no worse)"
    return text


_COUNTERFACTUAL_STATES = frozenset({S.OFFER_OPEN, S.RELEASED, S.EXERCISED, S.PARTIALLY_EXERCISED})
"""States whose decisions tell the holder what would have kept (or kept) the capacity."""


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def _fire(request: RofrRequest, timer: Timer, now: datetime) -> tuple[RofrRequest, Decision]:
    """A pending timer fires; the decision is stamped at its deadline."""
    if timer not in pending_timers(request) or now < timer.deadline:
        raise RofrTransitionError(
            f"timer {timer.kind.value} at {timer.deadline.isoformat()} is not due",
            request_id=request.request_id,
            state=request.state.value,
            event=TimerFired.TYPE,
        )
    at = timer.deadline
    clause = request.contract.clause_id
    base = evolve(request, updated_at=at)
    if timer.kind is TimerKind.EXERCISE:
        after = _release(base, at, request.full_quantity)
        window = request.contract.params.release_window
        expl = Explanation(
            clause,
            ("R4", "R5", "R6"),
            S.RELEASED.value,
            f"no conforming exercise by {_iso(at)}: deemed waiver; "
            f"release until {_iso(at + window)}",
            counterfactual=_counterfactual(request),
        )
        return after, _decide(after, at, expl, event="timer", via=Via.EXERCISE_EXPIRED)
    if timer.kind is TimerKind.HOLDER_CLOSING:
        after = _release(evolve(base, holder_quantity=0), at, request.full_quantity)
        expl = Explanation(
            clause,
            ("R14", "R7"),
            S.RELEASED.value,
            f"holder exercised but did not sign by {_iso(at)}: holder default; the owner may deal "
            "with a third party on terms no less favourable to it than the baseline",
        )
        return after, _decide(after, at, expl, event="timer", via=Via.HOLDER_CLOSING_EXPIRED)
    if timer.kind is TimerKind.RELEASE:
        after = evolve(base, state=S.REOFFER_REQUIRED, approvals=())
        expl = Explanation(
            clause,
            ("R9", "R6"),
            S.REOFFER_REQUIRED.value,
            f"release window ended {_iso(at)} without a deal; the right revives and a new "
            "complete notice is needed",
        )
        return after, _decide(after, at, expl, event="timer", via=Via.RELEASE_EXPIRED)
    assert timer.kind is TimerKind.RIGHT_TERMINATED
    after = evolve(base, state=S.NO_ROFR, terminate_at=None, approvals=())
    expl = Explanation(
        clause,
        ("R12",),
        S.NO_ROFR.value,
        f"the right ended at {_iso(at)} and the amendment terminates in-flight requests",
    )
    return after, _decide(after, at, expl, event="timer", via=Via.RIGHT_TERMINATED)


def _release(request: RofrRequest, start: datetime, quantity: int | None) -> RofrRequest:
    window = request.contract.params.release_window
    return evolve(
        request,
        state=S.RELEASED,
        release_start=start,
        release_until=start + window,
        released_quantity=quantity,
        approvals=(),
        exercise_deadline=request.exercise_deadline,
    )


# ---------------------------------------------------------------------------------------------
# Events


class _Step:
    """One event applied to one request (a small object so handlers share ``r``/``now``)."""

    def __init__(self, request: RofrRequest, event: Event, now: datetime) -> None:
        self.r = evolve(request, updated_at=now)
        self.event = event
        self.now = now
        self.clause = request.contract.clause_id
        self.scope_note: str | None = None

    # -- helpers ----------------------------------------------------------------------------

    def expl(self, rules: tuple[str, ...], result: str, reason: str, **kw: Any) -> Explanation:
        if self.scope_note:
            reason = f"{self.scope_note}; {reason}"
        if "counterfactual" not in kw and self.r.state in _COUNTERFACTUAL_STATES:
            kw["counterfactual"] = _counterfactual(self.r)
        return Explanation(self.clause, rules, result, reason, **kw)

    def done(self, explanation: Explanation, **kw: Any) -> tuple[RofrRequest, Decision]:
        return self.r, _decide(self.r, self.now, explanation, event=self.event.TYPE, **kw)

    def noop(
        self, note: Note, reason: str, rules: tuple[str, ...] = ()
    ) -> tuple[RofrRequest, Decision]:
        return self.done(
            self.expl(rules, self.r.state.value, reason), note=f"{note.value} ({reason})"
        )

    def closed(self) -> tuple[RofrRequest, Decision]:
        return self.noop(Note.REQUEST_CLOSED, f"request is {self.r.state.value}; nothing changes")

    def go(self, state: RofrState, **changes: Any) -> None:
        self.r = evolve(self.r, state=state, **changes)

    # -- dispatch -----------------------------------------------------------------------------

    def run(self) -> tuple[RofrRequest, Decision]:
        event = self.event
        if isinstance(event, ContractAmended):
            return self.amended(event)
        if isinstance(event, CapacityRequest) and self.r.state is S.INIT:
            self.r = evolve(
                self.r,
                category=event.category or self.r.category,
                quantity_gpus=event.quantity_gpus or self.r.quantity_gpus,
            )
        if self.r.state is S.INIT:
            reason = scope_of(self.r.contract, self.r.category, self.now)
            if reason is not None:
                self.go(S.NO_ROFR)
                self.scope_note = f"NO_ROFR: {reason}"
        handlers: dict[type, Callable[[Any], tuple[RofrRequest, Decision]]] = {
            CapacityRequest: self.capacity_request,
            TpOfferReceived: self.offer,
            NoticeDelivered: self.notice,
            HolderResponse: self.holder_response,
            HolderDefinitiveAgreementSigned: self.holder_signed,
            TpTermsChanged: self.terms_changed,
            TpContractRequest: self.contract_request,
            TpContractSigned: self.contract_signed,
            RequestWithdrawn: self.withdrawn,
            WorkloadPlacementRequest: self.placement,
            LaunchRequest: self.launch,
            HolderCapabilityResponse: self.capability,
        }
        handler = handlers.get(type(event))
        if handler is None:
            raise RofrTransitionError(
                "unknown event",
                request_id=self.r.request_id,
                state=self.r.state.value,
                event=type(event).__name__,
            )
        return handler(event)

    # -- trigger --------------------------------------------------------------------------------

    def capacity_request(self, event: CapacityRequest) -> tuple[RofrRequest, Decision]:
        state = self.r.state
        if state is S.NO_ROFR:
            return self.noop(Note.REQUEST_RECORDED, "capacity request outside the right", ("R12",))
        if state is S.INIT and self.r.contract.params.trigger == "owner_intent":
            self.go(S.TRIGGERED)
            return self.done(
                self.expl(
                    ("R1", "R18"),
                    S.TRIGGERED.value,
                    "owner_intent trigger: the owner decided to procure covered capacity; "
                    "notice owed before any third-party deal",
                )
            )
        if state in TERMINAL_STATES:
            return self.closed()
        return self.noop(
            Note.REQUEST_RECORDED,
            "capacity request recorded; the trigger is a bona fide third-party offer",
            ("R1",),
        )

    def _offer_failures(self, event: TpOfferReceived) -> tuple[str, ...]:
        failures = list(event.bona_fide.failures())
        if event.terms is None and not event.package:
            failures.append("no terms")
        non_cash = event.terms.non_cash if event.terms is not None else None
        if non_cash is not None and self.r.contract.params.unmatchable_terms == "invalid_trigger":
            failures.append(f"non-cash consideration ({non_cash.kind}) under invalid_trigger")
        return tuple(failures)

    def _flag_review(self, terms: TermSet | None) -> None:
        if (
            terms is not None
            and terms.non_cash is not None
            and self.r.contract.params.unmatchable_terms == "flag_for_review"
        ):
            self.r = evolve(self.r, needs_review=True)

    def offer(self, event: TpOfferReceived) -> tuple[RofrRequest, Decision]:
        state = self.r.state
        if state in TERMINAL_STATES:
            return self.closed()
        failures = self._offer_failures(event)
        inputs = {"party": event.party, "bona_fide": "yes" if not failures else ", ".join(failures)}
        if state is S.NO_ROFR:
            return self.noop(
                Note.OFFER_RECORDED, f"offer from {event.party} outside the right", ("R12",)
            )
        if failures:
            if state in (S.INIT, S.NOT_TRIGGERED):
                self.go(S.NOT_TRIGGERED)
                return self.done(
                    self.expl(
                        ("R1",),
                        S.NOT_TRIGGERED.value,
                        f"offer not bona fide: {', '.join(failures)}",
                        inputs=inputs,
                    )
                )
            return self.noop(
                Note.OFFER_NOT_BONA_FIDE,
                f"offer from {event.party} not bona fide: {', '.join(failures)}",
                ("R1",),
            )
        self._flag_review(event.terms)
        if state in (S.INIT, S.NOT_TRIGGERED):
            self.go(S.TRIGGERED, offer_party=event.party, offer_terms=event.terms)
            return self.done(
                self.expl(
                    ("R1",),
                    S.TRIGGERED.value,
                    f"bona fide offer from {event.party} on covered capacity; notice owed "
                    "to the holder before any third-party deal",
                    inputs=inputs,
                )
            )
        if state in RELEASE_STATES and event.terms is not None:
            self.r = evolve(self.r, offer_party=event.party, offer_terms=event.terms)
            return self._judge_change(event.party, event.terms, ("R8", "R7", "R11"))
        self.r = evolve(self.r, offer_party=event.party, offer_terms=event.terms)
        return self.noop(
            Note.OFFER_RECORDED,
            f"offer from {event.party} recorded; a notice on these terms restarts the process",
            ("R1", "R2"),
        )

    # -- notice -------------------------------------------------------------------------------

    def notice(self, event: NoticeDelivered) -> tuple[RofrRequest, Decision]:
        state = self.r.state
        params = self.r.contract.params
        if state in TERMINAL_STATES:
            return self.closed()
        if state is S.NO_ROFR:
            return self.noop(
                Note.NOTICE_IGNORED, "no right applies; the notice has no effect", ("R12",)
            )
        if state is S.INIT and params.trigger == "owner_intent":
            self.go(S.TRIGGERED)
            state = S.TRIGGERED
        if state in (S.INIT, S.NOT_TRIGGERED):
            self.go(S.NOT_TRIGGERED)
            return self.done(
                self.expl(
                    ("R1", "R2"),
                    S.NOT_TRIGGERED.value,
                    "no bona fide offer: a notice based on it is ineffective and starts no clock",
                ),
                note=Note.NOTICE_INEFFECTIVE_NO_BONA_FIDE_OFFER.value,
            )
        if state in (S.EXERCISED, S.PARTIALLY_EXERCISED):
            return self.noop(
                Note.NOTICE_IGNORED, f"the holder already exercised ({state.value})", ("R3",)
            )
        assert state in NOTICE_STATES or state is S.OFFER_OPEN, state
        terms = event.terms if event.terms is not None else self.r.offer_terms
        missing = event.missing
        complete = event.complete and terms is not None
        if event.complete and terms is None:
            missing = ("terms",)
        if not complete:
            if state is S.OFFER_OPEN:
                return self.noop(
                    Note.NOTICE_IGNORED,
                    "incomplete notice; the earlier complete notice stands",
                    ("R2",),
                )
            self.go(S.NOTICE_INCOMPLETE)
            shown = ", ".join(missing) if missing else "required fields"
            return self.done(
                self.expl(
                    ("R2",),
                    S.NOTICE_INCOMPLETE.value,
                    f"notice lacks {shown}; the exercise clock has not started",
                    inputs={"missing": shown},
                ),
                missing=tuple(missing),
            )
        assert terms is not None
        if terms.quantity_gpus is None and self.r.quantity_gpus is not None:
            terms = terms.with_quantity(self.r.quantity_gpus)
        self._flag_review(terms)
        deadline = self.now + params.exercise_period
        restarted = state is S.OFFER_OPEN
        self.go(
            S.OFFER_OPEN,
            baseline=terms,
            offeror=event.offeror or self.r.offer_party,
            cycle=self.r.cycle + 1,
            exercise_deadline=deadline,
            closing_deadline=None,
            release_start=None,
            release_until=None,
            released_quantity=None,
            holder_quantity=0,
            approvals=(),
        )
        price = effective_price(terms)
        reason = (
            f"complete notice received: baseline {_money(terms.price)} USD/GPU-h"
            + (f" (effective {_money(price)})" if terms.non_cash is not None else "")
            + f", exercise period until {_iso(deadline)}"
            + (" (restarted by a new notice)" if restarted else "")
        )
        inputs = {"offeror": self.r.offeror or "-", "cycle": str(self.r.cycle)}
        if event.sent_at is not None:
            inputs["sent_at"] = _iso(event.sent_at)
        return self.done(self.expl(("R2", "R4"), S.OFFER_OPEN.value, reason, inputs=inputs))

    # -- holder -------------------------------------------------------------------------------

    def holder_response(self, event: HolderResponse) -> tuple[RofrRequest, Decision]:
        r = self.r
        if r.state is not S.OFFER_OPEN:
            reason = f"holder {event.kind.value} in {r.state.value}: no offer is open"
            return self.done(
                self.expl(("R4",), r.state.value, reason),
                note=f"{Note.LATE_RESPONSE_IGNORED.value} ({reason})",
                timely=False,
            )
        assert r.exercise_deadline is not None and r.baseline is not None
        params = r.contract.params
        deadline = r.exercise_deadline
        timely = self.now <= deadline if params.deadline_inclusive else self.now < deadline
        if not timely:
            reason = (
                f"response at {_iso(self.now)} after the deadline {_iso(deadline)} "
                f"(deadline_inclusive: {str(params.deadline_inclusive).lower()})"
            )
            return self.done(
                self.expl(("R4",), r.state.value, reason),
                note=f"{Note.LATE_RESPONSE_IGNORED.value} ({reason})",
                timely=False,
            )
        if event.kind in (ResponseKind.DECLINE, ResponseKind.WAIVE):
            self.r = _release(r, self.now, r.full_quantity)
            rules = ("R5", "R11", "R6") if event.kind is ResponseKind.WAIVE else ("R5", "R6")
            return self.done(
                self.expl(
                    rules,
                    S.RELEASED.value,
                    f"holder {event.kind.value}s: released until "
                    f"{_iso(self.r.release_until or self.now)}",
                ),
                timely=True,
            )
        return self._exercise(event)

    def _exercise(self, event: HolderResponse) -> tuple[RofrRequest, Decision]:
        r = self.r
        assert r.baseline is not None
        params = r.contract.params
        holder_terms = event.terms if event.terms is not None else r.baseline
        full = r.full_quantity
        quantity = event.quantity_gpus or holder_terms.quantity_gpus or full
        comparison = check_match(holder_terms, r.baseline, params)
        lines = comparison.render()
        inputs = {
            "kind": event.kind.value,
            "quantity_gpus": str(quantity),
            "offered_quantity_gpus": str(full),
            "baseline_effective_price": _money(effective_price(r.baseline)),
            "holder_price": _money(effective_price(holder_terms)),
        }
        problem: str | None = None
        if event.kind is ResponseKind.COUNTER:
            problem = "counter-offer"
        elif event.kind is ResponseKind.CONDITIONAL_ACCEPT:
            problem = f"conditional acceptance ({event.condition or 'condition attached'})"
        elif not comparison.ok:
            problem = "terms do not match: " + "; ".join(f.render() for f in comparison.failures)
        elif quantity is not None and full is not None and quantity > full:
            problem = f"quantity {quantity} above the offered {full}"
        elif quantity is not None and full is not None and quantity < full:
            minimum = params.partial_min_fraction
            if params.partial_exercise != "allowed":
                problem = f"partial exercise ({quantity} of {full}) under all_or_none"
            elif minimum is not None and Decimal(quantity) < minimum * full:
                problem = f"partial exercise {quantity} below the minimum {show(minimum)} of {full}"
            else:
                released = full - quantity
                window = params.release_window
                self.go(
                    S.PARTIALLY_EXERCISED,
                    holder_quantity=quantity,
                    released_quantity=released,
                    release_start=self.now,
                    release_until=self.now + window,
                    approvals=(),
                )
                return self.done(
                    self.expl(
                        ("R10", "R3"),
                        S.PARTIALLY_EXERCISED.value,
                        f"timely conforming partial exercise: holder takes {quantity}, "
                        f"{released} released until {_iso(self.now + window)}",
                        inputs=inputs,
                        comparison=lines,
                    ),
                    timely=True,
                )
        if problem is None:
            closing = self.now + params.holder_closing_window
            self.go(S.EXERCISED, holder_quantity=quantity or 0, closing_deadline=closing)
            price_line = (
                f"{_money(effective_price(holder_terms))} <= {_money(effective_price(r.baseline))}"
            )
            return self.done(
                self.expl(
                    ("R3", "R4"),
                    S.EXERCISED.value,
                    f"timely, unconditional exercise meeting every term ({price_line}); "
                    f"definitive agreement due by {_iso(closing)}",
                    inputs=inputs,
                    comparison=lines,
                ),
                timely=True,
            )
        rules = ("R3", "R17", "R10")
        if params.nonconforming_response_is_rejection:
            self.r = _release(r, self.now, full)
            reason = (
                f"{problem}; nonconforming_response_is_rejection: true, so it rejects the offer"
            )
            return self.done(
                self.expl(rules, S.RELEASED.value, reason, inputs=inputs, comparison=lines),
                note=(
                    f"{Note.NONCONFORMING_RESPONSE_RECORDED.value} "
                    f"({problem}; treated as rejection)"
                ),
                timely=True,
            )
        until = _iso(r.exercise_deadline or self.now)
        reason = f"{problem}; not an exercise, the option survives until {until}"
        return self.done(
            self.expl(rules, S.OFFER_OPEN.value, reason, inputs=inputs, comparison=lines),
            note=f"{Note.NONCONFORMING_RESPONSE_RECORDED.value} ({problem})",
            timely=True,
        )

    def holder_signed(self, event: HolderDefinitiveAgreementSigned) -> tuple[RofrRequest, Decision]:
        state = self.r.state
        if state is S.EXERCISED:
            self.go(S.CLOSED_HOLDER, holder_signed=True)
            return self.done(
                self.expl(
                    ("R3",),
                    S.CLOSED_HOLDER.value,
                    f"definitive agreement signed by the closing deadline "
                    f"{_iso(self.r.closing_deadline or self.now)}",
                )
            )
        if state is S.PARTIALLY_EXERCISED and not self.r.holder_signed:
            self.r = evolve(self.r, holder_signed=True)
            return self.noop(
                Note.HOLDER_SIGNED_PART,
                f"holder signed for its {self.r.holder_quantity} GPUs",
                ("R10",),
            )
        if state in TERMINAL_STATES:
            return self.closed()
        return self.noop(
            Note.HOLDER_SIGNATURE_WITHOUT_EXERCISE,
            f"no exercise to close in {state.value}",
            ("R3",),
        )

    # -- third party --------------------------------------------------------------------------

    def _candidate(self, terms: TermSet | None) -> TermSet:
        r = self.r
        base = terms if terms is not None else r.baseline
        assert base is not None
        if base.quantity_gpus is None:
            fill = r.available_quantity or r.full_quantity
            if fill is not None:
                base = base.with_quantity(fill)
        return base

    def _release_check(self, party: str, terms: TermSet | None) -> tuple[bool, Comparison, str]:
        """May the owner deal with ``party`` on ``terms`` under the current release?"""
        r = self.r
        assert r.baseline is not None and r.state in RELEASE_STATES
        params = r.contract.params
        candidate = self._candidate(terms)
        comparison = check_release(candidate, r.baseline, params, r.available_quantity)
        offeror = r.named_offeror
        if params.release_scope == "named_offeror" and offeror is not None and party != offeror:
            return (
                False,
                comparison,
                (
                    f"release_scope named_offeror: {party} is not the offeror named in the notice "
                    f"({offeror})"
                ),
            )
        if not comparison.ok:
            why = "; ".join(f.render() for f in comparison.failures)
            return False, comparison, f"more favourable to {party} than the baseline: {why}"
        return (
            True,
            comparison,
            (
                f"inside the release window (until {_iso(r.release_until or self.now)}); terms no "
                f"more favourable to {party} than the baseline (cycle {r.cycle})"
            ),
        )

    def _judge_change(
        self, party: str, terms: TermSet, rules: tuple[str, ...]
    ) -> tuple[RofrRequest, Decision]:
        ok, comparison, reason = self._release_check(party, terms)
        note = Note.CHANGE_WITHIN_TOLERANCE if ok else Note.REOFFER_REQUIRED_FOR_THESE_TERMS
        return self.done(
            self.expl(rules, self.r.state.value, reason, comparison=comparison.render()),
            note=f"{note.value} ({reason})",
        )

    def terms_changed(self, event: TpTermsChanged) -> tuple[RofrRequest, Decision]:
        state = self.r.state
        if state in TERMINAL_STATES:
            return self.closed()
        if state in RELEASE_STATES:
            return self._judge_change(event.party, event.terms, ("R8", "R7"))
        if state in (S.TRIGGERED, S.NOTICE_INCOMPLETE, S.OFFER_OPEN, S.REOFFER_REQUIRED):
            self.r = evolve(self.r, offer_party=event.party, offer_terms=event.terms)
            return self.noop(
                Note.OFFER_RECORDED,
                f"new terms from {event.party} recorded; a notice on them is needed before a deal",
                ("R8", "R2"),
            )
        return self.noop(Note.OFFER_RECORDED, f"terms of {event.party} recorded", ("R8",))

    def _other_gates(
        self,
        *,
        party: str,
        workload: str | None,
        customer_segment: str | None = None,
        launch: LaunchRequest | None = None,
    ) -> tuple[Gate | None, tuple[Explanation, ...]]:
        contract = self.r.contract
        found: list[tuple[Gate, Explanation]] = []
        if contract.api_exclusivity is not None:
            judged = judge_api_exclusivity(
                contract.api_exclusivity,
                party=party,
                workload=workload,
                customer_segment=customer_segment,
                at=self.now,
            )
            if judged is not None:
                found.append(judged)
        if launch is not None and contract.ship_first is not None:
            found.append(
                judge_ship_first(
                    contract.ship_first,
                    party=party,
                    first_launch=launch.first_launch,
                    capability=self.r.capability,
                )
            )
        if not found:
            return None, ()
        gate = Gate.BLOCK if any(g is Gate.BLOCK for g, _ in found) else Gate.APPROVE
        return gate, tuple(e for _, e in found)

    def contract_request(self, event: TpContractRequest) -> tuple[RofrRequest, Decision]:
        r = self.r
        state = r.state
        other, also = self._other_gates(party=event.party, workload=event.workload)
        note: str | None = None
        inputs = {"party": event.party}
        comparison: tuple[str, ...] = ()
        rules: tuple[str, ...]
        if state is S.NO_ROFR:
            gate, rules, reason = Gate.APPROVE, ("R12", "R19"), "no right of first refusal applies"
        elif state is S.INIT:
            gate, rules, reason = (
                Gate.BLOCK,
                ("R16", "R2"),
                (
                    "covered capacity: contracting with a third party without first offering the "
                    "holder the right to match"
                ),
            )
        elif state in BLOCKING_STATES:
            gate, rules, reason = Gate.BLOCK, ("R2", "R16"), self._blocked_reason()
        elif state in RELEASE_STATES:
            ok, cmp, reason = self._release_check(event.party, event.terms)
            comparison = cmp.render()
            rules = ("R6", "R7", "R15") if ok else ("R7", "R8", "R15")
            gate = Gate.APPROVE if ok else Gate.BLOCK
            if not ok:
                note = f"{Note.REOFFER_REQUIRED_FOR_THESE_TERMS.value} ({reason})"
        else:
            assert state in TERMINAL_STATES, state
            gate, rules = Gate.BLOCK, ("R6",)
            reason = f"request is {state.value}; no deal may be made under it"
            note = f"{Note.REQUEST_CLOSED.value} ({state.value})"
        if other is Gate.BLOCK:
            gate = Gate.BLOCK
            reason += "; blocked by " + ", ".join(e.clause_id for e in also if e.result == "BLOCK")
        if gate is Gate.APPROVE:
            approval = Approval(event.party, self._approved_terms(event.terms), self.now)
            self.r = evolve(self.r, approvals=(*self.r.approvals, approval))
        return self.done(
            self.expl(rules, gate.value, reason, inputs=inputs, comparison=comparison),
            gate=gate,
            note=note,
            also=also,
        )

    def _approved_terms(self, terms: TermSet | None) -> TermSet:
        if self.r.baseline is not None or terms is not None:
            if terms is None or terms.quantity_gpus is None:
                return self._candidate(terms)
            return terms
        quantity = self.r.quantity_gpus or 0
        return TermSet.of({"quantity_gpus": quantity})

    def _blocked_reason(self) -> str:
        r = self.r
        state = r.state
        if state is S.OFFER_OPEN:
            return f"exercise period open until {_iso(r.exercise_deadline or self.now)}"
        if state is S.EXERCISED:
            return "the holder exercised; the capacity is the holder's"
        if state is S.REOFFER_REQUIRED:
            return (
                f"release window ended {_iso(r.release_until or self.now)}; re-offer required"
                if r.release_until is not None
                else "re-offer required"
            )
        if state is S.NOT_TRIGGERED:
            return "covered capacity; no compliant release exists (no bona fide offer noticed)"
        if state is S.NOTICE_INCOMPLETE:
            return "notice incomplete; the exercise period has not started"
        return "no notice was delivered to the holder"

    def contract_signed(self, event: TpContractSigned) -> tuple[RofrRequest, Decision]:
        r = self.r
        state = r.state
        if state in TERMINAL_STATES:
            return self.closed()
        quantity = self._signed_quantity(event)
        signature = Signature(event.party, quantity, self.now)
        if state is S.NO_ROFR:
            self.r = evolve(r, signatures=(*r.signatures, signature))
            return self.noop(
                Note.SIGNATURE_RECORDED, f"deal with {event.party} outside the right", ("R12",)
            )
        approval = self._matching_approval(event) if state in RELEASE_STATES else None
        if approval is None:
            self.go(S.VIOLATION, violation=signature)
            reason = (
                "No notice was delivered to the holder."
                if r.cycle == 0
                else f"signed with {event.party} without an approved compliant release"
            )
            return self.done(self.expl(("R16",), S.VIOLATION.value, reason))
        signature = Signature(event.party, approval.quantity_gpus, self.now)
        if state is S.RELEASED:
            self.go(S.CLOSED_THIRD_PARTY, signatures=(*r.signatures, signature))
            return self.done(
                self.expl(
                    ("R6", "R7"),
                    S.CLOSED_THIRD_PARTY.value,
                    f"signed with {event.party} on terms approved at {_iso(approval.at)}",
                )
            )
        self.r = evolve(r, signatures=(*r.signatures, signature), approvals=())
        return self.noop(
            Note.THIRD_PARTY_SIGNED_REMAINDER,
            f"{event.party} signed for {signature.quantity_gpus} GPUs of the released remainder",
            ("R10", "R6"),
        )

    def _signed_quantity(self, event: TpContractSigned) -> int:
        if event.terms is not None and event.terms.quantity_gpus is not None:
            return event.terms.quantity_gpus
        return self.r.available_quantity or self.r.full_quantity or 0

    def _matching_approval(self, event: TpContractSigned) -> Approval | None:
        for approval in reversed(self.r.approvals):
            if approval.party != event.party:
                continue
            if event.terms is None or self._candidate(event.terms) == approval.terms:
                available = self.r.available_quantity
                if available is None or approval.quantity_gpus <= available:
                    return approval
        return None

    def withdrawn(self, event: RequestWithdrawn) -> tuple[RofrRequest, Decision]:
        if self.r.state in TERMINAL_STATES:
            return self.closed()
        self.go(S.WITHDRAWN, approvals=())
        return self.done(
            self.expl(
                ("R6", "R9", "R11"),
                S.WITHDRAWN.value,
                "owner withdrew the request; any release ends with it and a later deal "
                "needs a new notice",
            )
        )

    # -- other clauses --------------------------------------------------------------------------

    def placement(self, event: WorkloadPlacementRequest) -> tuple[RofrRequest, Decision]:
        gate, also = self._other_gates(
            party=event.party, workload=event.workload, customer_segment=event.customer_segment
        )
        final = gate or Gate.APPROVE
        reason = "; ".join(e.reason for e in also) if also else "no clause restricts this placement"
        return self.done(
            self.expl(
                ("R19",),
                final.value,
                f"placement decided by the other clauses: {reason}",
                inputs={"party": event.party, "workload": event.workload},
            ),
            gate=final,
            also=also,
        )

    def launch(self, event: LaunchRequest) -> tuple[RofrRequest, Decision]:
        gate, also = self._other_gates(party=event.party, workload=event.workload, launch=event)
        final = gate or Gate.APPROVE
        reason = "; ".join(e.reason for e in also) if also else "no clause restricts this launch"
        return self.done(
            self.expl(
                ("R20", "R19"),
                final.value,
                f"launch decided by the other clauses: {reason}",
                inputs={"party": event.party},
            ),
            gate=final,
            also=also,
        )

    def capability(self, event: HolderCapabilityResponse) -> tuple[RofrRequest, Decision]:
        self.r = evolve(
            self.r,
            capability=CapabilityAnswer(
                self.now, event.can_support, event.chooses_to_support, event.committed_date
            ),
        )
        return self.noop(
            Note.CAPABILITY_RECORDED,
            f"holder can_support={str(event.can_support).lower()}, "
            f"chooses_to_support={str(event.chooses_to_support).lower()}",
            ("R20",),
        )

    # -- amendments -----------------------------------------------------------------------------

    def amended(self, event: ContractAmended) -> tuple[RofrRequest, Decision]:
        r = self.r
        new = event.contract
        state = r.state
        if state in TERMINAL_STATES:
            return self.closed()
        if state not in IN_FLIGHT_STATES:
            self.r = evolve(r, contract=new)
            return self.noop(Note.AMENDMENT_APPLIED, f"contract now {new.contract_key}", ("R12",))
        if new.params.in_flight == "continue":
            kept = dataclass_replace(
                r.contract, api_exclusivity=new.api_exclusivity, ship_first=new.ship_first
            )
            self.r = evolve(r, contract=kept)
            return self.noop(
                Note.AMENDMENT_NOT_APPLIED_IN_FLIGHT,
                "in_flight: continue; this request keeps the clause it was triggered under",
                ("R12",),
            )
        self.r = evolve(r, contract=new)
        reason = scope_of(new, r.category, self.now)
        if reason is not None:
            self.go(S.NO_ROFR, approvals=(), terminate_at=None)
            return self.done(
                self.expl(
                    ("R12",),
                    S.NO_ROFR.value,
                    f"in_flight: terminate and {reason}: the right ends for this request",
                )
            )
        ends = new.params.terminated_at
        self.r = evolve(self.r, terminate_at=ends)
        when = f"; it ends at {_iso(ends)}" if ends is not None else ""
        return self.noop(
            Note.AMENDMENT_APPLIED, f"in_flight: terminate; amended clause applies{when}", ("R12",)
        )
