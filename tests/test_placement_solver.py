"""The placement optimizer against a brute-force oracle, and the MILP against the argmin."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import pytest

from firstright.adapters.catalogs import load_market
from firstright.domain.market.offer import Offer
from firstright.domain.placement.candidates import Candidate, matching_candidates
from firstright.domain.placement.request import PlacementRequest
from firstright.domain.placement.solver import (
    CommitmentTerm,
    PlacementProblem,
    evaluate,
    solve,
    solve_argmin,
    solve_milp,
)

PROVIDERS = ("aws", "azure", "gcp", "oci")
ORACLE_SEEDS = range(60)


def _candidate(provider: str, region: str, cents: int) -> Candidate:
    price = Decimal(cents) / 100
    offer = Offer(provider, region, None, f"{provider}-gpu", "H100", Decimal(8), price, None)
    return Candidate(offer=offer, hourly_usd=price, total_micros=cents * 10_000)


def _random_problem(rng: random.Random) -> PlacementProblem:
    num_commitments = rng.randint(0, 3)
    commitments = tuple(
        CommitmentTerm(
            key=f"c{k}",
            providers=frozenset(rng.sample(PROVIDERS, rng.randint(1, 2))),
            remaining_micros=rng.randint(0, 40) * 100_000,
        )
        for k in range(num_commitments)
    )
    options = []
    draws = []
    for _ in range(rng.randint(1, 5)):
        found = [
            _candidate(rng.choice(PROVIDERS), f"r{rng.randint(1, 3)}", rng.randint(5, 40) * 10)
            for _ in range(rng.randint(1, 4))
        ]
        unique = {(c.offer.sort_key, c.total_micros): c for c in found}
        options.append(tuple(sorted(unique.values(), key=lambda c: c.rank_key)))
        draws.append(frozenset(k for k in range(num_commitments) if rng.random() < 0.7))
    return PlacementProblem(tuple(options), tuple(draws), commitments)


def _oracle(problem: PlacementProblem) -> int:
    best = None
    for chosen in itertools.product(*(range(len(o)) for o in problem.options)):
        spend, shortfalls = evaluate(problem, chosen)
        cash = spend + sum(shortfalls)
        best = cash if best is None else min(best, cash)
    assert best is not None
    return best


@pytest.mark.parametrize("seed", ORACLE_SEEDS)
def test_milp_matches_brute_force(seed: int) -> None:
    print(f"seed={seed}")
    problem = _random_problem(random.Random(seed))
    expected = _oracle(problem)
    solution = solve_milp(problem)
    assert solution.cash_micros == expected, f"seed={seed}"
    assert solve_milp(problem, reduce=False).cash_micros == expected, f"seed={seed}"
    assert solve(problem).cash_micros == expected, f"seed={seed}"
    # Exact and deterministic: no single move to another candidate lowers the cash, and none to
    # an earlier candidate keeps it equal (the tie order).
    for r, current in enumerate(solution.chosen):
        for o in range(len(problem.options[r])):
            moved = list(solution.chosen)
            moved[r] = o
            spend, shortfalls = evaluate(problem, moved)
            cash = spend + sum(shortfalls)
            assert cash >= solution.cash_micros
            if o < current:
                assert cash > solution.cash_micros, f"seed={seed}: tie not broken by order"
    assert solve_milp(problem) == solution


@pytest.mark.parametrize("seed", range(20))
def test_without_commitments_milp_equals_argmin(seed: int) -> None:
    print(f"seed={seed}")
    rng = random.Random(1000 + seed)
    problem = _random_problem(rng)
    plain = PlacementProblem(problem.options, tuple(frozenset() for _ in problem.options), ())
    argmin = solve_argmin(plain)
    milp = solve_milp(plain)
    assert milp.chosen == argmin.chosen
    assert milp.cash_micros == argmin.cash_micros == _oracle(plain)
    assert solve(plain).method == "argmin"


def test_argmin_equals_milp_on_the_real_catalog() -> None:
    market = load_market()
    specs = [
        ("H100", 8, 1, False),
        ("H100", 1, 1, False),
        ("A100", 8, 2, False),
        ("A100-80GB", 8, 1, True),
        ("H200", 8, 4, False),
        ("B200", 8, 1, True),
        ("V100", 8, 1, False),
    ]
    requests = [
        PlacementRequest(
            party="lab",
            workload="training",
            accelerator=acc,
            count=count,
            num_nodes=nodes,
            use_spot=spot,
            hours=Decimal(730),
        )
        for acc, count, nodes, spot in specs
    ]
    options = tuple(
        tuple(matching_candidates(r, market.offers_for(r.accelerator, r.count))) for r in requests
    )
    problem = PlacementProblem(options, tuple(frozenset() for _ in options), ())
    argmin = solve_argmin(problem)
    milp = solve_milp(problem, reduce=False)
    assert milp.chosen == argmin.chosen
    assert milp.cash_micros == argmin.cash_micros


def test_commitment_moves_demand_only_when_cheaper_in_cash() -> None:
    cheap = _candidate("gcp", "r1", 100)  # $1.00
    committed = _candidate("azure", "r1", 150)  # $1.50
    options = (tuple(sorted([cheap, committed], key=lambda c: c.rank_key)),)
    # Remaining commitment $2: spending $1.50 on azure saves $1.50 of true-up; cash 2.00 vs 3.00.
    big = PlacementProblem(
        options, (frozenset({0}),), (CommitmentTerm("c", frozenset({"azure"}), 2_000_000),)
    )
    assert options[0][solve(big).chosen[0]].provider == "azure"
    assert solve(big).cash_micros == 2_000_000
    # Remaining $0.20: azure saves only $0.20 of true-up; gcp costs 1.00 + 0.20 < 1.50.
    small = PlacementProblem(
        options, (frozenset({0}),), (CommitmentTerm("c", frozenset({"azure"}), 200_000),)
    )
    assert options[0][solve(small).chosen[0]].provider == "gcp"
    assert solve(small).cash_micros == 1_200_000
    # Nothing remaining: plain cheapest.
    met = PlacementProblem(
        options, (frozenset({0}),), (CommitmentTerm("c", frozenset({"azure"}), 0),)
    )
    assert options[0][solve(met).chosen[0]].provider == "gcp"
