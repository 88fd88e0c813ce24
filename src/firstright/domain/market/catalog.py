"""Catalog rows to offers: the pure normalizer for SkyPilot-format price catalogs.

Input is the parsed CSV rows of each provider's catalog (the adapter reads the files); output is
a :class:`Market` of :class:`Offer` plus the list of corrections and exclusions applied.

Provider formats differ only in column sets, except GCP: its catalog lists host VMs and
accelerators on separate rows (the accelerator row has an empty ``InstanceType``). A GCP offer is
a host row joined to the accelerator row of the same zone, accelerator and count; its price is
the host price plus the accelerator price (on-demand and spot alike). Which accelerators each
GPU host type carries is fixed by the machine family (:data:`GCP_HOST_ACCELERATORS`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from firstright.domain.market.corrections import (
    COUNT_FIXES,
    UNKNOWN_PRICE_REASONS,
    ZERO_PRICE_REASON,
    ZERO_SPOT_REASON,
    CatalogCorrection,
)
from firstright.domain.market.offer import Offer

Row = Mapping[str, str]

GCP_HOST_ACCELERATORS: dict[str, tuple[str, int]] = {
    "a2-highgpu-1g": ("A100", 1),
    "a2-highgpu-2g": ("A100", 2),
    "a2-highgpu-4g": ("A100", 4),
    "a2-highgpu-8g": ("A100", 8),
    "a2-megagpu-16g": ("A100", 16),
    "a2-ultragpu-1g": ("A100-80GB", 1),
    "a2-ultragpu-2g": ("A100-80GB", 2),
    "a2-ultragpu-4g": ("A100-80GB", 4),
    "a2-ultragpu-8g": ("A100-80GB", 8),
    "a3-highgpu-1g": ("H100", 1),
    "a3-highgpu-2g": ("H100", 2),
    "a3-highgpu-4g": ("H100", 4),
    "a3-highgpu-8g": ("H100", 8),
    "a3-edgegpu-8g": ("H100", 8),
    "a3-edgegpu-8g-nolssd": ("H100", 8),
    "a3-megagpu-8g": ("H100-MEGA", 8),
    "a3-ultragpu-8g": ("H200", 8),
    "a3-ultragpu-8g-nolssd": ("H200", 8),
    "a4-highgpu-8g": ("B200", 8),
}
"""GCP accelerator-optimized machine types and the GPUs attached to them (GCP documentation,
"GPU machine types")."""


class CatalogDataError(ValueError):
    """A catalog row that cannot be read (bad number, missing column); the adapter locates it."""

    def __init__(self, provider: str, row_index: int, message: str) -> None:
        super().__init__(message)
        self.provider = provider
        self.row_index = row_index


@dataclass(frozen=True, slots=True)
class Market:
    """Every GPU offer of the catalogs, with the corrections made to the source data."""

    offers: tuple[Offer, ...]
    corrections: tuple[CatalogCorrection, ...]
    _index: dict[tuple[str, Decimal], tuple[Offer, ...]] = field(
        default_factory=dict, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        groups: dict[tuple[str, Decimal], list[Offer]] = defaultdict(list)
        for offer in self.offers:
            groups[(offer.accelerator, offer.accelerator_count)].append(offer)
        for key, found in groups.items():
            self._index[key] = tuple(sorted(found, key=lambda o: o.sort_key))

    def offers_for(self, accelerator: str, count: int | Decimal) -> tuple[Offer, ...]:
        """Offers with exactly ``count`` GPUs of ``accelerator`` per instance, sorted by
        provider, region, zone, instance."""
        return self._index.get((accelerator, Decimal(count)), ())

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(sorted({o.provider for o in self.offers}))

    @property
    def accelerators(self) -> tuple[str, ...]:
        return tuple(sorted({o.accelerator for o in self.offers}))


def build_market(catalogs: Mapping[str, Sequence[Row]]) -> Market:
    """Normalize every provider's rows (``provider -> rows``) into one market."""
    offers: list[Offer] = []
    notes = _Notes()
    for provider in sorted(catalogs):
        rows = catalogs[provider]
        if provider == "gcp":
            offers.extend(_gcp_offers(rows, notes))
        else:
            offers.extend(_plain_offers(provider, rows, notes))
    offers.sort(key=lambda o: (o.accelerator, o.accelerator_count, o.sort_key))
    return Market(offers=tuple(offers), corrections=notes.freeze())


class _Notes:
    """Counts the rows each correction touched, so the report says how much changed."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, str, str, str, str, str | None, str], int] = defaultdict(int)

    def add(
        self,
        *,
        kind: str,
        provider: str,
        instance_type: str,
        field_name: str,
        source_value: str,
        corrected_value: str | None,
        reason: str,
    ) -> None:
        key = (kind, provider, instance_type, field_name, source_value, corrected_value, reason)
        self._rows[key] += 1

    def freeze(self) -> tuple[CatalogCorrection, ...]:
        out = []
        for key in sorted(self._rows, key=lambda k: (k[1], k[2], k[3], k[0])):
            kind, provider, instance_type, field_name, source_value, corrected, reason = key
            assert kind in ("corrected", "excluded")
            out.append(
                CatalogCorrection(
                    kind="corrected" if kind == "corrected" else "excluded",
                    provider=provider,
                    instance_type=instance_type,
                    field=field_name,
                    source_value=source_value,
                    corrected_value=corrected,
                    rows=self._rows[key],
                    reason=reason,
                )
            )
        return tuple(out)


def _decimal(provider: str, index: int, row: Row, column: str) -> Decimal | None:
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise CatalogDataError(provider, index, f"{column}: not a number: {text!r}") from exc
    if not value.is_finite() or value < 0:
        raise CatalogDataError(provider, index, f"{column}: not a finite price/count: {text!r}")
    return value


def _required(provider: str, index: int, row: Row, column: str) -> str:
    text = (row.get(column) or "").strip()
    if not text:
        raise CatalogDataError(provider, index, f"{column}: missing")
    return text


def _prices(
    provider: str,
    instance_type: str,
    on_demand: Decimal | None,
    spot: Decimal | None,
    notes: _Notes,
) -> tuple[Decimal | None, Decimal | None] | None:
    """Apply the zero-price rule: a price of 0 is unknown, not free, and counts as absent (and is
    reported). An empty price means the market is not sold. Returns ``None`` when neither an
    on-demand nor a spot price remains: the row is left out."""
    known = UNKNOWN_PRICE_REASONS.get((provider, instance_type))
    if on_demand is not None and on_demand == 0:
        notes.add(
            kind="excluded",
            provider=provider,
            instance_type=instance_type,
            field_name="Price",
            source_value="0",
            corrected_value=None,
            reason=known or ZERO_PRICE_REASON,
        )
        on_demand = None
        if spot is not None and spot == 0:
            spot = None  # the same row's unknown spot price is part of the same exclusion
    if spot is not None and spot == 0:
        notes.add(
            kind="corrected",
            provider=provider,
            instance_type=instance_type,
            field_name="SpotPrice",
            source_value="0",
            corrected_value="absent",
            reason=ZERO_SPOT_REASON,
        )
        spot = None
    if on_demand is None and spot is None:
        return None
    return on_demand, spot


def _count(
    provider: str, instance_type: str, accelerator: str, raw: Decimal, notes: _Notes
) -> Decimal:
    for fix in COUNT_FIXES:
        if (
            fix.provider == provider
            and fix.instance_type == instance_type
            and fix.accelerator == accelerator
            and raw == Decimal(fix.wrong)
        ):
            notes.add(
                kind="corrected",
                provider=provider,
                instance_type=instance_type,
                field_name="AcceleratorCount",
                source_value=fix.wrong,
                corrected_value=fix.right,
                reason=fix.reason,
            )
            return Decimal(fix.right)
    return raw


def _plain_offers(provider: str, rows: Sequence[Row], notes: _Notes) -> list[Offer]:
    offers = []
    for index, row in enumerate(rows):
        accelerator = (row.get("AcceleratorName") or "").strip()
        count = _decimal(provider, index, row, "AcceleratorCount")
        if not accelerator or count is None or count == 0:
            continue  # a CPU-only instance: not a GPU offer
        instance_type = _required(provider, index, row, "InstanceType")
        prices = _prices(
            provider,
            instance_type,
            _decimal(provider, index, row, "Price"),
            _decimal(provider, index, row, "SpotPrice"),
            notes,
        )
        if prices is None:
            continue
        zone = (row.get("AvailabilityZone") or "").strip() or None
        offers.append(
            Offer(
                provider=provider,
                region=_required(provider, index, row, "Region"),
                zone=zone,
                instance_type=instance_type,
                accelerator=accelerator,
                accelerator_count=_count(provider, instance_type, accelerator, count, notes),
                on_demand_usd_per_hour=prices[0],
                spot_usd_per_hour=prices[1],
            )
        )
    return offers


def _gcp_offers(rows: Sequence[Row], notes: _Notes) -> list[Offer]:
    accelerators: dict[tuple[str, Decimal, str, str], tuple[Decimal | None, Decimal | None]] = {}
    hosts: list[tuple[int, Row]] = []
    for index, row in enumerate(rows):
        if (row.get("InstanceType") or "").strip():
            hosts.append((index, row))
            continue
        name = _required("gcp", index, row, "AcceleratorName")
        count = _decimal("gcp", index, row, "AcceleratorCount")
        if count is None:
            raise CatalogDataError("gcp", index, "AcceleratorCount: missing on an accelerator row")
        key = (
            name,
            count,
            _required("gcp", index, row, "Region"),
            _required("gcp", index, row, "AvailabilityZone"),
        )
        accelerators[key] = (
            _decimal("gcp", index, row, "Price"),
            _decimal("gcp", index, row, "SpotPrice"),
        )
    offers = []
    for index, row in hosts:
        instance_type = _required("gcp", index, row, "InstanceType")
        attached = GCP_HOST_ACCELERATORS.get(instance_type)
        if attached is None:
            continue  # not an accelerator-optimized host: no GPU offer
        name, attached_count = attached
        region = _required("gcp", index, row, "Region")
        zone = _required("gcp", index, row, "AvailabilityZone")
        accelerator_price = accelerators.get((name, Decimal(attached_count), region, zone))
        if accelerator_price is None:
            continue  # the host exists in a zone where the catalog sells no such GPU
        host_od = _decimal("gcp", index, row, "Price")
        host_spot = _decimal("gcp", index, row, "SpotPrice")
        host = _prices("gcp", instance_type, host_od, host_spot, notes)
        if host is None:
            continue
        accelerator_od, accelerator_spot = accelerator_price
        on_demand = None
        if host[0] is not None and accelerator_od is not None and accelerator_od > 0:
            on_demand = host[0] + accelerator_od
        spot = None
        if host[1] is not None and accelerator_spot is not None and accelerator_spot > 0:
            spot = host[1] + accelerator_spot
        if on_demand is None and spot is None:
            continue
        offers.append(
            Offer(
                provider="gcp",
                region=region,
                zone=zone,
                instance_type=instance_type,
                accelerator=name,
                accelerator_count=Decimal(attached_count),
                on_demand_usd_per_hour=on_demand,
                spot_usd_per_hour=spot,
            )
        )
    return offers
