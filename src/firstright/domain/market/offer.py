"""One normalized GPU offer: an instance type a provider sells in a region (and zone) at a price.

Every catalog format becomes this one type. Prices are exact Decimals in US dollars per hour for
one instance (one node); ``spot_usd_per_hour`` is ``None`` where the provider sells no spot.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class Offer:
    provider: str
    """Catalog cloud name: ``aws``, ``azure``, ``gcp``, ``oci``, ``lambda``, ``nebius``."""
    region: str
    zone: str | None
    instance_type: str
    accelerator: str
    """Accelerator name in the catalog's spelling, e.g. ``H100``, ``A100-80GB``."""
    accelerator_count: Decimal
    """GPUs per instance; fractional for shared GPUs (e.g. a sixth of an A10)."""
    on_demand_usd_per_hour: Decimal | None
    """``None`` where the catalog sells the instance only as spot."""
    spot_usd_per_hour: Decimal | None

    def __post_init__(self) -> None:
        assert self.accelerator_count > 0, self
        assert self.on_demand_usd_per_hour is not None or self.spot_usd_per_hour is not None
        assert self.on_demand_usd_per_hour is None or self.on_demand_usd_per_hour > 0, self
        assert self.spot_usd_per_hour is None or self.spot_usd_per_hour > 0, self

    def price_usd_per_hour(self, *, spot: bool) -> Decimal | None:
        """The hourly price of one instance, or ``None`` when that market is not offered."""
        return self.spot_usd_per_hour if spot else self.on_demand_usd_per_hour

    @property
    def sort_key(self) -> tuple[str, str, str, str]:
        """The deterministic tie-break after price: provider, region, zone, instance."""
        return (self.provider, self.region, self.zone or "", self.instance_type)

    def to_json(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "region": self.region,
            "zone": self.zone,
            "instance_type": self.instance_type,
            "accelerator": self.accelerator,
            "accelerator_count": _plain(self.accelerator_count),
            "on_demand_usd_per_hour": (
                None if self.on_demand_usd_per_hour is None else _plain(self.on_demand_usd_per_hour)
            ),
            "spot_usd_per_hour": (
                None if self.spot_usd_per_hour is None else _plain(self.spot_usd_per_hour)
            ),
        }


def _plain(value: Decimal) -> str:
    """A Decimal as a plain string without exponent or trailing zeros (``8``, ``0.5``)."""
    text = format(value.normalize(), "f")
    return text
