"""Placement under contracts: exclusivity, exceptions, first refusal and commitments."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from firstright.domain.contracts.versions import ContractSet
from firstright.domain.placement.request import PlacementRequest
from firstright.services.contract_loader import load_contracts
from firstright.services.placement import commitment_key, place_requests

FIXTURES = Path(__file__).parent / "fixtures" / "placement"
AT = datetime(2025, 6, 1, tzinfo=UTC)
BEFORE = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def contracts() -> ContractSet:
    return load_contracts([FIXTURES / "contracts"])


def _request(**fields: object) -> PlacementRequest:
    base: dict[str, object] = {"party": "lab", "accelerator": "H100", "count": 8}
    base.update(fields)
    return PlacementRequest.model_validate(base)


def test_api_exclusivity_places_on_azure_and_cites_the_clause(contracts: ContractSet) -> None:
    [answer] = place_requests([_request(workload="api_serving")], contracts=contracts, at=AT)
    assert answer.choice is not None and answer.choice.provider == "azure"
    data = answer.to_json()
    assert [s["clause_id"] for s in data["trace"]] == ["api-on-azure"]
    excluded = [c for c in data["candidates"] if c["outcome"] == "excluded"]
    assert excluded and all(c["clause_ids"] == ["api-on-azure"] for c in excluded)
    counterfactual = data["counterfactual"]
    assert counterfactual["kind"] == "clause_excluded"
    assert counterfactual["provider"] == "nebius"
    assert Decimal(counterfactual["list_price_saving_usd"]) == Decimal("98.32") - Decimal("23.6")


def test_exception_extends_the_exclusivity(contracts: ContractSet) -> None:
    [answer] = place_requests(
        [_request(workload="api_serving", customer="us-government")], contracts=contracts, at=AT
    )
    assert answer.choice is not None and answer.choice.provider == "aws"
    rules = [s.rule for s in answer.trace]
    assert "exception.extend" in rules


def test_contracts_not_in_force_do_not_apply(contracts: ContractSet) -> None:
    [answer] = place_requests([_request(workload="api_serving")], contracts=contracts, at=BEFORE)
    assert answer.choice is not None and answer.choice.provider == "nebius"
    assert answer.trace == ()


@pytest.mark.parametrize("seed", range(5))
def test_exclusivity_never_selects_an_excluded_provider(contracts: ContractSet, seed: int) -> None:
    print(f"seed={seed}")
    rng = random.Random(seed)
    accelerators = [("H100", 8), ("H100", 1), ("A100-80GB", 8), ("A100", 8), ("V100", 1)]
    requests = []
    for i in range(40):
        acc, count = rng.choice(accelerators)
        requests.append(
            _request(
                id=f"r{i}",
                workload=rng.choice(["api_serving", "training", "new_capacity", "research"]),
                customer=rng.choice([None, "us-government"]),
                accelerator=acc,
                count=count,
                num_nodes=rng.randint(1, 4),
                hours=Decimal(rng.randint(1, 2000)),
                use_spot=rng.random() < 0.2,
            )
        )
    answers = place_requests(requests, contracts=contracts, at=AT)
    for answer in answers:
        req = answer.request
        if req.workload != "api_serving" or answer.choice is None:
            continue
        allowed = {"azure", "aws"} if req.customer == "us-government" else {"azure"}
        assert answer.choice.provider in allowed, (seed, req.id)


def test_first_refusal_notice_for_a_third_party_choice(contracts: ContractSet) -> None:
    [answer] = place_requests(
        [_request(workload="new_capacity", num_nodes=4, hours=Decimal(1460))],
        contracts=contracts,
        at=AT,
    )
    assert answer.choice is not None and answer.choice.provider == "nebius"
    refusal = answer.to_json()["first_refusal"]
    assert refusal["holder"] == "cloudco"
    assert refusal["clause_id"] == "rofr-new-capacity"
    assert refusal["holder_providers"] == ["azure"]
    assert refusal["terms"] == {
        "offeror": "nebius",
        "quantity_gpus": 32,
        "gpu_type": "H100",
        "region": "eu-north1",
        "price_per_gpu_hour": "2.95",
        "start": AT.isoformat(),
        "commit_months": 2,
    }
    best = refusal["holder_best_offer"]
    assert best["provider"] == "azure"
    assert best["price_per_gpu_hour"] == "12.29"  # 98.32 / 8
    assert Decimal(best["discount_needed_per_gpu_hour"]) == Decimal("12.29") - Decimal("2.95")
    assert "cloudco would win at <= 2.95" in refusal["counterfactual"]


def test_carve_out_lifts_the_first_refusal(contracts: ContractSet) -> None:
    [answer] = place_requests(
        [_request(workload="training", category="owner_built_research_training")],
        contracts=contracts,
        at=AT,
    )
    assert answer.first_refusal is None


def test_commitment_shifts_training_to_azure_only_when_cheaper_in_cash(
    contracts: ContractSet,
) -> None:
    train = _request(workload="training", accelerator="A100-80GB", hours=Decimal(100))
    [shifted] = place_requests([train], contracts=contracts, at=AT)
    assert shifted.choice is not None and shifted.choice.provider == "azure"
    assert shifted.method == "milp"
    data = shifted.to_json()
    assert data["counterfactual"]["kind"] == "commitment_shift"
    assert data["counterfactual"]["provider"] == "lambda"
    assert any(s["rule"] == "commitment.effective_price" for s in data["trace"])
    assert any(c["outcome"] == "lost_on_cash" for c in data["candidates"])

    # Almost all of the commitment already spent: $100 left, azure costs $3,277 vs lambda $2,232;
    # azure saves only $100 of true-up, so lambda is cheaper in total cash.
    key = commitment_key("lab-cloud@2025-01-21", "azure-commitment")
    [kept] = place_requests([train], contracts=contracts, at=AT, spent_usd={key: Decimal("499900")})
    assert kept.choice is not None and kept.choice.provider == "lambda"

    # Other workloads do not draw this commitment.
    [other] = place_requests(
        [_request(workload="research", accelerator="A100-80GB", hours=Decimal(100))],
        contracts=contracts,
        at=AT,
    )
    assert other.choice is not None and other.choice.provider == "lambda"
    assert other.method == "argmin"


def test_commitment_shared_by_a_batch_is_filled_then_released(contracts: ContractSet) -> None:
    # Each request costs $3,277 on azure vs $2,232 on lambda (gap $1,045). With $5,000 left, the
    # first on azure saves $3,277 of true-up, the second the $1,723 still owed (more than the
    # gap), a third nothing: two go to azure, one to lambda.
    key = commitment_key("lab-cloud@2025-01-21", "azure-commitment")
    requests = [
        _request(id=f"t{i}", workload="training", accelerator="A100-80GB", hours=Decimal(100))
        for i in range(3)
    ]
    answers = place_requests(
        requests, contracts=contracts, at=AT, spent_usd={key: Decimal("495000")}
    )
    providers = sorted(a.choice.provider for a in answers if a.choice is not None)
    assert providers == ["azure", "azure", "lambda"]


def test_unplaceable_request_says_why(contracts: ContractSet) -> None:
    [answer] = place_requests(
        [_request(workload="api_serving", accelerator="H200")], contracts=contracts, at=AT
    )
    assert answer.choice is None
    assert "api-on-azure" in answer.reason
    assert answer.to_json()["status"] == "no_offer"
    assert all(c.outcome == "excluded" for c in answer.candidates)
