"""The first-refusal desk: durable, event-sourced workflows over the pure machine.

Each capacity request is an append-only list of events (``adapters/rofr_store.py``); its state
is derived by replaying them through ``domain/rofr/machine.py``. Commands are idempotent: a
client key plus a body hash is stored with each event, the same key and body return the stored
answer without a second write, the same key with another body is a ConflictError (409).

    desk = RofrDesk(engine, contracts, alerter=Alerter(url))
    desk.open(actor, OpenBody(...), key="k1", at=t)       # capacity_request (+ offer)
    desk.notify(actor, "cr-1", NoticeBody(...), key=..., at=...)
    desk.respond / gate / signed / withdraw / offer
    desk.show(actor, "cr-1") / desk.list_requests(actor)
    desk.fire_due(now)                                     # the scheduler's one call

Who may do what (``actor`` is the API key's principal; None is the local operator: the CLI,
the scheduler, placement): the owner opens, reports offers, notifies, asks the gate, reports
signatures and withdraws; only the holder responds (and may report its own definitive
agreement); admins read everything; a party reads only requests it owns or holds. A refused
command writes nothing.

Time: events carry their instant ``t``; a command older than the request's last event, or not
after a timer that already fired, is refused (EventOutOfOrder) and writes nothing. Timers due
before a command's ``t`` are fired first, in the same transaction, with the deterministic key
``timer:<request>:<kind>:<deadline>`` the scheduler uses too, so each deadline fires once.

Standing instructions: when a complete notice opens the exercise period and the holder has an
active instruction, the desk appends the holder's response at the same instant, with the
instruction named in its trace.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import Engine

from firstright.adapters.rofr_store import (
    AppendRace,
    DuplicateKey,
    InstructionRow,
    NewEvent,
    Projection,
    RequestRow,
    RofrStore,
    StoredEvent,
    canonical_json,
)
from firstright.domain.contracts.model import Contract, FirstRefusalClause
from firstright.domain.placement.answer import PlacementAnswer
from firstright.domain.rofr.contract import RofrContract
from firstright.domain.rofr.decision import Decision
from firstright.domain.rofr.errors import EventOutOfOrder
from firstright.domain.rofr.events import (
    CapacityRequest,
    HolderCapabilityResponse,
    HolderDefinitiveAgreementSigned,
    HolderResponse,
    LaunchRequest,
    NoticeDelivered,
    RequestWithdrawn,
    ResponseKind,
    Timer,
    TimerFired,
    TpContractRequest,
    TpContractSigned,
    TpOfferReceived,
    TpTermsChanged,
    WorkloadPlacementRequest,
)
from firstright.domain.rofr.machine import next_timer, open_request, step
from firstright.domain.rofr.outcome import allocation_of, outcome_of
from firstright.domain.rofr.request import RofrRequest, pending_timers
from firstright.domain.rofr.states import TERMINAL_STATES, RofrState
from firstright.domain.rofr.terms import effective_price
from firstright.errors import ConflictError, Forbidden, InputError, NotFound
from firstright.limits import (
    IDEMPOTENCY_KEY_CHARS_MAX,
    ROFR_EVENTS_PER_REQUEST_MAX,
    ROFR_INSTRUCTIONS_PER_HOLDER_MAX,
    ROFR_LIST_PAGE_MAX,
)
from firstright.services.alerts import Alerter
from firstright.services.auth import Principal
from firstright.services.rofr_clauses import api_exclusivity_of, clause_active, ship_first_of
from firstright.services.rofr_from_placement import (
    final_placement,
    notice_terms,
    offeror_party,
    placement_record,
    placement_step,
)
from firstright.services.rofr_wire import (
    CapabilityBody,
    GateBody,
    InstructionBody,
    LaunchGateBody,
    NoticeBody,
    OfferEventBody,
    OpenBody,
    PlacementGateBody,
    ResponseBody,
    SignedBody,
    WithdrawBody,
    decision_json,
    event_from,
    iso,
    provenance_steps,
)

log = logging.getLogger("firstright.rofr")

APPEND_ATTEMPTS_MAX = 8
OPERATOR = "operator"


# ---------------------------------------------------------------------------------------------
# Contracts the desk judges by


@dataclass(frozen=True, slots=True)
class DeskClause:
    """One first-refusal clause of one contract version, as the machine needs it."""

    contract: Contract
    clause: FirstRefusalClause
    opened_at: datetime | None = None
    """When the request was opened: the other clauses in force then apply to it."""

    @property
    def owner(self) -> str:
        return self.clause.owner

    @property
    def holder(self) -> str:
        return self.clause.holder

    def rofr_contract(self) -> RofrContract:
        clouds = self.contract.clouds_of(self.clause.holder)
        api = ship = None
        if self.opened_at is not None:
            parties = {"owner": self.clause.owner, "holder": self.clause.holder}
            api = api_exclusivity_of(self.contract, at=self.opened_at, **parties)
            ship = ship_first_of(self.contract, at=self.opened_at, **parties)
        return RofrContract(
            contract_key=self.contract.key,
            owner=self.clause.owner,
            holder=clouds[0] if clouds else self.clause.holder,
            params=self.clause.params,
            clause_id=self.clause.id,
            api_exclusivity=api,
            ship_first=ship,
        )

    def snapshot(self) -> dict[str, Any]:
        return {
            "contract": self.contract.model_dump(mode="json", by_alias=True, exclude_none=True),
            "clause_id": self.clause.id,
        }

    @staticmethod
    def from_snapshot(data: dict[str, Any], opened_at: datetime | None = None) -> DeskClause:
        contract = Contract.model_validate(data["contract"])
        for clause in contract.clauses:
            if isinstance(clause, FirstRefusalClause) and clause.id == data["clause_id"]:
                return DeskClause(contract, clause, opened_at)
        raise AssertionError(f"stored contract lost clause {data['clause_id']}")


def clause_in_force(clause: FirstRefusalClause, contract: Contract, at: datetime) -> bool:
    return clause_active(clause, contract, at)


def choose_clause(
    contracts: Sequence[Contract],
    *,
    at: datetime,
    owner: str | None,
    contract_id: str | None,
    clause_id: str | None,
) -> DeskClause:
    """The first-refusal clause a new request is judged by (the newest version in force)."""
    latest: dict[str, Contract] = {}
    for contract in contracts:
        if contract_id is not None and contract.contract_id != contract_id:
            continue
        if at < contract.effective_from:
            continue
        known = latest.get(contract.contract_id)
        if known is None or contract.effective_from > known.effective_from:
            latest[contract.contract_id] = contract
    found = [
        DeskClause(contract, clause, at)
        for contract in latest.values()
        for clause in contract.clauses
        if isinstance(clause, FirstRefusalClause)
        and (clause_id is None or clause.id == clause_id)
        and (owner is None or clause.owner == owner)
        and clause_in_force(clause, contract, at)
    ]
    wanted = " ".join(
        f"{name}={value}"
        for name, value in (("owner", owner), ("contract", contract_id), ("clause", clause_id))
        if value
    )
    if not found:
        raise InputError(
            f"no first_refusal clause in force at {iso(at)} ({wanted or 'any contract'}); "
            "check the desk's contracts"
        )
    if len(found) > 1:
        names = ", ".join(f"{c.contract.key}#{c.clause.id}" for c in found)
        raise InputError(
            f"several first_refusal clauses apply ({names}); name contract_id/clause_id"
        )
    return found[0]


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Replayed:
    """A request rebuilt from its events."""

    row: RequestRow
    desk_clause: DeskClause
    request: RofrRequest
    events: list[StoredEvent]
    decisions: list[dict[str, Any]]


def body_hash(request_id: str, event_type: str, body: dict[str, Any]) -> str:
    payload = canonical_json({"request_id": request_id, "type": event_type, "body": body})
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def wire_body(model: BaseModel) -> dict[str, Any]:
    """The body as the client sent it (JSON types, unset fields left out)."""
    data: dict[str, Any] = model.model_dump(mode="json", exclude_unset=True)
    return data


def _timer_key(timer: Timer) -> str:
    return f"timer:{timer.request_id}:{timer.kind.value}:{iso(timer.deadline)}"


def _actor_name(actor: Principal | None) -> str:
    return OPERATOR if actor is None else f"{actor.role}:{actor.party}:{actor.key_id}"


@dataclass
class _Pending:
    """Events of one command, built before anything is written."""

    request: RofrRequest
    events: list[NewEvent]
    decisions: list[Decision]
    timer_decisions: list[dict[str, Any]]


class RofrDesk:
    """Durable first-refusal workflows on one database (migrated by the caller)."""

    def __init__(
        self,
        engine: Engine,
        contracts: Sequence[Contract] = (),
        *,
        alerter: Alerter | None = None,
        new_key: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.store = RofrStore(engine)
        self.contracts = list(contracts)
        self.alerter = alerter or Alerter()
        self._new_key = new_key

    # -- access --------------------------------------------------------------------------------

    @staticmethod
    def _must_be(actor: Principal | None, party: str, what: str) -> None:
        if actor is None:
            return
        if actor.role != "party" or actor.party != party:
            raise Forbidden(
                f"only {party!r} may {what}; key {actor.key_id} is {actor.role} {actor.party!r}"
            )

    @staticmethod
    def _may_read(actor: Principal | None, row: RequestRow) -> None:
        if actor is None or actor.role == "admin":
            return
        if actor.role != "party":
            raise Forbidden(f"key {actor.key_id} ({actor.role}) may not use the first-refusal desk")
        if actor.party in (row.owner, row.holder):
            return
        # Same answer as an unknown id: a party learns nothing of requests it is not part of.
        raise NotFound(f"no first-refusal request {row.request_id!r}")

    def _row(self, actor: Principal | None, request_id: str) -> RequestRow:
        row = self.store.request(request_id)
        if row is None:
            raise NotFound(f"no first-refusal request {request_id!r}")
        self._may_read(actor, row)
        return row

    # -- replay --------------------------------------------------------------------------------

    def _replay(self, row: RequestRow) -> Replayed:
        desk_clause = DeskClause.from_snapshot(row.contract, row.created_at)
        contract = desk_clause.rofr_contract()
        events = self.store.events(row.request_id)
        request = open_request(row.request_id, contract)
        decisions: list[dict[str, Any]] = []
        for stored in events:
            event = event_from(stored.type, stored.body, contract.params)
            request, effects = step(request, event, stored.t)
            decisions.extend(
                self._decision_out(effect, stored)
                for effect in effects
                if isinstance(effect, Decision)
            )
        return Replayed(row, desk_clause, request, events, decisions)

    @staticmethod
    def _decision_out(decision: Decision, stored: StoredEvent | None) -> dict[str, Any]:
        out = decision_json(decision)
        if stored is not None:
            out["seq"] = stored.seq
            out["actor"] = stored.actor
            out["trace"][:0] = provenance_steps(stored.body)
        return out

    # -- commands ------------------------------------------------------------------------------

    def open(
        self,
        actor: Principal | None,
        body: OpenBody,
        *,
        key: str | None,
        at: datetime,
        origin: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Open a capacity request (owner); with ``offer``, record the third-party offer too.
        ``origin``: provenance kept on the ``capacity_request`` event (see ``PROVENANCE_KEYS``)."""
        when = body.at or at
        if actor is not None and actor.role != "party":
            raise Forbidden(
                f"only the owner party may open a request; key {actor.key_id} is {actor.role}"
            )
        desk_clause = choose_clause(
            self.contracts,
            at=when,
            owner=actor.party if actor is not None else None,
            contract_id=body.contract_id,
            clause_id=body.clause_id,
        )
        wire = wire_body(body)
        key = self._key(key)
        digest = body_hash(body.request_id, "open", {**wire, **(origin or {})})
        replay = self._idempotent(key, digest)
        if replay is not None:
            return replay
        if self.store.request(body.request_id) is not None:
            raise ConflictError(f"first-refusal request {body.request_id!r} exists already")
        contract = desk_clause.rofr_contract()
        request = open_request(
            body.request_id, contract, category=body.category, quantity_gpus=body.quantity_gpus
        )
        bodies: list[tuple[str, dict[str, Any], str]] = [
            (
                CapacityRequest.TYPE,
                {
                    "category": body.category,
                    "party": desk_clause.owner,
                    "quantity_gpus": body.quantity_gpus,
                    **(origin or {}),
                },
                key,
            )
        ]
        if body.offer is not None:
            bodies.append((TpOfferReceived.TYPE, wire_body(body.offer), f"{key}:offer"))
        pending = _Pending(request, [], [], [])
        for event_type, event_body, event_key in bodies:
            self._step_into(
                pending,
                contract,
                event_type=event_type,
                body=event_body,
                when=when,
                key=event_key,
                digest=digest,
                actor=actor,
            )
        row = RequestRow(
            request_id=body.request_id,
            owner=desk_clause.owner,
            holder=desk_clause.holder,
            contract=desk_clause.snapshot(),
            state=RofrState.INIT.value,
            last_seq=0,
            last_t=when,
            next_timer_kind=None,
            next_timer_at=None,
            created_at=when,
        )
        return self._commit(row, pending, digest, key, create=True, before=RofrState.INIT.value)

    def open_from_placement(
        self,
        actor: Principal | None,
        answer: PlacementAnswer,
        *,
        at: datetime,
        key: str | None = None,
    ) -> dict[str, Any]:
        """Open the first refusal a placement owes and deliver the complete notice (owner).

        The chosen third party's catalog offer is the bona fide offer and the notice terms
        (see ``services/rofr_from_placement.py``); the request id is the placement's id; both
        events are stamped ``at``. ``key`` (default ``placement:<id>``) makes the call
        idempotent: the notice is stored under ``<key>:offer-notice``. The answer has the
        notice's decisions and ``final``: where the capacity goes now."""
        notice = answer.first_refusal
        choice = answer.choice
        if notice is None or choice is None:
            why = "nothing was placed" if choice is None else "no first refusal is owed"
            raise InputError(f"placement {answer.request_id}: {why}; there is nothing to open")
        if actor is not None and actor.party != answer.request.party:
            raise Forbidden(
                f"placement {answer.request_id} is {answer.request.party}'s; key "
                f"{actor.key_id} is {actor.role} {actor.party!r}"
            )
        contract_id, _, _version = notice.contract.partition("@")
        desk_clause = choose_clause(
            self.contracts,
            at=at,
            owner=notice.owner,
            contract_id=contract_id,
            clause_id=notice.clause_id,
        )
        if desk_clause.contract.key != notice.contract:
            raise InputError(
                f"placement {answer.request_id} was decided under {notice.contract}; the desk "
                f"judges {iso(at)} by {desk_clause.contract.key}"
            )
        offeror = offeror_party(desk_clause.contract, choice.offer.provider)
        terms, defaults_step = notice_terms(answer, desk_clause.clause.params)
        request_id = answer.request_id
        key = self._key(key or f"placement:{request_id}")
        opened = self.open(
            actor,
            OpenBody.model_validate(
                {
                    "request_id": request_id,
                    "category": answer.request.category or answer.request.workload,
                    "quantity_gpus": answer.request.gpus,
                    "contract_id": contract_id,
                    "clause_id": notice.clause_id,
                    "offer": {"party": offeror, "terms": terms},
                }
            ),
            key=key,
            at=at,
            origin={
                "placement": placement_record(answer, offeror),
                "provenance": [placement_step(answer, offeror)],
            },
        )
        noticed = self._command(
            actor,
            request_id,
            role="owner",
            what="deliver a notice",
            event_type=NoticeDelivered.TYPE,
            body=NoticeBody.model_validate({"terms": terms, "offeror": offeror}),
            key=f"{key}:offer-notice",
            at=at,
            extra={"provenance": [defaults_step]},
            internal_key=True,
        )
        return {
            "request_id": request_id,
            "placement_id": answer.request_id,
            "offeror": offeror,
            "notice_terms": terms,
            "state": noticed["state"],
            "outcome": noticed["outcome"],
            "decisions": [*opened["decisions"], *noticed["decisions"]],
            "timers": noticed["timers"],
            "final": final_placement(self, request_id).to_json(),
        }

    def offer(
        self,
        actor: Principal | None,
        request_id: str,
        body: OfferEventBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """Record a third party's offer, or a change of its terms (``change``) (owner)."""
        event_type = TpTermsChanged.TYPE if body.change else TpOfferReceived.TYPE
        return self._command(
            actor,
            request_id,
            role="owner",
            what="report offers",
            event_type=event_type,
            body=body,
            key=key,
            at=at,
        )

    def notify(
        self,
        actor: Principal | None,
        request_id: str,
        body: NoticeBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """Deliver the notice to the holder (owner)."""
        return self._command(
            actor,
            request_id,
            role="owner",
            what="deliver a notice",
            event_type=NoticeDelivered.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def respond(
        self,
        actor: Principal | None,
        request_id: str,
        body: ResponseBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """The holder's response to the notice (holder only)."""
        return self._command(
            actor,
            request_id,
            role="holder",
            what="respond",
            event_type=HolderResponse.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def gate(
        self,
        actor: Principal | None,
        request_id: str,
        body: GateBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """May the owner contract with a third party on these terms now? APPROVE or BLOCK with
        the decision trace (owner)."""
        return self._command(
            actor,
            request_id,
            role="owner",
            what="request a contract gate",
            event_type=TpContractRequest.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def signed(
        self,
        actor: Principal | None,
        request_id: str,
        body: SignedBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """A signature report: the owner with a third party, or the holder's definitive
        agreement (reported by the owner or the holder)."""
        if body.signer == "holder":
            return self._command(
                actor,
                request_id,
                role="either",
                what="report the holder's signature",
                event_type=HolderDefinitiveAgreementSigned.TYPE,
                body=body,
                key=key,
                at=at,
            )
        if body.party is None:
            raise InputError("party: a third-party signature names the third party")
        return self._command(
            actor,
            request_id,
            role="owner",
            what="report a signature",
            event_type=TpContractSigned.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def withdraw(
        self,
        actor: Principal | None,
        request_id: str,
        body: WithdrawBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """Withdraw the capacity request (owner)."""
        return self._command(
            actor,
            request_id,
            role="owner",
            what="withdraw",
            event_type=RequestWithdrawn.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def placement_gate(
        self,
        actor: Principal | None,
        request_id: str,
        body: PlacementGateBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """May this workload run on that cloud? APPROVE or BLOCK by API exclusivity and its
        exceptions, with the trace (owner)."""
        return self._command(
            actor,
            request_id,
            role="owner",
            what="request a placement gate",
            event_type=WorkloadPlacementRequest.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def launch_gate(
        self,
        actor: Principal | None,
        request_id: str,
        body: LaunchGateBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """May a product launch (first) on that cloud? APPROVE or BLOCK by ship-first and its
        escape, with the trace (owner)."""
        return self._command(
            actor,
            request_id,
            role="owner",
            what="request a launch gate",
            event_type=LaunchRequest.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def capability(
        self,
        actor: Principal | None,
        request_id: str,
        body: CapabilityBody,
        *,
        key: str | None,
        at: datetime,
    ) -> dict[str, Any]:
        """The holder's answer on supporting a launch (holder only): ship-first's escape reads
        it."""
        return self._command(
            actor,
            request_id,
            role="holder",
            what="answer on launch capabilities",
            event_type=HolderCapabilityResponse.TYPE,
            body=body,
            key=key,
            at=at,
        )

    def _key(self, key: str | None) -> str:
        if key is None:
            return f"auto:{self._new_key()}"
        if not key or len(key) > IDEMPOTENCY_KEY_CHARS_MAX or not key.isprintable():
            raise InputError(
                f"idempotency key must be 1..{IDEMPOTENCY_KEY_CHARS_MAX} printable characters"
            )
        if key.startswith(("timer:", "auto:")) or ":offer" in key or ":instruction:" in key:
            raise InputError(
                "idempotency key: the prefixes timer:/auto: and :offer/:instruction: are reserved"
            )
        return key

    def _idempotent(self, key: str, digest: str) -> dict[str, Any] | None:
        existing = self.store.event_by_key(key)
        if existing is None:
            return None
        if existing.body_sha256 != digest:
            raise ConflictError(
                f"idempotency key {key!r} was used for another command "
                f"(request {existing.request_id}, {existing.type})"
            )
        return {**existing.response, "replayed": True}

    def _command(
        self,
        actor: Principal | None,
        request_id: str,
        *,
        role: str,
        what: str,
        event_type: str,
        body: BaseModel,
        key: str | None,
        at: datetime,
        extra: dict[str, Any] | None = None,
        internal_key: bool = False,
    ) -> dict[str, Any]:
        row = self._row(actor, request_id)
        if role == "owner":
            self._must_be(actor, row.owner, what)
        elif role == "holder":
            self._must_be(actor, row.holder, what)
        elif actor is not None and not (
            actor.role == "party" and actor.party in (row.owner, row.holder)
        ):
            raise Forbidden(f"only {row.owner!r} or {row.holder!r} may {what}")
        wire = {**wire_body(body), **(extra or {})}
        if not internal_key:
            key = self._key(key)
        assert key is not None
        digest = body_hash(request_id, event_type, wire)
        replay = self._idempotent(key, digest)
        if replay is not None:
            return replay
        when = getattr(body, "at", None) or at
        for _attempt in range(APPEND_ATTEMPTS_MAX):
            replayed = self._replay(row)
            self._check_order(replayed, when, event_type)
            if len(replayed.events) >= ROFR_EVENTS_PER_REQUEST_MAX:
                raise InputError(
                    f"request {request_id} has {ROFR_EVENTS_PER_REQUEST_MAX} events, "
                    "the most allowed"
                )
            contract = replayed.desk_clause.rofr_contract()
            pending = _Pending(replayed.request, [], [], [])
            self._fire_until(pending, when, strictly_before=True)
            self._step_into(
                pending,
                contract,
                event_type=event_type,
                body=wire,
                when=when,
                key=key,
                digest=digest,
                actor=actor,
            )
            if event_type == NoticeDelivered.TYPE:
                self._apply_instruction(pending, contract, replayed.row, when, key)
            try:
                return self._commit(row, pending, digest, key, create=False, before=row.state)
            except AppendRace:
                fresh = self.store.request(request_id)
                assert fresh is not None
                row = fresh
            except DuplicateKey:
                replay = self._idempotent(key, digest)
                if replay is not None:
                    return replay
        raise ConflictError(f"request {request_id} is busy; retry the command")

    def _check_order(self, replayed: Replayed, when: datetime, event_type: str) -> None:
        if not replayed.events:
            return
        last = replayed.events[-1]
        if when < last.t or (last.type == TimerFired.TYPE and when <= last.t):
            raise EventOutOfOrder(
                f"{event_type} at {iso(when)} is not after the request's last event "
                f"({last.type} at {iso(last.t)}); events must be in time order",
                request_id=replayed.row.request_id,
                state=replayed.request.state.value,
                event=event_type,
            )

    def _step_into(
        self,
        pending: _Pending,
        contract: RofrContract,
        *,
        event_type: str,
        body: dict[str, Any],
        when: datetime,
        key: str,
        digest: str,
        actor: Principal | None,
        actor_name: str | None = None,
    ) -> None:
        event = event_from(event_type, body, contract.params)
        request, effects = step(pending.request, event, when)
        decisions = [e for e in effects if isinstance(e, Decision)]
        assert len(decisions) == 1, "the machine answers each event with one decision"
        pending.request = request
        pending.decisions.append(decisions[0])
        pending.events.append(
            NewEvent(
                type=event_type,
                body=body,
                t=when,
                idempotency_key=key,
                body_sha256=digest,
                actor=actor_name or _actor_name(actor),
                response={},
            )
        )

    def _fire_until(self, pending: _Pending, now: datetime, *, strictly_before: bool) -> None:
        """Fire every timer whose deadline is before ``now`` (they fire just after it)."""
        while True:
            timer = next_timer(pending.request)
            if timer is None or not (
                timer.deadline < now if strictly_before else timer.deadline <= now
            ):
                return
            body = {
                "kind": timer.kind.value,
                "deadline": iso(timer.deadline),
                "request_id": timer.request_id,
            }
            key = _timer_key(timer)
            digest = body_hash(timer.request_id, TimerFired.TYPE, body)
            request, effects = step(pending.request, TimerFired(timer), timer.deadline)
            decision = next(e for e in effects if isinstance(e, Decision))
            pending.request = request
            pending.decisions.append(decision)
            pending.timer_decisions.append(decision_json(decision))
            pending.events.append(
                NewEvent(
                    type=TimerFired.TYPE,
                    body=body,
                    t=timer.deadline,
                    idempotency_key=key,
                    body_sha256=digest,
                    actor="timer",
                    response={"decision": decision_json(decision)},
                )
            )

    def _commit(
        self,
        row: RequestRow,
        pending: _Pending,
        digest: str,
        key: str,
        *,
        create: bool,
        before: str,
    ) -> dict[str, Any]:
        request = pending.request
        timer = next_timer(request)
        primary = next(i for i, e in enumerate(pending.events) if e.idempotency_key == key)
        decisions_out = [decision_json(d) for d in pending.decisions]
        for index, event in enumerate(pending.events):
            decisions_out[index]["trace"][:0] = provenance_steps(event.body)
        response = {
            "request_id": row.request_id,
            "state": request.state.value,
            "decision": decisions_out[primary],
            "decisions": decisions_out[primary:],
            "timers_fired": pending.timer_decisions,
            "timers": [
                {"kind": t.kind.value, "deadline": iso(t.deadline)} for t in pending_timers(request)
            ],
            "outcome": outcome_of(request).value,
        }
        events = [
            NewEvent(
                type=e.type,
                body=e.body,
                t=e.t,
                idempotency_key=e.idempotency_key,
                body_sha256=e.body_sha256,
                actor=e.actor,
                response=response
                if i == primary
                else (e.response or {"decision": decisions_out[i]}),
            )
            for i, e in enumerate(pending.events)
        ]
        projection = Projection(
            state=request.state.value,
            next_timer_kind=timer.kind.value if timer else None,
            next_timer_at=timer.deadline if timer else None,
        )
        stored = self.store.append(
            row.request_id, row.last_seq, events, projection, create=row if create else None
        )
        self._alert(row, before, pending, stored, decisions_out)
        return response

    def _alert(
        self,
        row: RequestRow,
        before: str,
        pending: _Pending,
        stored: list[StoredEvent],
        decisions_out: list[dict[str, Any]],
    ) -> None:
        state = before
        for event, decision in zip(stored, decisions_out, strict=True):
            base = {
                "request_id": row.request_id,
                "owner": row.owner,
                "holder": row.holder,
                "seq": event.seq,
                "t": iso(event.t),
                "event": event.type,
            }
            if event.type == NoticeDelivered.TYPE:
                self.alerter.emit(
                    "notice_received", {**base, "state": decision["state"], "decision": decision}
                )
            if decision["state"] != state:
                self.alerter.emit(
                    "state_changed",
                    {**base, "from_state": state, "state": decision["state"], "decision": decision},
                )
                state = decision["state"]

    # -- standing instructions -----------------------------------------------------------------

    def _apply_instruction(
        self, pending: _Pending, contract: RofrContract, row: RequestRow, when: datetime, key: str
    ) -> None:
        request = pending.request
        if request.state is not RofrState.OFFER_OPEN or request.baseline is None:
            return
        rules = self.store.instructions(row.holder, active_at=when)
        if not rules:
            return
        terms = request.baseline
        quantity = terms.quantity_gpus or request.full_quantity or 0
        price = effective_price(terms)
        gpu_type = terms.get("gpu_type")
        region = terms.get("region")
        chosen: tuple[InstructionRow, InstructionBody] | None = None
        reason = ""
        for rule in rules:
            policy = InstructionBody.model_validate(rule.body)
            misses = []
            if policy.gpu_types and gpu_type not in policy.gpu_types:
                misses.append(f"gpu_type {gpu_type} not in {policy.gpu_types}")
            if policy.regions and region not in policy.regions:
                misses.append(f"region {region} not in {policy.regions}")
            if price is None or price > policy.price_per_gpu_hour_max:
                misses.append(f"price {price} > {policy.price_per_gpu_hour_max}")
            if not misses:
                chosen = (rule, policy)
                reason = (
                    f"price {price} <= {policy.price_per_gpu_hour_max} USD/GPU-h, "
                    f"gpu_type {gpu_type}, region {region}"
                )
                break
            reason = "; ".join(misses)
        if chosen is None:
            first = InstructionBody.model_validate(rules[0].body)
            if first.otherwise == "ignore":
                return
            kind, amount, rule_id = ResponseKind.DECLINE, None, rules[0].instruction_id
        else:
            rule, policy = chosen
            rule_id = rule.instruction_id
            kind, amount = ResponseKind.ACCEPT, None
            if quantity > policy.quantity_gpus_max:
                params = contract.params
                fraction = Decimal(policy.quantity_gpus_max) / Decimal(quantity)
                allowed = params.partial_exercise == "allowed" and (
                    params.partial_min_fraction is None or fraction >= params.partial_min_fraction
                )
                if allowed:
                    amount = policy.quantity_gpus_max
                    reason += f"; partial: {amount} of {quantity} GPUs"
                else:
                    kind = ResponseKind.DECLINE
                    reason += (
                        f"; {quantity} GPUs > {policy.quantity_gpus_max} and no partial exercise"
                    )
        body: dict[str, Any] = {"kind": kind.value}
        if amount is not None:
            body["quantity_gpus"] = amount
        instruction = {
            "clause": f"standing-instruction:{rule_id}",
            "rule": [],
            "result": kind.value,
            "reason": f"standing instruction {rule_id} of {row.holder}: {reason}",
            "inputs": {"instruction_id": rule_id},
        }
        event_body = {**body, "instruction": instruction}
        auto_key = f"{key}:instruction:{rule_id}"
        event = event_from(HolderResponse.TYPE, body, contract.params)
        after, effects = step(pending.request, event, when)
        decision = next(e for e in effects if isinstance(e, Decision))
        pending.request = after
        pending.decisions.append(decision)
        pending.events.append(
            NewEvent(
                type=HolderResponse.TYPE,
                body=event_body,
                t=when,
                idempotency_key=auto_key,
                body_sha256=body_hash(row.request_id, HolderResponse.TYPE, event_body),
                actor=f"instruction:{rule_id}",
                response={},
            )
        )

    def add_instruction(
        self, actor: Principal | None, holder: str, body: InstructionBody, *, at: datetime
    ) -> dict[str, Any]:
        """Register a standing instruction for ``holder`` (the holder itself, or the operator).
        The instruction id is the idempotency key: same id and body → same answer."""
        self._must_be(actor, holder, "register standing instructions for it")
        holders = {
            clause.holder
            for contract in self.contracts
            for clause in contract.clauses
            if isinstance(clause, FirstRefusalClause)
        }
        if holder not in holders:
            raise Forbidden(f"{holder!r} holds no first-refusal right in the desk's contracts")
        when = body.at or at
        wire = wire_body(body)
        digest = hashlib.sha256(
            canonical_json({"holder": holder, "body": wire}).encode()
        ).hexdigest()
        existing = self.store.instruction(body.instruction_id)
        if existing is None:
            if (
                len(self.store.instructions(holder, active_at=when))
                >= ROFR_INSTRUCTIONS_PER_HOLDER_MAX
            ):
                raise InputError(
                    f"{holder} has {ROFR_INSTRUCTIONS_PER_HOLDER_MAX} active instructions, "
                    "the most allowed"
                )
            existing = self.store.add_instruction(
                InstructionRow(
                    instruction_id=body.instruction_id,
                    holder=holder,
                    body=wire,
                    body_sha256=digest,
                    created_at=when,
                    revoked_at=None,
                )
            )
        if existing.body_sha256 != digest:
            raise ConflictError(f"instruction {body.instruction_id!r} exists with another body")
        return self._instruction_out(existing)

    def instructions(
        self, actor: Principal | None, holder: str | None = None
    ) -> list[dict[str, Any]]:
        if actor is not None and actor.role != "admin":
            if actor.role != "party":
                raise Forbidden(f"key {actor.key_id} ({actor.role}) may not read instructions")
            holder = actor.party
        return [self._instruction_out(row) for row in self.store.instructions(holder)]

    def revoke_instruction(
        self, actor: Principal | None, instruction_id: str, *, at: datetime
    ) -> dict[str, Any]:
        row = self.store.instruction(instruction_id)
        if row is None or (
            actor is not None and actor.role != "admin" and actor.party != row.holder
        ):
            raise NotFound(f"no standing instruction {instruction_id!r}")
        self._must_be(actor, row.holder, "revoke its standing instructions")
        self.store.revoke_instruction(instruction_id, at)
        fresh = self.store.instruction(instruction_id)
        assert fresh is not None
        return self._instruction_out(fresh)

    @staticmethod
    def _instruction_out(row: InstructionRow) -> dict[str, Any]:
        return {
            "instruction_id": row.instruction_id,
            "holder": row.holder,
            "policy": row.body,
            "created_at": iso(row.created_at),
            "revoked_at": iso(row.revoked_at) if row.revoked_at else None,
        }

    # -- reads ---------------------------------------------------------------------------------

    def show(self, actor: Principal | None, request_id: str) -> dict[str, Any]:
        """One request with its state, timers, outcome and every decision with its trace."""
        replayed = self._replay(self._row(actor, request_id))
        return self._summary(replayed, full=True)

    def _summary(self, replayed: Replayed, *, full: bool) -> dict[str, Any]:
        request, row = replayed.request, replayed.row
        out: dict[str, Any] = {
            "request_id": row.request_id,
            "owner": row.owner,
            "holder": row.holder,
            "holder_cloud": replayed.desk_clause.rofr_contract().holder,
            "contract": replayed.desk_clause.contract.key,
            "clause": replayed.desk_clause.clause.id,
            "category": request.category,
            "quantity_gpus": request.quantity_gpus,
            "state": request.state.value,
            "outcome": outcome_of(request).value,
            "allocation": allocation_of(request),
            "cycle": request.cycle,
            "created_at": iso(row.created_at),
            "last_event_at": iso(row.last_t),
            "timers": [
                {"kind": t.kind.value, "deadline": iso(t.deadline)} for t in pending_timers(request)
            ],
        }
        if full:
            out["decisions"] = replayed.decisions
            out["events"] = [
                {"seq": e.seq, "type": e.type, "t": iso(e.t), "actor": e.actor, "body": e.body}
                for e in replayed.events
            ]
        return out

    def list_requests(
        self,
        actor: Principal | None,
        *,
        open_only: bool = True,
        limit: int = 100,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Requests (open ones by default: not terminal) with their next deadlines."""
        if not 1 <= limit <= ROFR_LIST_PAGE_MAX:
            raise InputError(f"limit must be 1..{ROFR_LIST_PAGE_MAX}")
        party: str | None = None
        if actor is not None and actor.role != "admin":
            if actor.role != "party":
                raise Forbidden(f"key {actor.key_id} ({actor.role}) may not read first refusals")
            party = actor.party
        states = None
        if open_only:
            states = [s.value for s in RofrState if s not in TERMINAL_STATES]
        rows = self.store.requests(party=party, states=states, limit=limit, after=after)
        return [
            {
                "request_id": row.request_id,
                "owner": row.owner,
                "holder": row.holder,
                "state": row.state,
                "last_event_at": iso(row.last_t),
                "next_deadline": iso(row.next_timer_at) if row.next_timer_at else None,
                "next_timer": row.next_timer_kind,
            }
            for row in rows
        ]

    # -- timers --------------------------------------------------------------------------------

    def fire_due(self, now: datetime, *, limit: int = ROFR_LIST_PAGE_MAX) -> list[dict[str, Any]]:
        """Fire every timer whose deadline is before ``now``; return the timer decisions.

        Safe to run in several processes at once and after a crash: each firing is stored
        under ``timer:<request>:<kind>:<deadline>``, so it happens exactly once."""
        fired: list[dict[str, Any]] = []
        for due_row in self.store.due(now, limit=limit):
            row = due_row
            for _attempt in range(APPEND_ATTEMPTS_MAX):
                replayed = self._replay(row)
                pending = _Pending(replayed.request, [], [], [])
                self._fire_until(pending, now, strictly_before=True)
                if not pending.events:
                    break
                first = pending.events[0]
                try:
                    self._commit(
                        row,
                        pending,
                        first.body_sha256,
                        first.idempotency_key,
                        create=False,
                        before=row.state,
                    )
                except (AppendRace, DuplicateKey):
                    fresh = self.store.request(row.request_id)
                    assert fresh is not None
                    row = fresh
                    continue
                fired.extend(pending.timer_decisions)
                for decision in pending.timer_decisions:
                    log.info(
                        "timer fired request=%s via=%s t=%s state=%s",
                        row.request_id,
                        decision.get("via"),
                        decision["t"],
                        decision["state"],
                    )
                break
        return fired

    def upcoming(self, until: datetime, *, limit: int = ROFR_LIST_PAGE_MAX) -> list[RequestRow]:
        return self.store.upcoming(until, limit=limit)
