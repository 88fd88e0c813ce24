"""Seeded simulation of first-refusal workflows against the machine's invariants.

The base seed comes from FIRSTRIGHT_SEED (to replay a failure) or is drawn at random and
printed; every failure names the seed of its workflow.
"""

from __future__ import annotations

import os
import random

import pytest

import firstright.domain.rofr.machine as machine
from firstright.domain.rofr.terms import Comparison
from firstright.testing.rofr_sim import check_workflow, simulate

SEED = int(os.environ.get("FIRSTRIGHT_SEED", random.randrange(2**31)))
WORKFLOWS = 10_000


@pytest.mark.slow
def test_ten_thousand_workflows_hold_every_invariant() -> None:
    print(f"rofr simulation: base seed {SEED} (FIRSTRIGHT_SEED={SEED} replays)")
    report = simulate(SEED, WORKFLOWS)
    shown = "\n".join(str(f) for f in report.failures[:20])
    assert not report.failures, f"base seed {SEED}, {len(report.failures)} failures:\n{shown}"
    assert report.workflows == WORKFLOWS
    # The generator reaches every state and both gate answers, so the invariants are exercised.
    assert report.states_seen >= {
        "TRIGGERED", "NOTICE_INCOMPLETE", "OFFER_OPEN", "EXERCISED", "PARTIALLY_EXERCISED",
        "RELEASED", "REOFFER_REQUIRED", "CLOSED_HOLDER", "CLOSED_THIRD_PARTY", "VIOLATION",
        "NOT_TRIGGERED", "NO_ROFR", "WITHDRAWN",
    }  # fmt: skip
    assert report.gates.get("APPROVE", 0) > 100 and report.gates.get("BLOCK", 0) > 100


def test_same_seed_same_workflow() -> None:
    first = simulate(SEED, 50)
    again = simulate(SEED, 50)
    assert (first.steps, first.gates, first.failures) == (again.steps, again.gates, again.failures)


def test_the_invariants_catch_a_machine_that_ignores_the_baseline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Mutation check: approving any terms after a release must be reported, with seeds."""
    monkeypatch.setattr(machine, "check_release", lambda *args, **kwargs: Comparison(()))
    failures = [f for seed in range(SEED, SEED + 400) for f in check_workflow(seed)]
    assert any("APPROVE although" in f.message for f in failures)
    assert all(f"FIRSTRIGHT_SEED={f.seed}" in str(f) for f in failures)
