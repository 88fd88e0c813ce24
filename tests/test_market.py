"""The market built from the shipped catalogs: corrections applied and reported, GCP prices as
host plus accelerator, spot prices, model token prices."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest

from firstright.adapters.catalogs import (
    default_catalog_dir,
    load_market,
    load_model_prices,
    read_catalog_rows,
)
from firstright.domain.market.catalog import build_market
from firstright.errors import SourceError


def test_every_provider_has_gpu_offers() -> None:
    market = load_market()
    assert market.providers == ("aws", "azure", "gcp", "lambda", "nebius", "oci")
    assert len(market.offers) > 1000
    assert {"H100", "A100", "A100-80GB", "H200", "B200", "V100"} <= set(market.accelerators)


def test_azure_nd_h100_v5_count_corrected_to_eight_and_reported() -> None:
    market = load_market()
    nd = [o for o in market.offers if o.instance_type == "Standard_ND96isr_H100_v5"]
    assert nd and all(o.accelerator_count == 8 for o in nd)
    assert {o.region for o in nd} == {"eastus", "eastus2", "westus"}
    assert any(o.provider == "azure" for o in market.offers_for("H100", 8))
    assert not market.offers_for("H100", 12)
    fixes = [c for c in market.corrections if c.instance_type == "Standard_ND96isr_H100_v5"]
    assert len(fixes) == 1
    fix = fixes[0]
    assert (fix.kind, fix.field, fix.source_value, fix.corrected_value, fix.rows) == (
        "corrected",
        "AcceleratorCount",
        "12",
        "8",
        3,
    )
    assert "8 NVIDIA H100" in fix.reason


def test_gcp_a4_zero_host_price_left_out_and_reported() -> None:
    market = load_market()
    assert not [o for o in market.offers if o.instance_type == "a4-highgpu-8g"]
    assert not [o for o in market.offers_for("B200", 8) if o.provider == "gcp"]
    excluded = [c for c in market.corrections if c.instance_type == "a4-highgpu-8g"]
    assert len(excluded) == 1
    assert excluded[0].kind == "excluded"
    assert excluded[0].corrected_value is None
    assert excluded[0].rows == 11
    assert "unknown" in excluded[0].reason
    assert "left out" in excluded[0].describe()


def test_only_the_documented_corrections_are_made() -> None:
    market = load_market()
    assert {(c.provider, c.instance_type) for c in market.corrections} == {
        ("azure", "Standard_ND96isr_H100_v5"),
        ("gcp", "a4-highgpu-8g"),
    }
    for correction in market.corrections:
        assert correction.to_json()["reason"]


def test_gcp_price_is_host_plus_accelerator() -> None:
    offers = [
        o
        for o in load_market().offers_for("H100", 8)
        if o.instance_type == "a3-highgpu-8g" and o.zone == "us-central1-a"
    ]
    assert len(offers) == 1
    # host a3-highgpu-8g 9.46006 + accelerator H100 x8 33.60609 (same zone), spot 2.88933 + 23.9408
    assert offers[0].on_demand_usd_per_hour == Decimal("43.06615")
    assert offers[0].spot_usd_per_hour == Decimal("26.83013")


def test_gcp_join_needs_the_accelerator_row_of_the_same_zone() -> None:
    header = (
        "InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuInfo,Region,"
        "AvailabilityZone,Price,SpotPrice"
    )
    rows = [
        "a2-highgpu-1g,12.0,85.0,,,,r1,r1-a,1.0,0.5",
        "a2-highgpu-1g,12.0,85.0,,,,r1,r1-b,1.0,0.5",
        ",,,A100,1,,r1,r1-a,2.5,",
        "n1-standard-8,8,30,,,,r1,r1-a,0.4,0.1",
    ]
    parsed = list(csv.DictReader([header, *rows]))
    market = build_market({"gcp": parsed})
    assert len(market.offers) == 1
    offer = market.offers[0]
    assert (offer.zone, offer.on_demand_usd_per_hour, offer.spot_usd_per_hour) == (
        "r1-a",
        Decimal("3.5"),
        None,
    )


def test_spot_prices_and_spot_only_offers() -> None:
    market = load_market()
    lambda_offers = [o for o in market.offers if o.provider == "lambda"]
    assert lambda_offers and all(o.spot_usd_per_hour is None for o in lambda_offers)
    # AWS lists p5e.48xlarge with no on-demand price in some zones but a spot price: spot only.
    p5e = [o for o in market.offers if o.instance_type == "p5e.48xlarge"]
    spot_only = [o for o in p5e if o.on_demand_usd_per_hour is None]
    assert spot_only and all(o.spot_usd_per_hour is not None for o in spot_only)
    assert all(o.price_usd_per_hour(spot=False) is None for o in spot_only)
    aws = [o for o in market.offers_for("A100", 8) if o.provider == "aws"]
    assert any(
        o.spot_usd_per_hour is not None and o.spot_usd_per_hour < o.on_demand_usd_per_hour
        for o in aws
        if o.on_demand_usd_per_hour is not None
    )


def test_prices_are_exact_decimals_from_the_source_text() -> None:
    rows = read_catalog_rows(default_catalog_dir())
    first = next(r for r in rows["lambda"] if r["AcceleratorName"] == "H100")
    offer = next(
        o
        for o in load_market().offers
        if o.provider == "lambda"
        and o.instance_type == first["InstanceType"]
        and o.region == first["Region"]
    )
    assert offer.on_demand_usd_per_hour == Decimal(first["Price"])


def test_bad_catalog_row_is_located(tmp_path: Path) -> None:
    (tmp_path / "lambda.csv").write_text(
        "InstanceType,AcceleratorName,AcceleratorCount,vCPUs,MemoryGiB,Price,Region,GpuInfo,SpotPrice\n"
        "gpu_1x_h100,H100,1,8,64,1.99,us-east-1,,\n"
        "gpu_1x_h100,H100,1,8,64,cheap,us-east-1,,\n",
        encoding="utf-8",
    )
    with pytest.raises(SourceError) as caught:
        load_market(tmp_path)
    assert caught.value.problem.render().startswith(f"{tmp_path / 'lambda.csv'}:3:1:")
    assert "Price" in caught.value.message


def test_missing_catalog_dir_is_a_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError):
        load_market(tmp_path / "nowhere")


def test_model_prices_per_million_tokens() -> None:
    book = load_model_prices()
    assert len(book) > 1000
    gpt4o = book.get("gpt-4o")
    assert gpt4o is not None
    assert gpt4o.provider == "openai"
    assert gpt4o.input_usd_per_mtok == Decimal("2.5")
    assert gpt4o.output_usd_per_mtok == Decimal("10")
    assert gpt4o.cost_usd(1_000_000, 500_000) == Decimal("7.5")
    azure = book.lookup("gpt-4o", "azure")
    assert azure is not None and azure.model == "azure/gpt-4o"
    assert book.get("sample_spec") is None
    assert all(isinstance(p.input_usd_per_mtok, Decimal) for p in book.prices)


def test_shipped_data_has_provenance() -> None:
    sources = (default_catalog_dir().parent / "SOURCES.md").read_text(encoding="utf-8")
    assert "Standard_ND96isr_H100_v5" in sources
    assert "a4-highgpu-8g" in sources
    assert "1b36058661d161d27d09c4193ae9bf226a2f9d83dd28d21e0180ca94518f4370" in sources
