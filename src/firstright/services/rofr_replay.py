"""Replay first-refusal scenario files (the format of specs/rofr_cases.yaml) through the machine.

A case file holds ``defaults`` (a contract with an ``rofr:`` block, named term sets) and
``cases``; each case patches the contract (``given.contract_overrides``: ``rofr:`` and
``clauses:`` keyed by kind ``api_exclusivity`` / ``ship_first``) and the term sets
(``given.terms_overrides``), names its main request (``given.request``) and lists its events.

:func:`load_case_file` checks the whole file first (closed event vocabulary, timestamps, time
order, term sets, clause parameters) and raises ``ValidationFailed`` with ``FILE:LINE:COL`` for
every problem; :func:`replay_case` then drives :mod:`firstright.domain.rofr.machine`: before
each event it fires, across all requests of the case and in deadline order, every timer whose
deadline is before the event's instant (a timer fires just after its deadline); timers due after
the last event never fire. The result is the decisions, the main request's outcome and its
allocation (specs/ROFR.md).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path as FsPath
from typing import Any

from pydantic import ValidationError as PydanticValidationError

from firstright.adapters.yaml_source import YamlDocument, load_yaml
from firstright.domain.contracts.model import RofrParams
from firstright.domain.rofr.contract import RofrContract
from firstright.domain.rofr.decision import Decision
from firstright.domain.rofr.errors import RofrTransitionError
from firstright.domain.rofr.events import (
    EVENT_TYPES,
    BonaFide,
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
    TimerFired,
    TpContractRequest,
    TpContractSigned,
    TpOfferReceived,
    TpTermsChanged,
    WorkloadPlacementRequest,
)
from firstright.domain.rofr.machine import next_timer, open_request, step
from firstright.domain.rofr.other_clauses import ESCAPE_PARSES, ApiExclusivity, ShipFirst
from firstright.domain.rofr.outcome import allocation_of, outcome_of
from firstright.domain.rofr.request import RofrRequest
from firstright.domain.rofr.states import Outcome
from firstright.domain.rofr.terms import NonCash, TermSet, parse_terms
from firstright.errors import NotFound, Problem, ValidationFailed

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class CaseEvent:
    t: datetime
    request_id: str
    event: Event
    path: Path
    """Where the event is in the file (for errors raised while replaying)."""


@dataclass(frozen=True, slots=True)
class Case:
    id: str
    contract: RofrContract
    main_request_id: str
    category: str | None
    quantity_gpus: int | None
    events: tuple[CaseEvent, ...]
    path: Path


@dataclass(frozen=True, slots=True)
class CaseFile:
    file: str
    cases: tuple[Case, ...]
    doc: YamlDocument = field(repr=False)


@dataclass(frozen=True, slots=True)
class CaseResult:
    id: str
    main_request_id: str
    decisions: tuple[Decision, ...]
    outcome: Outcome
    allocation: dict[str, int]
    final: Mapping[str, RofrRequest]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "decisions": [decision_to_json(d, self.main_request_id) for d in self.decisions],
            "outcome": self.outcome.value,
            "allocation": dict(self.allocation),
        }


# ---------------------------------------------------------------------------------------------
# JSON


def iso_z(value: datetime) -> str:
    """ISO-8601 UTC ending in ``Z``."""
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def decision_to_json(decision: Decision, main_request_id: str | None = None) -> dict[str, Any]:
    """A decision as JSON: structured fields (absent when not set), then its explanation."""
    out: dict[str, Any] = {"t": iso_z(decision.t)}
    if decision.request_id != main_request_id:
        out["request_id"] = decision.request_id
    out["event"] = decision.event
    out["state"] = decision.state.value
    if decision.gate is not None:
        out["gate"] = decision.gate.value
    if decision.via is not None:
        out["via"] = decision.via.value
    if decision.note is not None:
        out["note"] = decision.note
    out["needs_review"] = decision.needs_review
    for name in ("deadline", "closing_deadline", "release_until"):
        value = getattr(decision, name)
        if value is not None:
            out[name] = iso_z(value)
    for name in ("cycle", "baseline_price", "timely", "holder_quantity", "released_quantity"):
        value = getattr(decision, name)
        if value is not None:
            out[name] = value
    if decision.missing is not None:
        out["missing"] = list(decision.missing)
    explanation = decision.explanation.to_json()
    out["clause"] = explanation.pop("clause")
    out["rule"] = explanation.pop("rule")
    out["reason"] = explanation.pop("reason")
    out.update(explanation)
    if decision.also:
        out["also"] = [e.to_json() for e in decision.also]
    return out


def dumps(value: Any) -> str:
    """Compact JSON where a ``Decimal`` is written as the exact number it is."""
    if isinstance(value, Decimal):
        text = format(value, "f")
        if "." in text:
            text = text.rstrip("0").rstrip(".")
        return text or "0"
    if isinstance(value, dict):
        items = (f"{json.dumps(str(k))}: {dumps(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(dumps(v) for v in value) + "]"
    return json.dumps(value, ensure_ascii=False)


# ---------------------------------------------------------------------------------------------
# Loading


class _Reader:
    """Collects located problems while reading one case file."""

    def __init__(self, doc: YamlDocument) -> None:
        self.doc = doc
        self.problems: list[Problem] = []

    def fail(self, path: Path, message: str, *, at_key: bool = False) -> None:
        self.problems.append(self.doc.problem(path, message, at_key=at_key))

    def mapping(self, value: Any, path: Path, what: str) -> dict[str, Any] | None:
        if value is None:
            return None
        if not isinstance(value, dict):
            self.fail(path, f"{what} must be a mapping")
            return None
        return value

    def text(self, value: Any, path: Path, what: str, *, required: bool = False) -> str | None:
        if value is None:
            if required:
                self.fail(path, f"missing {what}")
            return None
        if isinstance(value, bool) or not isinstance(value, str | int):
            self.fail(path, f"{what} must be a string")
            return None
        return str(value)

    def boolean(self, value: Any, path: Path, what: str, default: bool | None) -> bool | None:
        if value is None:
            if default is None:
                self.fail(path, f"missing {what} (true or false)")
            return default
        if not isinstance(value, bool):
            self.fail(path, f"{what} must be true or false")
            return default
        return value

    def count(self, value: Any, path: Path, what: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            self.fail(path, f"{what} must be a positive integer")
            return None
        return value

    def instant(self, value: Any, path: Path, what: str) -> datetime | None:
        if value is None:
            self.fail(path, f"missing {what}")
            return None
        if not isinstance(value, str):
            self.fail(path, f"{what} must be an ISO-8601 timestamp string")
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            self.fail(path, f"{what} is not an ISO-8601 timestamp: {value!r}")
            return None
        if parsed.tzinfo is None:
            self.fail(path, f"{what} needs a time zone (e.g. Z): {value!r}")
            return None
        return parsed.astimezone(UTC)

    def strings(self, value: Any, path: Path, what: str) -> tuple[str, ...]:
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.fail(path, f"{what} must be a list of strings")
            return ()
        return tuple(value)


def _merge(base: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings merge key by key, anything else replaces."""
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _params(reader: _Reader, raw: dict[str, Any], sources: Sequence[Path]) -> RofrParams | None:
    """Validate a merged ``rofr:`` block; a problem points at the patch that set the key."""
    try:
        return RofrParams.model_validate(raw)
    except PydanticValidationError as exc:
        for error in exc.errors(include_url=False):
            loc = tuple(error["loc"])
            where = sources[0]
            for source in reversed(sources):
                if reader.doc.has((*source, *loc[:1])):
                    where = source
                    break
            path = (*where, *(p for p in loc if reader.doc.has((*where, *loc[: loc.index(p) + 1]))))
            message = str(error["msg"]).removeprefix("Value error, ")
            dotted = ".".join(str(p) for p in loc)
            reader.fail(path, f"rofr.{dotted}: {message}" if dotted else f"rofr: {message}")
        return None


def _clauses(
    reader: _Reader,
    raw: Mapping[str, Any],
    path: Path,
    base: RofrContract | None,
) -> tuple[ApiExclusivity | None, ShipFirst | None]:
    api = base.api_exclusivity if base is not None else None
    ship = base.ship_first if base is not None else None
    for kind, body in raw.items():
        where = (*path, kind)
        params = reader.mapping(body, where, f"clause {kind}")
        if params is None:
            continue
        if kind == "api_exclusivity":
            platform = reader.text(
                params.get("platform"), (*where, "platform"), "platform", required=True
            )
            until_raw = params.get("until")
            until: datetime | None = None
            until_event: str | None = None
            if isinstance(until_raw, str) and until_raw[:1].isdigit():
                until = reader.instant(until_raw, (*where, "until"), "until")
            elif until_raw is not None:
                until_event = reader.text(until_raw, (*where, "until"), "until")
            api = ApiExclusivity(
                clause_id=str(params.get("id") or "api_exclusivity"),
                platform=platform or "",
                workloads=frozenset(
                    reader.strings(params.get("workloads"), (*where, "workloads"), "workloads")
                ),
                exceptions=frozenset(
                    reader.strings(params.get("exceptions"), (*where, "exceptions"), "exceptions")
                ),
                until=until,
                until_event=until_event,
            )
        elif kind == "ship_first":
            platform = reader.text(
                params.get("platform"), (*where, "platform"), "platform", required=True
            )
            escape = params.get("escape", "cannot_and_chooses_not")
            if escape not in ESCAPE_PARSES:
                reader.fail((*where, "escape"), f"escape must be one of {sorted(ESCAPE_PARSES)}")
                continue
            flag = params.get("interpretation_flag")
            ship = ShipFirst(
                clause_id=str(params.get("id") or "ship_first"),
                platform=platform or "",
                escape=str(escape),
                interpretation_flag=str(flag) if flag is not None else None,
            )
        else:
            reader.fail(
                where, f"unknown clause kind {kind!r} (api_exclusivity, ship_first)", at_key=True
            )
    return api, ship


class _CaseReader:
    """Reads one case: its contract, term sets and events."""

    def __init__(
        self,
        reader: _Reader,
        defaults: dict[str, Any],
        case: dict[str, Any],
        path: Path,
    ) -> None:
        self.reader = reader
        self.defaults = defaults
        self.case = case
        self.path = path
        self.term_sets: dict[str, dict[str, Any]] = {}
        self.rofr_raw: dict[str, Any] = {}
        self.rofr_sources: list[Path] = []

    def contract(self) -> RofrContract | None:
        reader = self.reader
        base = (
            reader.mapping(
                self.defaults.get("contract"), ("defaults", "contract"), "defaults.contract"
            )
            or {}
        )
        given = reader.mapping(self.case.get("given"), (*self.path, "given"), "given") or {}
        overrides = (
            reader.mapping(
                given.get("contract_overrides"),
                (*self.path, "given", "contract_overrides"),
                "contract_overrides",
            )
            or {}
        )
        rofr_base = reader.mapping(base.get("rofr"), ("defaults", "contract", "rofr"), "rofr") or {}
        rofr_patch = (
            reader.mapping(
                overrides.get("rofr"), (*self.path, "given", "contract_overrides", "rofr"), "rofr"
            )
            or {}
        )
        for key in overrides:
            if key not in ("rofr", "clauses"):
                reader.fail(
                    (*self.path, "given", "contract_overrides", key),
                    f"unknown override {key!r} (rofr, clauses)",
                    at_key=True,
                )
        params = _params(
            reader,
            _merge(rofr_base, rofr_patch),
            [("defaults", "contract", "rofr"), (*self.path, "given", "contract_overrides", "rofr")],
        )
        owner = reader.text(
            base.get("owner"), ("defaults", "contract", "owner"), "owner", required=True
        )
        holder = reader.text(
            base.get("holder"), ("defaults", "contract", "holder"), "holder", required=True
        )
        version = given.get("contract_version", base.get("version", "1"))
        key = f"{base.get('contract_id', 'contract')}@{version}"
        api, ship = _clauses(
            reader,
            reader.mapping(base.get("clauses"), ("defaults", "contract", "clauses"), "clauses")
            or {},
            ("defaults", "contract", "clauses"),
            None,
        )
        patch = (
            reader.mapping(
                overrides.get("clauses"),
                (*self.path, "given", "contract_overrides", "clauses"),
                "clauses",
            )
            or {}
        )
        base_contract = None
        if params is not None and owner and holder:
            base_contract = RofrContract(
                key, owner, holder, params, api_exclusivity=api, ship_first=ship
            )
        api, ship = _clauses(
            reader, patch, (*self.path, "given", "contract_overrides", "clauses"), base_contract
        )
        if params is None or not owner or not holder:
            return None
        self.rofr_raw = _merge(rofr_base, rofr_patch)
        self.rofr_sources = [
            ("defaults", "contract", "rofr"),
            (*self.path, "given", "contract_overrides", "rofr"),
        ]
        return RofrContract(key, owner, holder, params, api_exclusivity=api, ship_first=ship)

    def load_term_sets(self) -> None:
        reader = self.reader
        raw = (
            reader.mapping(self.defaults.get("terms"), ("defaults", "terms"), "defaults.terms")
            or {}
        )
        for name, values in raw.items():
            body = reader.mapping(values, ("defaults", "terms", name), f"term set {name}")
            if body is not None:
                self.term_sets[str(name)] = dict(body)
        given = self.case.get("given") or {}
        patch = (
            reader.mapping(
                given.get("terms_overrides"),
                (*self.path, "given", "terms_overrides"),
                "terms_overrides",
            )
            or {}
        )
        if patch and all(k in self.term_sets and isinstance(v, dict) for k, v in patch.items()):
            for name, values in patch.items():
                self.term_sets[name] = _merge(self.term_sets[name], values)
        elif patch:
            self.term_sets = {name: _merge(body, patch) for name, body in self.term_sets.items()}

    def terms(
        self, raw: dict[str, Any], path: Path, params: RofrParams, *, required: bool = False
    ) -> TermSet | None:
        reader = self.reader
        name = raw.get("terms")
        overrides = reader.mapping(
            raw.get("terms_overrides"), (*path, "terms_overrides"), "terms_overrides"
        )
        if name is None and overrides is None:
            if required:
                reader.fail(path, "missing terms (the name of a term set)")
            return None
        if name is None:
            if not self.term_sets:
                reader.fail((*path, "terms_overrides"), "terms_overrides without a term set")
                return None
            name = next(iter(self.term_sets))
        if not isinstance(name, str) or name not in self.term_sets:
            known = ", ".join(sorted(self.term_sets)) or "none"
            reader.fail((*path, "terms"), f"unknown term set {name!r} (defined: {known})")
            return None
        values = _merge(self.term_sets[name], overrides or {})
        if raw.get("type") != HolderResponse.TYPE and raw.get("quantity_gpus") is not None:
            values["quantity_gpus"] = raw["quantity_gpus"]  # a quantity stated on the event
        non_cash = self.non_cash(raw.get("non_cash"), (*path, "non_cash"))
        try:
            return parse_terms(values, params, non_cash)
        except ValueError as exc:
            where = (*path, "terms_overrides") if overrides else (*path, "terms")
            reader.fail(where, f"term set {name}: {exc}")
            return None

    def non_cash(self, raw: Any, path: Path) -> NonCash | None:
        body = self.reader.mapping(raw, path, "non_cash")
        if body is None:
            return None
        amount = body.get("cash_equivalent_usd")
        if isinstance(amount, bool) or not isinstance(amount, int | Decimal) or amount < 0:
            self.reader.fail(
                (*path, "cash_equivalent_usd"), "cash_equivalent_usd must be a non-negative number"
            )
            return None
        return NonCash(str(body.get("kind", "non_cash")), Decimal(amount))

    def event(
        self, raw: dict[str, Any], path: Path, contract: RofrContract
    ) -> tuple[Event | None, RofrContract]:
        """One event (None after a problem) and the contract in force after it."""
        r = self.reader
        kind = raw.get("type")
        params = contract.params

        def party() -> str:
            return r.text(raw.get("party"), (*path, "party"), "party", required=True) or ""

        if kind == CapacityRequest.TYPE:
            return CapacityRequest(
                category=r.text(raw.get("category"), (*path, "category"), "category"),
                party=r.text(raw.get("party"), (*path, "party"), "party"),
                quantity_gpus=r.count(
                    raw.get("quantity_gpus"), (*path, "quantity_gpus"), "quantity_gpus"
                ),
            ), contract
        if kind == TpOfferReceived.TYPE:
            bona = r.mapping(raw.get("bona_fide"), (*path, "bona_fide"), "bona_fide") or {}
            flags = {}
            for name in (
                "written",
                "signed",
                "material_terms_complete",
                "arms_length",
                "good_faith",
            ):
                flags[name] = bool(
                    r.boolean(bona.get(name), (*path, "bona_fide", name), name, True)
                )
            return TpOfferReceived(
                party=party(),
                terms=self.terms(raw, path, params),
                bona_fide=BonaFide(**flags),
                package=raw.get("package") is not None,
            ), contract
        if kind == NoticeDelivered.TYPE:
            terms = self.terms(raw, path, params)
            offeror = r.text(raw.get("offeror"), (*path, "offeror"), "offeror")
            missing = r.strings(raw.get("missing"), (*path, "missing"), "missing")
            complete = r.boolean(raw.get("complete"), (*path, "complete"), "complete", False)
            if raw.get("complete") is None:
                present = {name for name, _ in terms} if terms is not None else set()
                if offeror:
                    present.add("offeror")
                if raw.get("offer_documents", True) is not False:
                    present.add("offer_documents")
                computed = tuple(f for f in params.required_notice_fields if f not in present)
                complete, missing = not computed, missing or computed
            sent_at = None
            if raw.get("sent_at") is not None:
                sent_at = r.instant(raw.get("sent_at"), (*path, "sent_at"), "sent_at")
            return NoticeDelivered(terms, offeror, bool(complete), missing, sent_at), contract
        if kind == HolderResponse.TYPE:
            try:
                response = ResponseKind(str(raw.get("kind")))
            except ValueError:
                r.fail((*path, "kind"), f"kind must be one of {[k.value for k in ResponseKind]}")
                return None, contract
            return HolderResponse(
                kind=response,
                quantity_gpus=r.count(
                    raw.get("quantity_gpus"), (*path, "quantity_gpus"), "quantity_gpus"
                ),
                terms=self.terms(raw, path, params),
                condition=r.text(raw.get("condition"), (*path, "condition"), "condition"),
            ), contract
        if kind == HolderDefinitiveAgreementSigned.TYPE:
            return HolderDefinitiveAgreementSigned(), contract
        if kind == TpTermsChanged.TYPE:
            changed = self.terms(raw, path, params, required=True)
            if changed is None:
                return None, contract
            return TpTermsChanged(party(), changed), contract
        if kind == TpContractRequest.TYPE:
            return TpContractRequest(
                party=party(),
                terms=self.terms(raw, path, params),
                workload=r.text(raw.get("workload"), (*path, "workload"), "workload"),
            ), contract
        if kind == TpContractSigned.TYPE:
            return TpContractSigned(party(), self.terms(raw, path, params)), contract
        if kind == RequestWithdrawn.TYPE:
            return RequestWithdrawn(), contract
        if kind == ContractAmended.TYPE:
            amended = self.amend(raw, path, contract)
            return (ContractAmended(amended), amended) if amended else (None, contract)
        if kind == WorkloadPlacementRequest.TYPE:
            return WorkloadPlacementRequest(
                party=party(),
                workload=r.text(raw.get("workload"), (*path, "workload"), "workload", required=True)
                or "",
                customer_segment=r.text(
                    raw.get("customer_segment"), (*path, "customer_segment"), "customer_segment"
                ),
            ), contract
        if kind == LaunchRequest.TYPE:
            return LaunchRequest(
                party=party(),
                first_launch=bool(
                    r.boolean(
                        raw.get("first_launch"), (*path, "first_launch"), "first_launch", True
                    )
                ),
                product=r.text(raw.get("product"), (*path, "product"), "product"),
                workload=r.text(raw.get("workload"), (*path, "workload"), "workload"),
            ), contract
        if kind == HolderCapabilityResponse.TYPE:
            can = r.boolean(raw.get("can_support"), (*path, "can_support"), "can_support", None)
            chooses = r.boolean(
                raw.get("chooses_to_support"),
                (*path, "chooses_to_support"),
                "chooses_to_support",
                None,
            )
            if can is None or chooses is None:
                return None, contract
            committed = raw.get("committed_date")
            return HolderCapabilityResponse(
                can, chooses, str(committed) if committed is not None else None
            ), contract
        r.fail(
            (*path, "type"),
            f"unknown event type {kind!r}; expected one of: {', '.join(EVENT_TYPES)}",
        )
        return None, contract

    def amend(self, raw: dict[str, Any], path: Path, contract: RofrContract) -> RofrContract | None:
        r = self.reader
        patch = r.mapping(raw.get("rofr"), (*path, "rofr"), "rofr") or {}
        clauses = r.mapping(raw.get("clauses"), (*path, "clauses"), "clauses") or {}
        if not patch and not clauses:
            r.fail(path, "contract_amended needs rofr: {...} and/or clauses: {...}")
            return None
        self.rofr_raw = _merge(self.rofr_raw, patch)
        self.rofr_sources.append((*path, "rofr"))
        params = _params(r, self.rofr_raw, self.rofr_sources)
        api, ship = _clauses(r, clauses, (*path, "clauses"), contract)
        if params is None:
            return None
        version = raw.get("version")
        key = contract.contract_key
        if version is not None:
            key = f"{key.split('@', 1)[0]}@{version}"
        return RofrContract(
            key, contract.owner, contract.holder, params, contract.clause_id, api, ship
        )

    def read(self) -> Case | None:
        r = self.reader
        case_id = r.text(self.case.get("id"), (*self.path, "id"), "case id", required=True)
        contract = self.contract()
        self.load_term_sets()
        given = self.case.get("given") or {}
        request = r.mapping(given.get("request"), (*self.path, "given", "request"), "request") or {}
        main_id = (
            r.text(request.get("id"), (*self.path, "given", "request", "id"), "request id")
            or f"{case_id}-request"
        )
        category = r.text(
            request.get("category"), (*self.path, "given", "request", "category"), "category"
        )
        quantity = r.count(
            request.get("quantity_gpus"),
            (*self.path, "given", "request", "quantity_gpus"),
            "quantity_gpus",
        )
        raw_events = self.case.get("events")
        if not isinstance(raw_events, list):
            r.fail((*self.path, "events"), "events must be a list")
            return None
        if contract is None:
            return None
        events: list[CaseEvent] = []
        previous: datetime | None = None
        current = contract
        for index, raw in enumerate(raw_events):
            path = (*self.path, "events", index)
            body = r.mapping(raw, path, "an event")
            if body is None:
                continue
            t = r.instant(body.get("t"), (*path, "t"), "t")
            event, current = self.event(body, path, current)
            if t is not None:
                if previous is not None and t < previous:
                    r.fail(
                        (*path, "t"),
                        f"events out of order: {iso_z(t)} is before the previous event "
                        f"at {iso_z(previous)}",
                    )
                previous = t
            rid = r.text(body.get("request_id"), (*path, "request_id"), "request_id") or main_id
            if event is not None and t is not None:
                events.append(CaseEvent(t, rid, event, path))
        if case_id is None:
            return None
        return Case(case_id, contract, main_id, category, quantity, tuple(events), self.path)


def load_case_file(source: str | os.PathLike[str], *, text: str | None = None) -> CaseFile:
    """Read and check a case file (``text`` given: parse it, naming it ``source``)."""
    name = os.fspath(source)
    doc = load_yaml(text, file=name) if text is not None else load_yaml(FsPath(source), file=name)
    reader = _Reader(doc)
    data = doc.data
    if not isinstance(data, dict):
        raise ValidationFailed(
            [doc.problem((), "a case file is a mapping with defaults and cases")]
        )
    defaults = reader.mapping(data.get("defaults"), ("defaults",), "defaults") or {}
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        reader.fail(("cases",), "cases must be a non-empty list")
        raise ValidationFailed(reader.problems)
    cases: list[Case] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_cases):
        path: Path = ("cases", index)
        body = reader.mapping(raw, path, "a case")
        if body is None:
            continue
        case = _CaseReader(reader, defaults, body, path).read()
        if case is not None:
            if case.id in seen:
                reader.fail((*path, "id"), f"duplicate case id {case.id!r}")
            seen.add(case.id)
            cases.append(case)
    if reader.problems:
        raise ValidationFailed(reader.problems)
    return CaseFile(name, tuple(cases), doc)


# ---------------------------------------------------------------------------------------------
# Replaying


def replay_case(case: Case, doc: YamlDocument | None = None) -> CaseResult:
    """Drive the machine through one case; see the module docstring."""
    requests: dict[str, RofrRequest] = {
        case.main_request_id: open_request(
            case.main_request_id,
            case.contract,
            category=case.category,
            quantity_gpus=case.quantity_gpus,
        )
    }
    contract = case.contract
    decisions: list[Decision] = []

    def apply(rid: str, event: Event, now: datetime, where: Path) -> None:
        try:
            after, effects = step(requests[rid], event, now)
        except RofrTransitionError as exc:
            if doc is None:
                raise
            raise ValidationFailed([doc.problem(where, exc.message)]) from exc
        requests[rid] = after
        decisions.extend(e for e in effects if isinstance(e, Decision))

    def fire_before(t: datetime | None, where: Path) -> None:
        while True:
            due = [
                (timer.deadline, order, timer)
                for order, request in enumerate(requests.values())
                if (timer := next_timer(request)) is not None and (t is None or timer.deadline < t)
            ]
            if not due:
                return
            _, _, timer = min(due, key=lambda item: (item[0], item[1]))
            apply(timer.request_id, TimerFired(timer), timer.deadline, where)

    for item in case.events:
        fire_before(item.t, item.path)
        if isinstance(item.event, ContractAmended):
            contract = item.event.contract
            for rid in list(requests):
                apply(rid, item.event, item.t, item.path)
            continue
        if item.request_id not in requests:
            category = item.event.category if isinstance(item.event, CapacityRequest) else None
            requests[item.request_id] = open_request(
                item.request_id, contract, category=category or case.category
            )
        apply(item.request_id, item.event, item.t, item.path)
    main = requests[case.main_request_id]
    return CaseResult(
        id=case.id,
        main_request_id=case.main_request_id,
        decisions=tuple(decisions),
        outcome=outcome_of(main),
        allocation=allocation_of(main),
        final=dict(requests),
    )


def replay_file(
    path: str | os.PathLike[str], *, case_id: str | None = None, text: str | None = None
) -> list[CaseResult]:
    """Load, check and replay a case file (one case with ``case_id``)."""
    loaded = load_case_file(path, text=text)
    cases = loaded.cases
    if case_id is not None:
        cases = tuple(c for c in cases if c.id == case_id)
        if not cases:
            known = ", ".join(c.id for c in loaded.cases)
            raise NotFound(f"no case {case_id!r} in {loaded.file} (cases: {known})")
    return [replay_case(case, loaded.doc) for case in cases]
