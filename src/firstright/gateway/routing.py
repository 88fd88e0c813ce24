"""Routing: a table compiled from contracts and configuration, one route per (tenant profile,
requested model), recompiled when contracts or configuration change — never per request.

Compilation (``compile_route``) decides eligibility, in this order, and records why a backend
was left out:

1. exclusivity — the demand's gate may restrict providers (e.g. channel ``openai-api`` only on
   Azure); a backend on another provider is never a candidate;
2. ip_license — an operator may serve a vendor's model only under a license in force;
3. region — a tenant may restrict the regions its requests are served in.

The eligible backends are split into the first-refusal holder's backends (offered every request
first) and the others, ranked by effective price (providers under a commitment of the demanding
party first, since their spend draws the commitment down), then list price, then observed
latency (re-ranked in the background by ``RouteTable.rerank``).

At request time ``Route.pick`` walks that order. A backend refuses by signal — price over the
first-refusal clause's ``match_price_cap``, in-flight limit reached, tokens-per-minute budget
used, latency estimate over the request's deadline, 429 back-off or open circuit — and every
refusal is appended to the request's record as ``backend:reason``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from firstright.gateway.backends import ANY_MODEL, Backend, TokenPrices

REFUSAL_PRICE_OVER_CAP = "price_over_cap"
REFUSAL_IN_FLIGHT = "in_flight_max"
REFUSAL_TOKENS = "tokens_per_minute"
REFUSAL_DEADLINE = "deadline"
ROUTES_MAX = 100_000


@dataclass(frozen=True, slots=True)
class Profile:
    """The class of demand a tenant's requests belong to."""

    name: str
    """Unique per profile (the tenant id, or ``default``); routes are keyed by it."""
    party: str
    channel: str | None = None
    product: str | None = None
    customer: str | None = None
    workload: str | None = None
    """The workload the requests are (contract scopes); ``None``: the configuration's."""
    regions: frozenset[str] = frozenset()
    default_deadline_ms: int | None = None


@dataclass(frozen=True, slots=True)
class FirstRefusalRule:
    clause_id: str
    holder: str
    holder_providers: frozenset[str]
    price_cap: TokenPrices | None
    """(input, output) USD per million tokens above which the holder refuses the traffic."""


@dataclass(frozen=True, slots=True)
class RouteRules:
    """What the contracts say about one demand (a profile asking for a model)."""

    allowed_providers: frozenset[str] | None = None
    exclusivity_clause_ids: tuple[str, ...] = ()
    first_refusal: FirstRefusalRule | None = None
    committed_providers: frozenset[str] = frozenset()
    clause_ids: tuple[str, ...] = ()
    """Every clause that shaped the route (recorded with each request)."""


MayServe = Callable[[str, str, str], tuple[bool, str | None]]
"""(operator, vendor, model) -> (allowed, deciding clause id)."""
RulesFor = Callable[[Profile, str, str | None], RouteRules]
"""(profile, model, vendor) -> rules."""


def unrestricted_rules(profile: Profile, model: str, vendor: str | None) -> RouteRules:
    return RouteRules()


def always_may_serve(operator: str, vendor: str, model: str) -> tuple[bool, str | None]:
    return True, None


@dataclass(frozen=True, slots=True)
class Exclusion:
    backend_id: str
    reason: str
    clause_id: str | None


class Route:
    """The ordered candidates for one (profile, model)."""

    __slots__ = (
        "capped",
        "clause_ids",
        "committed",
        "exclusions",
        "first_refusal_clause",
        "holder_count",
        "model",
        "order",
        "profile",
    )

    def __init__(
        self,
        *,
        profile: Profile,
        model: str,
        holders: Sequence[Backend],
        others: Sequence[Backend],
        capped: frozenset[str],
        committed: frozenset[str],
        clause_ids: tuple[str, ...],
        first_refusal_clause: str | None,
        exclusions: tuple[Exclusion, ...],
    ) -> None:
        self.profile = profile
        self.model = model
        self.order: tuple[Backend, ...] = (*holders, *others)
        self.holder_count = len(holders)
        self.capped = capped
        self.committed = committed
        self.clause_ids = clause_ids
        self.first_refusal_clause = first_refusal_clause
        self.exclusions = exclusions

    def pick(
        self, start: int, now_s: float, deadline_ms: float | None, refusals: list[str]
    ) -> tuple[Backend | None, int]:
        """The first backend from ``start`` that takes the request, and the index after it.
        Refusals are appended as ``backend:reason``."""
        order = self.order
        index = start
        count = len(order)
        while index < count:
            backend = order[index]
            index += 1
            reason = self._refusal(backend, index <= self.holder_count, now_s, deadline_ms)
            if reason is None:
                return backend, index
            refusals.append(f"{backend.id}:{reason}")
        return None, index

    def _refusal(
        self, backend: Backend, holder: bool, now_s: float, deadline_ms: float | None
    ) -> str | None:
        if holder and backend.id in self.capped:
            return REFUSAL_PRICE_OVER_CAP
        load = backend.load
        if load.in_flight_max is not None and load.in_flight >= load.in_flight_max:
            return REFUSAL_IN_FLIGHT
        if load.tokens_per_minute is not None and load.tokens_exhausted(now_s):
            return REFUSAL_TOKENS
        if deadline_ms is not None and backend.latency_ms > deadline_ms:
            return REFUSAL_DEADLINE
        return backend.breaker.refusal(now_s)

    def is_holder(self, backend: Backend) -> bool:
        return any(backend is b for b in self.order[: self.holder_count])

    def rerank(self) -> None:
        """Re-order the non-holder backends by effective price, then observed latency."""
        holders = self.order[: self.holder_count]
        others = sorted(self.order[self.holder_count :], key=self._rank)
        self.order = (*holders, *others)

    def _rank(self, backend: Backend) -> tuple[int, Decimal, float]:
        return _rank_key(backend, self.model, self.committed)

    def describe_exclusions(self) -> str:
        return ", ".join(
            f"{e.backend_id}: {e.reason}" + (f" ({e.clause_id})" if e.clause_id else "")
            for e in self.exclusions
        )


_UNKNOWN_PRICE = Decimal("Infinity")


def _rank_key(
    backend: Backend, model: str, committed: frozenset[str]
) -> tuple[int, Decimal, float]:
    price = backend.price_of(model)
    total = _UNKNOWN_PRICE if price is None else price[0] + price[1]
    return (0 if backend.provider in committed else 1, total, backend.latency_ms)


def compile_route(
    profile: Profile,
    model: str,
    backends: Iterable[Backend],
    rules_for: RulesFor,
    may_serve: MayServe,
) -> Route:
    """Eligibility, first-refusal split and ranking for one (profile, model)."""
    serving = [b for b in backends if b.serves(model)]
    vendor = serving[0].vendor if serving else None
    rules = rules_for(profile, model, vendor)
    clause_ids: list[str] = list(rules.clause_ids)
    exclusions: list[Exclusion] = []
    eligible: list[Backend] = []
    for backend in serving:
        allowed = rules.allowed_providers
        if allowed is not None and backend.provider not in allowed:
            clause = ",".join(rules.exclusivity_clause_ids) or None
            exclusions.append(Exclusion(backend.id, "exclusivity", clause))
            continue
        may, clause_id = may_serve(backend.operator, backend.vendor, model)
        if clause_id is not None and clause_id not in clause_ids:
            clause_ids.append(clause_id)
        if not may:
            exclusions.append(Exclusion(backend.id, "ip_license", clause_id))
            continue
        if profile.regions and (backend.region is None or backend.region not in profile.regions):
            exclusions.append(Exclusion(backend.id, "region", None))
            continue
        eligible.append(backend)
    first_refusal = rules.first_refusal
    holders: list[Backend] = []
    capped: set[str] = set()
    if first_refusal is not None:
        holders = [b for b in eligible if b.provider in first_refusal.holder_providers]
        holders.sort(key=lambda b: _rank_key(b, model, rules.committed_providers))
        for backend in holders:
            price = backend.price_of(model)
            cap = first_refusal.price_cap
            if cap is not None and price is not None and (price[0] > cap[0] or price[1] > cap[1]):
                capped.add(backend.id)
    others = [b for b in eligible if all(b is not h for h in holders)]
    others.sort(key=lambda b: _rank_key(b, model, rules.committed_providers))
    for excluded_clause in rules.exclusivity_clause_ids:
        if excluded_clause not in clause_ids:
            clause_ids.append(excluded_clause)
    return Route(
        profile=profile,
        model=model,
        holders=holders,
        others=others,
        capped=frozenset(capped),
        committed=rules.committed_providers,
        clause_ids=tuple(clause_ids),
        first_refusal_clause=first_refusal.clause_id if first_refusal else None,
        exclusions=tuple(exclusions),
    )


@dataclass(slots=True)
class RouteTable:
    """Routes by (profile, model), compiled up front for every configured model and on first
    sight for models only wildcard backends serve (then kept)."""

    backends: tuple[Backend, ...]
    rules_for: RulesFor = unrestricted_rules
    may_serve: MayServe = always_may_serve
    routes: dict[str, dict[str, Route]] = field(default_factory=dict)
    """profile name -> model -> route."""
    wildcard: bool = False
    route_count: int = 0

    def compile(self, profiles: Iterable[Profile]) -> None:
        models = sorted({m for b in self.backends for m in b.models if m != ANY_MODEL})
        routes: dict[str, dict[str, Route]] = {}
        count = 0
        for profile in profiles:
            by_model = routes.setdefault(profile.name, {})
            for model in models:
                by_model[model] = compile_route(
                    profile, model, self.backends, self.rules_for, self.may_serve
                )
                count += 1
        self.routes = routes
        self.route_count = count
        self.wildcard = any(ANY_MODEL in b.models for b in self.backends)

    def get(self, profile: Profile, model: str) -> Route | None:
        by_model = self.routes.get(profile.name)
        if by_model is None:  # a profile first seen now (a key from the key store)
            self.add_profile(profile)
            by_model = self.routes[profile.name]
        route = by_model.get(model)
        if route is not None or not self.wildcard:
            return route
        route = compile_route(profile, model, self.backends, self.rules_for, self.may_serve)
        if self.route_count < ROUTES_MAX:
            by_model[model] = route
            self.route_count += 1
        return route

    def add_profile(self, profile: Profile) -> None:
        models = sorted({m for b in self.backends for m in b.models if m != ANY_MODEL})
        by_model = self.routes.setdefault(profile.name, {})
        for model in models:
            if self.route_count >= ROUTES_MAX:
                break
            by_model[model] = compile_route(
                profile, model, self.backends, self.rules_for, self.may_serve
            )
            self.route_count += 1

    def models_for(self, profile: Profile) -> list[Route]:
        if profile.name not in self.routes:
            self.add_profile(profile)
        return [r for r in self.routes.get(profile.name, {}).values() if r.order]

    def rerank(self) -> None:
        for by_model in self.routes.values():
            for route in by_model.values():
                route.rerank()
