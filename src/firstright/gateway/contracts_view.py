"""What the contracts in force say about gateway routes: the bridge from ``Policy`` (the
contracts' compiled form) to the routing table's ``RouteRules`` and ``MayServe``.

``ContractRules(policy, workload)`` answers, for a tenant profile asking for a model:
exclusivity (the gate's allowed providers and the clauses restricting them), the first-refusal
clause due (its holder's providers, minus providers a carve-out waives, and the clause's
``match_price_cap`` for traffic), the providers under a commitment of the demanding party, and
whether an operator may serve a vendor's model (``ip_license``).
"""

from __future__ import annotations

from datetime import datetime

from firstright.domain.contracts.demand import Demand
from firstright.domain.contracts.policy import Policy
from firstright.gateway.routing import FirstRefusalRule, Profile, RouteRules


class ContractRules:
    def __init__(self, policy: Policy, workload: str) -> None:
        self.policy = policy
        self.workload = workload
        self._committed = self._commitments(policy.at)

    def _commitments(self, at: datetime) -> dict[str, frozenset[str]]:
        by_payer: dict[str, set[str]] = {}
        for _, clause in self.policy.commitments():
            params = clause.params
            if not params.period_start <= at < params.period_end:
                continue
            if params.workloads and self.workload not in params.workloads:
                continue
            by_payer.setdefault(clause.payer, set()).update(params.providers)
        return {payer: frozenset(providers) for payer, providers in by_payer.items()}

    def rules_for(self, profile: Profile, model: str, vendor: str | None) -> RouteRules:
        gate = self.policy.gate(
            Demand(
                party=profile.party,
                workload=profile.workload or self.workload,
                channel=profile.channel,
                product=profile.product,
                customer=profile.customer,
                model=model,
                vendor=vendor,
            )
        )
        first_refusal = None
        due = gate.first_refusal
        if due is not None:
            cap = due.params.match_price_cap
            first_refusal = FirstRefusalRule(
                clause_id=due.clause_id,
                holder=due.holder,
                holder_providers=due.holder_providers - due.waived_providers,
                price_cap=(cap.input_usd_per_mtok, cap.output_usd_per_mtok) if cap else None,
            )
        clause_ids = list(gate.restricting_clause_ids)
        for conflict in gate.conflicts:
            clause_ids.extend(c for c in conflict.clause_ids if c not in clause_ids)
        if first_refusal is not None and first_refusal.clause_id not in clause_ids:
            clause_ids.append(first_refusal.clause_id)
        return RouteRules(
            allowed_providers=gate.allowed_providers,
            exclusivity_clause_ids=gate.restricting_clause_ids,
            first_refusal=first_refusal,
            committed_providers=self._committed.get(profile.party, frozenset()),
            clause_ids=tuple(clause_ids),
        )

    def may_serve(self, operator: str, vendor: str, model: str) -> tuple[bool, str | None]:
        allowed, step = self.policy.may_serve(operator, vendor, model)
        if allowed:
            return True, step.clause_id if step is not None else None
        return False, None
