"""The contracts compiled for one instant: which providers a demand may use, and why.

``Policy.compile(contracts, at)`` picks what is in force at ``at`` and precomputes a matcher per
clause, indexed by the party a clause binds, so ``policy.gate(demand)`` is a few dictionary and
set operations (microseconds) and is cached per demand. Pure: no clock, no I/O.

What is in force at ``at``
    For each contract id, the latest version with ``effective_from <= at`` (unless that version's
    ``effective_until`` has passed). Inside it, a clause is in force when ``at`` lies in its
    ``effective`` interval (``from`` inclusive, ``until`` exclusive). A clause ending with a named
    event (``effective.until_event``, e.g. ``agi_verified_by_panel``) stays in force unless the
    caller says the event happened (``events_happened``).

How a demand is gated (default logic, as in Catala: the exception wins over its default)
    1. ``exclusivity`` clauses whose ``owner`` is the demand's party and whose selector matches
       restrict the demand to their ``providers`` (rule ``exclusivity.restrict``).
    2. A ``carve_out`` / ``exception`` that overrides such a clause and matches the demand wins
       over it: with ``providers`` it adds them to that clause's allowed set (``*.extend``);
       without, it lifts the clause for this demand (``*.lift``). A bound ``max_gpus`` is checked
       against ``demand.gpus``: above it, the exemption does not apply (``*.bound_exceeded``).
       ``max_spend_usd`` is a budget settled against usage, not checked per demand.
       A clause that overrides another clause of its own kind supersedes it for the demand it
       matches (``exclusivity.superseded``).
    3. The remaining restrictions are of equal standing and all hold: the allowed set is their
       intersection. When they allow disjoint sets, that is a ``Conflict`` naming the clauses, and
       the gate allows nothing (``policy.conflict``); nothing is ever silently picked.
    4. ``first_refusal`` is due when the demand's party is the clause's owner, its category
       (``demand.category``, else the workload) is in ``scope.covered_categories`` and not in
       ``scope.exempt``, ``at`` is within the right's ``effective_from`` / ``terminated_at``, and
       no carve-out that overrides it matches. A carve-out with ``providers`` waives the right only
       for those providers (``FirstRefusalDue.waived_providers``). Two different rights due for the
       same demand are a conflict.
    5. ``ship_first`` is reported for matching demand of its owner, with its providers and escape.

Every step appends a ``TraceStep`` (clause id, contract key, kind, rule, inputs, result).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from firstright.domain.contracts.demand import Demand
from firstright.domain.contracts.model import (
    Clause,
    CommitmentClause,
    Contract,
    ExclusivityClause,
    ExemptionClause,
    FirstRefusalClause,
    IpLicenseClause,
    RofrParams,
    Selector,
    ShipFirstClause,
)
from firstright.domain.contracts.trace import TraceStep
from firstright.domain.contracts.versions import ContractSet, version_in_force

GATE_CACHE_ENTRIES_MAX = 65_536
"""Gates remembered per policy; the cache starts afresh when full."""

_SELECTOR_FIELDS = (
    ("workloads", "workload"),
    ("categories", "scope_category"),
    ("channels", "channel"),
    ("products", "product"),
    ("customers", "customer"),
)
_SHOWN_AS = {"scope_category": "category"}
_MODEL_ASSETS = frozenset({"models", "model_weights"})

Checks = tuple[tuple[str, frozenset[str]], ...]


# ---------------------------------------------------------------------------------------------
# Results


@dataclass(frozen=True, slots=True)
class Conflict:
    """Clauses of equal standing that disagree about one demand."""

    clause_ids: tuple[str, ...]
    contracts: tuple[str, ...]
    rule: str
    message: str

    def to_json(self) -> dict[str, Any]:
        return {
            "clause_ids": list(self.clause_ids),
            "contracts": list(self.contracts),
            "rule": self.rule,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class FirstRefusalDue:
    """A right of first refusal that applies: offer to ``holder`` (on its providers) first."""

    clause: FirstRefusalClause
    contract: str
    holder: str
    holder_providers: frozenset[str]
    owner: str
    waived_providers: frozenset[str] = frozenset()
    """Providers a carve-out lets the owner use without going through the right."""

    @property
    def clause_id(self) -> str:
        return self.clause.id

    @property
    def params(self) -> RofrParams:
        return self.clause.params

    def to_json(self) -> dict[str, Any]:
        return {
            "clause_id": self.clause.id,
            "contract": self.contract,
            "holder": self.holder,
            "holder_providers": sorted(self.holder_providers),
            "owner": self.owner,
            "waived_providers": sorted(self.waived_providers),
        }


@dataclass(frozen=True, slots=True)
class ShipFirstDue:
    """A ship-first duty that applies: launch on ``providers`` first unless the escape holds."""

    clause: ShipFirstClause
    contract: str
    holder: str
    owner: str
    providers: frozenset[str]
    escape: str

    @property
    def clause_id(self) -> str:
        return self.clause.id

    def to_json(self) -> dict[str, Any]:
        return {
            "clause_id": self.clause.id,
            "contract": self.contract,
            "holder": self.holder,
            "owner": self.owner,
            "providers": sorted(self.providers),
            "escape": self.escape,
        }


StepRecord = tuple[Callable[..., TraceStep], tuple[Any, ...]]
"""A trace step not yet built: the builder and its arguments (built when ``trace`` is read)."""


class Gate:
    """What the contracts say about one demand. Treat as immutable.

    ``trace`` is built on first access from compact records, so a router that only needs
    ``allows`` never pays for formatting the explanation."""

    __slots__ = (
        "_records",
        "_trace",
        "allowed_providers",
        "conflicts",
        "first_refusal",
        "restricting_clause_ids",
        "ship_first",
    )

    allowed_providers: frozenset[str] | None
    """``None``: no clause restricts the demand. Empty: nothing is allowed (see ``conflicts``)."""
    first_refusal: FirstRefusalDue | None
    ship_first: ShipFirstDue | None
    conflicts: tuple[Conflict, ...]
    restricting_clause_ids: tuple[str, ...]
    """The clauses whose restriction is in ``allowed_providers``."""

    def __init__(
        self,
        allowed_providers: frozenset[str] | None,
        *,
        trace: Sequence[TraceStep] = (),
        first_refusal: FirstRefusalDue | None = None,
        ship_first: ShipFirstDue | None = None,
        conflicts: tuple[Conflict, ...] = (),
        restricting_clause_ids: tuple[str, ...] = (),
        records: Sequence[StepRecord] = (),
    ) -> None:
        self.allowed_providers = allowed_providers
        self.first_refusal = first_refusal
        self.ship_first = ship_first
        self.conflicts = conflicts
        self.restricting_clause_ids = restricting_clause_ids
        self._records: tuple[StepRecord, ...] = tuple(records)
        self._trace: tuple[TraceStep, ...] | None = None if records else tuple(trace)

    @property
    def trace(self) -> tuple[TraceStep, ...]:
        """Every step of the decision, in the order it was taken."""
        if self._trace is None:
            self._trace = tuple(build(*args) for build, args in self._records)
        return self._trace

    def allows(self, provider: str) -> bool:
        return self.allowed_providers is None or provider in self.allowed_providers

    def __repr__(self) -> str:
        allowed = None if self.allowed_providers is None else sorted(self.allowed_providers)
        return (
            f"Gate(allowed_providers={allowed}, restricting={list(self.restricting_clause_ids)}, "
            f"first_refusal={self.first_refusal.clause_id if self.first_refusal else None}, "
            f"ship_first={self.ship_first.clause_id if self.ship_first else None}, "
            f"conflicts={len(self.conflicts)})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "allowed_providers": (
                None if self.allowed_providers is None else sorted(self.allowed_providers)
            ),
            "restricting_clause_ids": list(self.restricting_clause_ids),
            "first_refusal": self.first_refusal.to_json() if self.first_refusal else None,
            "ship_first": self.ship_first.to_json() if self.ship_first else None,
            "conflicts": [c.to_json() for c in self.conflicts],
            "trace": [s.to_json() for s in self.trace],
        }


UNRESTRICTED = Gate(None)
"""The gate of a demand no clause in force speaks about."""


# ---------------------------------------------------------------------------------------------
# Compiled clauses


def _checks(selector: Selector) -> Checks:
    found: list[tuple[str, frozenset[str]]] = []
    for attribute, demand_field in _SELECTOR_FIELDS:
        values: list[str] = getattr(selector, attribute)
        if values:
            found.append((demand_field, frozenset(values)))
    return tuple(found)


def _matches(checks: Checks, demand: Demand) -> bool:
    for demand_field, values in checks:
        value = (
            demand.scope_category if demand_field == "category" else getattr(demand, demand_field)
        )
        if value not in values:
            return False
    return True


def _inputs(checks: Checks, demand: Demand, **extra: str) -> dict[str, str]:
    shown = {"party": demand.party}
    for demand_field, _ in checks:
        value = (
            demand.scope_category if demand_field == "category" else getattr(demand, demand_field)
        )
        shown[demand_field] = str(value)
    shown.update(extra)
    return shown


def _names(values: Iterable[str]) -> str:
    return ",".join(sorted(values)) or "-"


@dataclass(slots=True)
class _Exemption:
    clause: ExemptionClause
    contract: str
    checks: Checks
    providers: frozenset[str]
    max_gpus: int | None


@dataclass(slots=True)
class _Binding:
    """An exclusivity, first-refusal or ship-first clause with what can override it."""

    clause: ExclusivityClause | FirstRefusalClause | ShipFirstClause
    contract: str
    checks: Checks
    providers: frozenset[str]
    exemptions: list[_Exemption] = field(default_factory=list)
    superseded_by: list[_Binding] = field(default_factory=list)
    providers_text: str = ""
    in_force: bool = True


class _Index:
    """The bindings of one party, indexed by the demand field most of them select on, so a gate
    only tests the clauses that can match. Candidates keep file order."""

    __slots__ = ("by_value", "field", "rest")

    def __init__(self, bindings: Sequence[_Binding]) -> None:
        counts: dict[str, int] = {}
        for binding in bindings:
            for demand_field, _ in binding.checks:
                counts[demand_field] = counts.get(demand_field, 0) + 1
        self.field = max(counts, key=lambda f: (counts[f], f)) if counts else ""
        unindexed = [b for b in bindings if not self._values(b)]
        self.rest: tuple[_Binding, ...] = tuple(unindexed)
        values: set[str] = set()
        for binding in bindings:
            values |= self._values(binding)
        self.by_value: dict[str | None, tuple[_Binding, ...]] = {
            value: tuple(b for b in bindings if value in self._values(b) or b in unindexed)
            for value in sorted(values)
        }

    def _values(self, binding: _Binding) -> frozenset[str]:
        for demand_field, values in binding.checks:
            if demand_field == self.field:
                return values
        return frozenset()

    def candidates(self, demand: Demand) -> tuple[_Binding, ...]:
        if not self.field:
            return self.rest
        return self.by_value.get(getattr(demand, self.field), self.rest)


def _in_force(clause: Clause, at: datetime, events_happened: frozenset[str]) -> bool:
    effective = clause.effective
    if effective.from_ is not None and at < effective.from_:
        return False
    if effective.until is not None and at >= effective.until:
        return False
    return effective.until_event is None or effective.until_event not in events_happened


def _rofr_in_force(params: RofrParams, at: datetime) -> bool:
    if params.effective_from is not None and at < params.effective_from:
        return False
    return params.terminated_at is None or at < params.terminated_at


def _model_covered(patterns: Sequence[str], model: str) -> bool:
    if not patterns:
        return True
    for pattern in patterns:
        if pattern.endswith("*"):
            if model.startswith(pattern[:-1]):
                return True
        elif model == pattern:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# The policy


class Policy:
    """The contracts in force at one instant, compiled for fast gating. Immutable once built."""

    def __init__(
        self,
        contracts: Sequence[Contract],
        at: datetime,
        events_happened: frozenset[str] = frozenset(),
        cache_entries_max: int = GATE_CACHE_ENTRIES_MAX,
    ) -> None:
        assert at.tzinfo is not None, "a policy is compiled for an aware instant"
        self.at = at
        self.events_happened = events_happened
        self.contracts = tuple(contracts)
        self._cache: dict[Demand, Gate] = {}
        self._cache_entries_max = cache_entries_max
        self._clauses: list[tuple[str, Clause]] = []
        self._exclusivity: dict[str, list[_Binding]] = {}
        self._first_refusal: dict[str, list[_Binding]] = {}
        self._ship_first: dict[str, list[_Binding]] = {}
        self._licenses: dict[tuple[str, str], list[tuple[str, IpLicenseClause]]] = {}
        for contract in self.contracts:
            self._compile_contract(contract)
        self._bound_parties = (
            frozenset(self._exclusivity)
            | frozenset(self._first_refusal)
            | frozenset(self._ship_first)
        )
        self._exclusivity_index = {p: _Index(b) for p, b in self._exclusivity.items()}
        self._ship_first_index = {p: _Index(b) for p, b in self._ship_first.items()}

    @classmethod
    def compile(
        cls,
        contracts: ContractSet | Sequence[Contract],
        at: datetime,
        *,
        events_happened: frozenset[str] = frozenset(),
        cache_entries_max: int = GATE_CACHE_ENTRIES_MAX,
    ) -> Policy:
        """The policy at ``at``: for a ``ContractSet`` (or a plain list of versions) the version
        of each contract in force then."""
        assert at.tzinfo is not None, "a policy is compiled for an aware instant"
        if isinstance(contracts, ContractSet):
            chosen = contracts.in_force_at(at)
        else:
            by_id: dict[str, list[Contract]] = {}
            for contract in contracts:
                by_id.setdefault(contract.contract_id, []).append(contract)
            chosen = [
                current
                for cid in sorted(by_id)
                if (current := version_in_force(by_id[cid], at)) is not None
            ]
        return cls(chosen, at, events_happened, cache_entries_max)

    def _compile_contract(self, contract: Contract) -> None:
        key = contract.key
        bindings: dict[str, _Binding] = {}
        exemptions: list[_Exemption] = []
        for clause in contract.clauses:
            if not _in_force(clause, self.at, self.events_happened):
                continue
            self._clauses.append((key, clause))
            if isinstance(clause, ExclusivityClause):
                binding = _Binding(
                    clause, key, _checks(clause.params), frozenset(clause.params.providers)
                )
                self._exclusivity.setdefault(clause.owner, []).append(binding)
            elif isinstance(clause, FirstRefusalClause):
                binding = _Binding(
                    clause,
                    key,
                    (),
                    frozenset(contract.clouds_of(clause.holder)),
                    in_force=_rofr_in_force(clause.params, self.at),
                )
                self._first_refusal.setdefault(clause.owner, []).append(binding)
            elif isinstance(clause, ShipFirstClause):
                binding = _Binding(
                    clause, key, _checks(clause.params), frozenset(clause.params.providers)
                )
                self._ship_first.setdefault(clause.owner, []).append(binding)
            elif isinstance(clause, ExemptionClause):
                exemptions.append(
                    _Exemption(
                        clause,
                        key,
                        _checks(clause.params),
                        frozenset(clause.params.providers),
                        clause.params.max_gpus,
                    )
                )
                continue
            elif isinstance(clause, IpLicenseClause):
                pair = (clause.licensor, clause.licensee)
                self._licenses.setdefault(pair, []).append((key, clause))
                continue
            else:
                continue
            binding.providers_text = _names(binding.providers)
            bindings[clause.id] = binding
        for exemption in exemptions:
            for target in exemption.clause.overrides:
                if target in bindings:
                    bindings[target].exemptions.append(exemption)
        for binding in bindings.values():
            for target in binding.clause.overrides:
                if target in bindings and bindings[target].clause.kind == binding.clause.kind:
                    bindings[target].superseded_by.append(binding)

    # -- queries ---------------------------------------------------------------------------

    def gate(self, demand: Demand) -> Gate:
        """What the contracts in force say about ``demand`` (cached per demand)."""
        cached = self._cache.get(demand)
        if cached is not None:
            return cached
        result = self._evaluate(demand)
        if len(self._cache) >= self._cache_entries_max:
            self._cache.clear()
        if self._cache_entries_max > 0:
            self._cache[demand] = result
        return result

    def clauses(self) -> list[tuple[str, Clause]]:
        """Every clause in force, with its contract key, in contract then file order."""
        return list(self._clauses)

    def commitments(self) -> list[tuple[str, CommitmentClause]]:
        return [(key, c) for key, c in self._clauses if isinstance(c, CommitmentClause)]

    def may_serve(self, operator: str, vendor: str, model: str) -> tuple[bool, TraceStep | None]:
        """Whether ``operator`` may serve ``vendor``'s ``model``: a vendor always may serve its
        own models; anyone else needs an ``ip_license`` in force from the vendor, with the right
        ``serve`` over models, covering the model."""
        if operator == vendor:
            return True, None
        for key, clause in self._licenses.get((vendor, operator), ()):
            params = clause.params
            if "serve" not in params.rights or not _MODEL_ASSETS & set(params.assets):
                continue
            if _model_covered(params.models, model):
                step = TraceStep(
                    clause.id,
                    key,
                    "ip_license",
                    "ip_license.serve",
                    {"operator": operator, "vendor": vendor, "model": model},
                    f"{operator} is licensed by {vendor} to serve {model}",
                )
                return True, step
        return False, None

    # -- evaluation ------------------------------------------------------------------------

    def _evaluate(self, demand: Demand) -> Gate:
        if demand.party not in self._bound_parties:
            return UNRESTRICTED
        steps: list[StepRecord] = []
        conflicts: list[Conflict] = []
        restricted: list[tuple[_Binding, frozenset[str]]] = []
        index = self._exclusivity_index.get(demand.party)
        for binding in index.candidates(demand) if index else ():
            if not _matches(binding.checks, demand) or self._superseded(binding, demand, steps):
                continue
            extra = self._exempt(binding, demand, steps)
            if extra is None:
                continue
            allowed = binding.providers | extra if extra else binding.providers
            steps.append((_step_restrict, (binding, demand, allowed)))
            restricted.append((binding, allowed))

        allowed_providers = self._combine(restricted, steps, conflicts)
        first_refusal = self._first_refusal_due(demand, steps, conflicts)
        ship_first = self._ship_first_due(demand, steps, conflicts)
        if conflicts:
            allowed_providers = frozenset()
        return Gate(
            allowed_providers,
            first_refusal=first_refusal,
            ship_first=ship_first,
            conflicts=tuple(conflicts),
            restricting_clause_ids=tuple(b.clause.id for b, _ in restricted),
            records=steps,
        )

    def _superseded(self, binding: _Binding, demand: Demand, steps: list[StepRecord]) -> bool:
        for newer in binding.superseded_by:
            if _matches(newer.checks, demand):
                steps.append((_step_superseded, (binding, newer, demand)))
                return True
        return False

    def _exempt(
        self, binding: _Binding, demand: Demand, steps: list[StepRecord]
    ) -> frozenset[str] | None:
        """Apply the exemptions overriding ``binding``: ``None`` if one lifts it, else the
        providers they add (possibly none)."""
        extra: frozenset[str] = frozenset()
        lifted = False
        for exemption in binding.exemptions:
            if not _matches(exemption.checks, demand):
                continue
            if exemption.max_gpus is not None and demand.gpus > exemption.max_gpus:
                steps.append((_step_bound_exceeded, (exemption, binding, demand)))
            elif exemption.providers:
                extra = extra | exemption.providers
                steps.append((_step_exempt, (exemption, binding, demand)))
            else:
                lifted = True
                steps.append((_step_exempt, (exemption, binding, demand)))
        return None if lifted else extra

    def _combine(
        self,
        restricted: list[tuple[_Binding, frozenset[str]]],
        steps: list[StepRecord],
        conflicts: list[Conflict],
    ) -> frozenset[str] | None:
        if not restricted:
            return None
        allowed = restricted[0][1]
        for _, more in restricted[1:]:
            allowed = allowed & more
        if len(restricted) == 1:
            return allowed
        if allowed:
            steps.append((_step_intersect, (tuple(restricted), allowed)))
            return allowed
        disjoint = [
            (a, b) for i, a in enumerate(restricted) for b in restricted[i + 1 :] if not a[1] & b[1]
        ]
        groups = [[a, b] for a, b in disjoint] or [restricted]
        for group in groups:
            message = "clauses of equal standing allow disjoint providers: " + "; ".join(
                f"{b.clause.id} ({b.contract}) allows {_names(a)}" for b, a in group
            )
            conflicts.append(
                Conflict(
                    tuple(b.clause.id for b, _ in group),
                    tuple(b.contract for b, _ in group),
                    "exclusivity.disjoint",
                    message,
                )
            )
        steps.append((_step_conflict, (tuple(restricted),)))
        return frozenset()

    def _first_refusal_due(
        self, demand: Demand, steps: list[StepRecord], conflicts: list[Conflict]
    ) -> FirstRefusalDue | None:
        dues: list[FirstRefusalDue] = []
        category = demand.scope_category
        for binding in self._first_refusal.get(demand.party, ()):
            clause = binding.clause
            assert isinstance(clause, FirstRefusalClause)
            scope = clause.params.scope
            if category not in scope.covered_categories:
                continue
            if category in scope.exempt:
                steps.append((_step_rofr_exempt, (binding, demand)))
                continue
            if not binding.in_force:
                steps.append((_step_rofr_not_in_force, (binding, demand, self.at)))
                continue
            if self._superseded(binding, demand, steps):
                continue
            waived = self._exempt(binding, demand, steps)
            if waived is None:
                continue
            steps.append((_step_rofr_applies, (binding, demand)))
            dues.append(
                FirstRefusalDue(
                    clause, binding.contract, clause.holder, binding.providers, clause.owner, waived
                )
            )
        if len(dues) > 1 and any(
            (d.holder, d.clause.params) != (dues[0].holder, dues[0].clause.params) for d in dues
        ):
            conflicts.append(
                Conflict(
                    tuple(d.clause_id for d in dues),
                    tuple(d.contract for d in dues),
                    "first_refusal.ambiguous",
                    "more than one right of first refusal applies: "
                    + "; ".join(f"{d.clause_id} ({d.contract}) for {d.holder}" for d in dues),
                )
            )
            return None
        return dues[0] if dues else None

    def _ship_first_due(
        self, demand: Demand, steps: list[StepRecord], conflicts: list[Conflict]
    ) -> ShipFirstDue | None:
        dues: list[ShipFirstDue] = []
        index = self._ship_first_index.get(demand.party)
        for binding in index.candidates(demand) if index else ():
            if not _matches(binding.checks, demand) or self._superseded(binding, demand, steps):
                continue
            extra = self._exempt(binding, demand, steps)
            if extra is None:
                continue
            clause = binding.clause
            assert isinstance(clause, ShipFirstClause)
            providers = binding.providers | extra
            steps.append((_step_ship_first, (binding, demand, providers)))
            dues.append(
                ShipFirstDue(
                    clause,
                    binding.contract,
                    clause.holder,
                    clause.owner,
                    providers,
                    clause.params.escape,
                )
            )
        if len(dues) > 1 and any(
            (d.providers, d.escape) != (dues[0].providers, dues[0].escape) for d in dues
        ):
            conflicts.append(
                Conflict(
                    tuple(d.clause_id for d in dues),
                    tuple(d.contract for d in dues),
                    "ship_first.ambiguous",
                    "more than one ship-first duty applies: "
                    + "; ".join(
                        f"{d.clause_id} ({d.contract}) on {_names(d.providers)}" for d in dues
                    ),
                )
            )
            return None
        return dues[0] if dues else None


# ---------------------------------------------------------------------------------------------
# Trace step builders (run when a gate's trace is read)


def _step_restrict(binding: _Binding, demand: Demand, allowed: frozenset[str]) -> TraceStep:
    return TraceStep(
        binding.clause.id,
        binding.contract,
        "exclusivity",
        "exclusivity.restrict",
        _inputs(binding.checks, demand, providers=binding.providers_text),
        f"only on {_names(allowed)}",
    )


def _step_superseded(binding: _Binding, newer: _Binding, demand: Demand) -> TraceStep:
    kind = binding.clause.kind
    return TraceStep(
        binding.clause.id,
        binding.contract,
        kind,
        f"{kind}.superseded",
        _inputs(newer.checks, demand, by=newer.clause.id),
        f"replaced by {newer.clause.id} for this demand",
    )


def _step_bound_exceeded(exemption: _Exemption, binding: _Binding, demand: Demand) -> TraceStep:
    kind = exemption.clause.kind
    return TraceStep(
        exemption.clause.id,
        exemption.contract,
        kind,
        f"{kind}.bound_exceeded",
        _inputs(
            exemption.checks,
            demand,
            gpus=str(demand.gpus),
            max_gpus=str(exemption.max_gpus),
            overrides=binding.clause.id,
        ),
        f"not exempt from {binding.clause.id}: {demand.gpus} GPUs is more than "
        f"max_gpus {exemption.max_gpus}",
    )


def _step_exempt(exemption: _Exemption, binding: _Binding, demand: Demand) -> TraceStep:
    """An exemption that matched: with providers it extends ``binding``, without it lifts it."""
    kind = exemption.clause.kind
    extra: dict[str, str] = {"overrides": binding.clause.id}
    if exemption.max_gpus is not None:
        extra["gpus"] = str(demand.gpus)
        extra["max_gpus"] = str(exemption.max_gpus)
    if exemption.providers:
        rule = f"{kind}.extend"
        result = f"{binding.clause.id} also allows {_names(exemption.providers)}"
    else:
        rule = f"{kind}.lift"
        result = f"{binding.clause.id} does not apply to this demand"
    return TraceStep(
        exemption.clause.id,
        exemption.contract,
        kind,
        rule,
        _inputs(exemption.checks, demand, **extra),
        result,
    )


def _step_intersect(
    restricted: tuple[tuple[_Binding, frozenset[str]], ...], allowed: frozenset[str]
) -> TraceStep:
    return TraceStep(
        ",".join(b.clause.id for b, _ in restricted),
        ",".join(sorted({b.contract for b, _ in restricted})),
        "exclusivity",
        "exclusivity.intersect",
        {b.clause.id: _names(a) for b, a in restricted},
        f"all hold: only on {_names(allowed)}",
    )


def _step_conflict(restricted: tuple[tuple[_Binding, frozenset[str]], ...]) -> TraceStep:
    return TraceStep(
        ",".join(b.clause.id for b, _ in restricted),
        ",".join(sorted({b.contract for b, _ in restricted})),
        "policy",
        "policy.conflict",
        {b.clause.id: _names(a) for b, a in restricted},
        "nothing allowed: clauses of equal standing allow disjoint providers",
    )


def _step_rofr_exempt(binding: _Binding, demand: Demand) -> TraceStep:
    category = demand.scope_category
    return TraceStep(
        binding.clause.id,
        binding.contract,
        "first_refusal",
        "first_refusal.exempt",
        {"party": demand.party, "category": category},
        f"{category} is exempt from the right",
    )


def _step_rofr_not_in_force(binding: _Binding, demand: Demand, at: datetime) -> TraceStep:
    clause = binding.clause
    assert isinstance(clause, FirstRefusalClause)
    params = clause.params
    start = params.effective_from.isoformat() if params.effective_from else "-"
    end = params.terminated_at.isoformat() if params.terminated_at else "-"
    return TraceStep(
        clause.id,
        binding.contract,
        "first_refusal",
        "first_refusal.not_in_force",
        {
            "party": demand.party,
            "category": demand.scope_category,
            "at": at.isoformat(),
            "window": f"{start}..{end}",
        },
        "the right is not in force at this instant",
    )


def _step_rofr_applies(binding: _Binding, demand: Demand) -> TraceStep:
    clause = binding.clause
    assert isinstance(clause, FirstRefusalClause)
    return TraceStep(
        clause.id,
        binding.contract,
        "first_refusal",
        "first_refusal.applies",
        {
            "party": demand.party,
            "category": demand.scope_category,
            "holder": clause.holder,
            "holder_providers": binding.providers_text,
        },
        f"offer to {clause.holder} ({binding.providers_text}) first",
    )


def _step_ship_first(binding: _Binding, demand: Demand, providers: frozenset[str]) -> TraceStep:
    clause = binding.clause
    assert isinstance(clause, ShipFirstClause)
    return TraceStep(
        clause.id,
        binding.contract,
        "ship_first",
        "ship_first.applies",
        _inputs(binding.checks, demand, escape=clause.params.escape),
        f"launch on {_names(providers)} first unless {clause.params.escape}",
    )
