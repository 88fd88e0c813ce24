"""Our plain placement (no contracts) against SkyPilot 0.14.1's optimizer on the same catalogs.

``fixtures/skypilot_choices.json`` is SkyPilot's answer to ``fixtures/skypilot_tasks.json``,
produced offline by its own optimizer against the catalogs shipped in ``firstright/data`` (see
README, "Placement"; ``bench/placement_bench.py`` reruns it live). We must never pick an offer
costlier than SkyPilot's, except where SkyPilot's answer rests on a documented catalog error:
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from firstright.domain.placement.answer import PlacementAnswer
from firstright.domain.placement.request import PlacementRequest
from firstright.services.placement import place_requests

FIXTURES = Path(__file__).parent / "fixtures"
AT = datetime(2025, 6, 1, tzinfo=UTC)
PRICE_ROUNDING = Decimal("0.000001")
"""SkyPilot's harness rounds the hourly price to six places."""

DATA_ERRORS: dict[tuple[str, int, str], str] = {
    ("H100", 8, "azure"): (
        "Azure lists Standard_ND96isr_H100_v5 as H100 x12, so SkyPilot finds no Azure H100:8; "
        "we correct the count to 8 and offer it"
    ),
    ("B200", 8, "gcp"): (
        "GCP prices the a4-highgpu-8g host at 0, so SkyPilot charges the B200 accelerator row "
        "alone ($64.44/h); the price is unknown, so we leave the offer out"
    ),
}
"""(accelerator, GPUs per node, cloud) -> why our answer for that cloud differs from SkyPilot's.
A whole task is affected only when that cloud is the only one it allows."""


def _choices() -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = json.loads(
        (FIXTURES / "skypilot_choices.json").read_text(encoding="utf-8")
    )
    return data


def _request(task: dict[str, Any], clouds: list[str]) -> PlacementRequest:
    return PlacementRequest(
        id=task["name"],
        party="lab",
        workload="training",
        accelerator=task["accelerator"],
        count=task["count"],
        num_nodes=task.get("num_nodes", 1),
        use_spot=task.get("use_spot", False),
        clouds=clouds,
    )


def _documented(task: dict[str, Any], clouds: list[str]) -> str | None:
    if len(clouds) != 1:
        return None
    return DATA_ERRORS.get((task["accelerator"], task["count"], clouds[0]))


def _compare(
    task: dict[str, Any], clouds: list[str], sky: dict[str, Any], ours: PlacementAnswer
) -> None:
    where = (task["name"], clouds)
    documented = _documented(task, clouds)
    if "error" in sky:
        if documented is not None:
            assert ours.choice is not None, (*where, documented)
        else:
            assert ours.choice is None, (*where, "SkyPilot finds nothing but we do")
        return
    sky_price = Decimal(str(sky["hourly_price"]))
    if ours.choice is None:
        assert documented is not None, (*where, "we find nothing but SkyPilot does")
        return
    our_price = ours.choice.hourly_usd.quantize(PRICE_ROUNDING)
    assert our_price <= sky_price, (*where, our_price, sky_price, sky)


def test_fixture_covers_the_required_tasks() -> None:
    tasks = [entry["task"] for entry in _choices()]
    assert 15 <= len(tasks) <= 30
    accelerators = {t["accelerator"] for t in tasks}
    assert {"H100", "A100", "A100-80GB", "H200", "B200", "L4", "A10G", "V100"} <= accelerators
    assert any(t.get("use_spot") for t in tasks)
    assert any(t.get("num_nodes", 1) > 1 for t in tasks)
    tasks_file = json.loads((FIXTURES / "skypilot_tasks.json").read_text(encoding="utf-8"))
    assert tasks == tasks_file


@pytest.mark.parametrize("entry", _choices(), ids=lambda e: e["task"]["name"])
def test_never_costlier_than_skypilot(entry: dict[str, Any]) -> None:
    task = entry["task"]
    clouds = [c for c in task["clouds"] if c not in entry["missing_catalogs"]]
    requests = [_request(task, clouds)] + [_request(task, [c]) for c in entry.get("per_cloud", {})]
    answers = place_requests(requests, at=AT)
    _compare(task, clouds, entry["choice"], answers[0])
    for answer, (cloud, sky) in zip(answers[1:], entry.get("per_cloud", {}).items(), strict=True):
        _compare(task, [cloud], sky, answer)


def test_documented_cases_really_differ() -> None:
    by_name = {e["task"]["name"]: e for e in _choices()}
    azure = by_name["h100x8-azure-only"]
    assert "error" in azure["choice"]
    [placed] = place_requests([_request(azure["task"], ["azure"])], at=AT)
    assert placed.choice is not None
    assert placed.choice.offer.instance_type == "Standard_ND96isr_H100_v5"

    gcp = by_name["b200x8-gcp-only"]
    assert gcp["choice"]["instance_type"] == "a4-highgpu-8g"
    [left_out] = place_requests([_request(gcp["task"], ["gcp"])], at=AT)
    assert left_out.choice is None


def test_same_price_as_skypilot_where_the_data_is_right() -> None:
    """Not only never costlier: on this catalog we match SkyPilot's price on every task that no
    data error touches, or beat it (a cheaper offer SkyPilot does not consider)."""
    cheaper = []
    for entry in _choices():
        task = entry["task"]
        sky = entry["choice"]
        if "error" in sky or _documented(task, task["clouds"]) is not None:
            continue
        [answer] = place_requests([_request(task, task["clouds"])], at=AT)
        assert answer.choice is not None
        ours = answer.choice.hourly_usd.quantize(PRICE_ROUNDING)
        if ours < Decimal(str(sky["hourly_price"])):
            cheaper.append(task["name"])
    assert cheaper == []
