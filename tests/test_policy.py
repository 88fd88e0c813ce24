"""The compiled policy: the example deals gate demand as their terms say, with a clause trace;
exceptions win over what they override; disagreements are conflicts; properties hold for random
contracts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firstright.domain.contracts.demand import Demand
from firstright.domain.contracts.model import Contract
from firstright.domain.contracts.policy import Policy
from firstright.domain.contracts.versions import ContractSet
from firstright.examples import default_contracts_dir
from firstright.services.contract_loader import load_contracts

SOURCE = {"assumption": True, "note": "test"}


@pytest.fixture(scope="module")
def examples() -> ContractSet:
    return load_contracts(default_contracts_dir())


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def api_call(customer: str | None = None, channel: str = "openai-api") -> Demand:
    return Demand("openai", "api_serving", channel=channel, customer=customer)


# -- the example deals -----------------------------------------------------------------------


def test_api_pinned_to_azure_after_october_2025(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2025-11-03"))
    gate = policy.gate(api_call())
    assert gate.allowed_providers == frozenset({"azure"})
    assert gate.allows("azure") and not gate.allows("aws")
    assert gate.restricting_clause_ids == ("api-exclusive-azure", "api-channels-azure")
    rules = [(s.clause_id, s.contract, s.rule) for s in gate.trace]
    assert ("api-exclusive-azure", "msft-openai@2025-10-28", "exclusivity.restrict") in rules
    assert gate.first_refusal is None and gate.conflicts == ()


def test_national_security_customers_may_use_any_cloud(examples: ContractSet) -> None:
    gate = Policy.compile(examples, at("2025-11-03")).gate(api_call("us_gov_national_security"))
    assert gate.allowed_providers is None
    assert gate.allows("aws") and gate.allows("gcp")
    lifted = [(s.clause_id, s.rule, s.inputs["overrides"]) for s in gate.trace]
    assert lifted == [
        ("us-gov-national-security", "exception.lift", "api-exclusive-azure"),
        ("us-gov-national-security", "exception.lift", "api-channels-azure"),
    ]
    assert gate.trace[0].inputs["customer"] == "us_gov_national_security"


def test_non_api_products_on_the_api_channel(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2025-11-03"))
    gate = policy.gate(Demand("openai", "product_serving", channel="openai-api"))
    assert gate.allowed_providers is None
    assert [s.rule for s in gate.trace] == ["exception.lift"]


def test_api_exclusivity_ends_when_agi_is_verified(examples: ContractSet) -> None:
    policy = Policy.compile(
        examples, at("2026-01-01"), events_happened=frozenset({"agi_verified_by_panel"})
    )
    assert policy.gate(api_call()).allowed_providers is None
    assert [c.id for _, c in policy.clauses() if c.kind == "revenue_share"] == []


def test_first_refusal_in_2025(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2025-03-03"))
    gate = policy.gate(Demand("openai", "training", category="new_capacity", gpus=100_000))
    assert gate.allowed_providers is None
    due = gate.first_refusal
    assert due is not None
    assert (due.clause_id, due.contract, due.holder, due.owner) == (
        "rofr-new-capacity",
        "msft-openai@2025-01-21",
        "microsoft",
        "openai",
    )
    assert due.holder_providers == frozenset({"azure"})
    assert str(due.params.exercise_period) == "10 days, 0:00:00"
    assert due.params.match_price_cap is not None
    assert [s.rule for s in gate.trace] == ["first_refusal.applies"]


def test_research_capacity_is_carved_out(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2025-03-03"))
    gate = policy.gate(Demand("openai", "training", category="owner_built_research_training"))
    assert gate.first_refusal is None
    assert gate.allowed_providers is None
    # outside covered_categories: nothing to say, no trace
    assert gate.trace == ()


def test_research_exempt_category_is_traced_when_covered() -> None:
    contract = _contract(
        [
            _rofr("rofr", covered=["new_capacity", "research"], exempt=["research"]),
        ]
    )
    gate = Policy.compile([contract], at("2025-06-01")).gate(
        Demand("openai", "training", category="research")
    )
    assert gate.first_refusal is None
    assert [(s.clause_id, s.rule) for s in gate.trace] == [("rofr", "first_refusal.exempt")]


def test_no_first_refusal_after_october_2025(examples: ContractSet) -> None:
    gate = Policy.compile(examples, at("2025-11-03")).gate(
        Demand("openai", "training", category="new_capacity")
    )
    assert gate.first_refusal is None
    assert gate.allowed_providers is None


def test_oracle_exception_of_2024(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2024-09-01"))
    capacity = policy.gate(Demand("openai", "training", category="new_capacity"))
    assert capacity.allowed_providers == frozenset({"azure", "oci"})
    assert [s.rule for s in capacity.trace] == ["exception.extend", "exclusivity.restrict"]
    other = policy.gate(Demand("openai", "product_serving"))
    assert other.allowed_providers == frozenset({"azure"})
    api = policy.gate(Demand("openai", "api_serving", category="new_capacity"))
    assert api.allowed_providers == frozenset({"azure"})  # the API stays on Azure
    assert [s.rule for s in api.trace][-1] == "exclusivity.intersect"


def test_ship_first_in_2026(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2026-06-01"))
    gate = policy.gate(Demand("openai", "product_launch"))
    assert gate.ship_first is not None
    assert gate.ship_first.providers == frozenset({"azure"})
    assert gate.ship_first.escape == "cannot_and_chooses_not"
    assert gate.allowed_providers is None
    assert policy.gate(api_call()).allowed_providers is None  # any cloud now


def test_commitments_in_force(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2025-11-03"))
    found = {(key, clause.id, clause.params.amount_usd) for key, clause in policy.commitments()}
    assert ("msft-openai@2025-10-28", "azure-incremental-commitment", 250_000_000_000) in {
        (k, i, int(a)) for k, i, a in found
    }


def test_may_serve(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2025-11-03"))
    assert policy.may_serve("openai", "openai", "gpt-5") == (True, None)
    allowed, step = policy.may_serve("microsoft", "openai", "gpt-5")
    assert allowed and step is not None
    assert (step.clause_id, step.rule) == ("ip-license-models-products", "ip_license.serve")
    allowed, step = policy.may_serve("amazon", "anthropic", "claude-sonnet-4")
    assert allowed and step is not None and step.contract == "amazon-anthropic@2024-11"
    assert policy.may_serve("amazon", "anthropic", "other-model") == (False, None)
    assert policy.may_serve("google", "openai", "gpt-5") == (False, None)


def test_gate_is_cached_and_trace_json(examples: ContractSet) -> None:
    policy = Policy.compile(examples, at("2025-11-03"))
    first = policy.gate(api_call())
    assert policy.gate(api_call()) is first
    data = first.to_json()
    assert data["allowed_providers"] == ["azure"]
    assert data["trace"][0]["rule"] == "exclusivity.restrict"


def test_other_parties_are_unrestricted(examples: ContractSet) -> None:
    gate = Policy.compile(examples, at("2025-11-03")).gate(api_call().__class__("anthropic", "x"))
    assert gate.allowed_providers is None and gate.trace == ()


# -- default logic on small contracts ---------------------------------------------------------


def _contract(clauses: list[dict[str, Any]]) -> Contract:
    return Contract.model_validate(
        {
            "contract_id": "t",
            "version": "1",
            "effective_from": "2025-01-01T00:00:00Z",
            "parties": {
                "microsoft": {"clouds": ["azure"]},
                "amazon": {"clouds": ["aws"]},
                "openai": {},
            },
            "clauses": clauses,
        }
    )


def _excl(cid: str, providers: list[str], **selector: Any) -> dict[str, Any]:
    return {
        "id": cid,
        "kind": "exclusivity",
        "holder": "microsoft",
        "owner": "openai",
        "params": {"providers": providers, **selector},
        "source": SOURCE,
    }


def _exempt(
    cid: str, overrides: list[str], kind: str = "exception", **params: Any
) -> dict[str, Any]:
    return {"id": cid, "kind": kind, "overrides": overrides, "params": params, "source": SOURCE}


def _rofr(cid: str, covered: list[str], exempt: list[str] | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "kind": "first_refusal",
        "holder": "microsoft",
        "owner": "openai",
        "params": {
            "scope": {"covered_categories": covered, "exempt": exempt or []},
            "exercise_period": "P10D",
            "release_window": "P90D",
            "holder_closing_window": "P30D",
            "terms_order": {"price_per_gpu_hour": "lower"},
            "effective_from": "2025-02-01T00:00:00Z",
            "terminated_at": "2025-10-28T00:00:00Z",
        },
        "source": SOURCE,
    }


def test_disjoint_restrictions_are_a_conflict_and_allow_nothing() -> None:
    contract = _contract(
        [_excl("on-azure", ["azure"], workloads=["training"]), _excl("on-aws", ["aws"])]
    )
    gate = Policy.compile([contract], at("2025-06-01")).gate(Demand("openai", "training"))
    assert gate.allowed_providers == frozenset()
    assert not gate.allows("azure") and not gate.allows("aws")
    [conflict] = gate.conflicts
    assert conflict.clause_ids == ("on-azure", "on-aws")
    assert conflict.rule == "exclusivity.disjoint"
    assert gate.trace[-1].rule == "policy.conflict"


def test_overlapping_restrictions_intersect() -> None:
    contract = _contract(
        [_excl("a", ["azure", "oci"]), _excl("b", ["oci", "aws"], workloads=["training"])]
    )
    gate = Policy.compile([contract], at("2025-06-01")).gate(Demand("openai", "training"))
    assert gate.allowed_providers == frozenset({"oci"})
    assert gate.conflicts == ()


def test_gpu_bound_decides_whether_an_exception_applies() -> None:
    contract = _contract(
        [_excl("x", ["azure"]), _exempt("small-on-aws", ["x"], providers=["aws"], max_gpus=1000)]
    )
    policy = Policy.compile([contract], at("2025-06-01"))
    small = policy.gate(Demand("openai", "training", gpus=1000))
    assert small.allowed_providers == frozenset({"azure", "aws"})
    big = policy.gate(Demand("openai", "training", gpus=1001))
    assert big.allowed_providers == frozenset({"azure"})
    step = big.trace[0]
    assert (step.clause_id, step.rule) == ("small-on-aws", "exception.bound_exceeded")
    assert step.inputs["gpus"] == "1001" and step.inputs["max_gpus"] == "1000"
    assert "more than max_gpus 1000" in step.result


def test_first_refusal_window_and_waived_providers() -> None:
    contract = _contract(
        [
            _rofr("rofr", ["new_capacity"]),
            _exempt("oci-ok", ["rofr"], kind="carve_out", providers=["oci"]),
        ]
    )
    demand = Demand("openai", "training", category="new_capacity")
    before = Policy.compile([contract], at("2025-01-15")).gate(demand)
    assert before.first_refusal is None
    assert [s.rule for s in before.trace] == ["first_refusal.not_in_force"]
    during = Policy.compile([contract], at("2025-06-01")).gate(demand)
    assert during.first_refusal is not None
    assert during.first_refusal.waived_providers == frozenset({"oci"})
    after = Policy.compile([contract], at("2025-10-28")).gate(demand)
    assert after.first_refusal is None


def test_clause_effective_interval() -> None:
    clause = _excl("x", ["azure"])
    clause["effective"] = {"from": "2025-03-01T00:00:00Z", "until": "2025-04-01T00:00:00Z"}
    contract = _contract([clause])
    demand = Demand("openai", "training")
    assert Policy.compile([contract], at("2025-02-28")).gate(demand).allowed_providers is None
    assert Policy.compile([contract], at("2025-03-01")).gate(demand).allowed_providers == {"azure"}
    assert Policy.compile([contract], at("2025-04-01")).gate(demand).allowed_providers is None


# -- properties ------------------------------------------------------------------------------

PROVIDERS = ["azure", "aws", "gcp", "oci"]
WORKLOADS = ["api_serving", "training", "product_serving"]
CHANNELS = ["openai-api", "azure-openai", "web"]
CUSTOMERS = ["us_gov_national_security", "acme"]

selectors = st.fixed_dictionaries(
    {},
    optional={
        "workloads": st.lists(st.sampled_from(WORKLOADS), min_size=1, max_size=2, unique=True),
        "channels": st.lists(st.sampled_from(CHANNELS), min_size=1, max_size=2, unique=True),
        "customers": st.lists(st.sampled_from(CUSTOMERS), min_size=1, max_size=1, unique=True),
    },
)
provider_sets = st.lists(st.sampled_from(PROVIDERS), min_size=1, max_size=3, unique=True)
demands = st.builds(
    Demand,
    party=st.just("openai"),
    workload=st.sampled_from(WORKLOADS),
    channel=st.none() | st.sampled_from(CHANNELS),
    customer=st.none() | st.sampled_from(CUSTOMERS),
    gpus=st.integers(min_value=0, max_value=2000),
)


@st.composite
def contracts(draw: st.DrawFn) -> list[dict[str, Any]]:
    clauses: list[dict[str, Any]] = []
    for i in range(draw(st.integers(min_value=0, max_value=4))):
        clauses.append(_excl(f"x{i}", draw(provider_sets), **draw(selectors)))
    for j in range(draw(st.integers(min_value=0, max_value=3)) if clauses else 0):
        targets = draw(
            st.lists(st.sampled_from([c["id"] for c in clauses]), min_size=1, unique=True)
        )
        params: dict[str, Any] = dict(draw(selectors))
        if draw(st.booleans()):
            params["providers"] = draw(provider_sets)
        if draw(st.booleans()):
            params["max_gpus"] = draw(st.integers(min_value=1, max_value=2000))
        clauses.append(
            _exempt(
                f"e{j}", targets, kind=draw(st.sampled_from(["exception", "carve_out"])), **params
            )
        )
    return clauses


def _allowed(clauses: list[dict[str, Any]], demand: Demand) -> frozenset[str]:
    gate = Policy.compile([_contract(clauses)], at("2025-06-01")).gate(demand)
    return frozenset(PROVIDERS) if gate.allowed_providers is None else gate.allowed_providers


@settings(max_examples=150, deadline=None)
@given(contracts(), demands, provider_sets, selectors)
def test_adding_an_exclusivity_never_widens(
    clauses: list[dict[str, Any]],
    demand: Demand,
    providers: list[str],
    selector: dict[str, Any],
) -> None:
    before = _allowed(clauses, demand)
    added = _excl("added", providers, **selector)
    after = _allowed([*clauses, added], demand)
    assert after <= before
    gate = Policy.compile([_contract([*clauses, added])], at("2025-06-01")).gate(demand)
    if "added" in gate.restricting_clause_ids:
        assert after <= frozenset(providers)  # never allows a provider it excludes


@settings(max_examples=150, deadline=None)
@given(contracts(), demands, st.data())
def test_a_carve_out_never_narrows(
    clauses: list[dict[str, Any]], demand: Demand, data: st.DataObject
) -> None:
    targets = [c["id"] for c in clauses if c["kind"] == "exclusivity"]
    if not targets:
        return
    before = _allowed(clauses, demand)
    params: dict[str, Any] = dict(data.draw(selectors))
    if data.draw(st.booleans()):
        params["providers"] = data.draw(provider_sets)
    carve_out = _exempt(
        "added",
        data.draw(st.lists(st.sampled_from(targets), min_size=1, unique=True)),
        kind="carve_out",
        **params,
    )
    after = _allowed([*clauses, carve_out], demand)
    assert after >= before
