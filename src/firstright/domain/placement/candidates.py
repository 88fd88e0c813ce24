"""Which offers can serve a request, and at what cash cost.

A candidate is one offer priced for the whole request: ``num_nodes`` instances of the offer
for ``hours`` hours, on-demand or spot as asked. Costs are exact: ``hourly_usd`` is a Decimal
and ``total_micros`` the total in integer micro-dollars (the solver's unit).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from firstright.domain.market.offer import Offer
from firstright.domain.money import round_to_micros
from firstright.domain.placement.request import PlacementRequest


@dataclass(frozen=True, slots=True)
class Candidate:
    offer: Offer
    hourly_usd: Decimal
    """Price per hour of all nodes."""
    total_micros: int
    """``hourly_usd * hours`` in micro-dollars."""

    @property
    def provider(self) -> str:
        return self.offer.provider

    @property
    def rank_key(self) -> tuple[int, tuple[str, str, str, str]]:
        """Price first, then provider, region, zone, instance: the deterministic order."""
        return (self.total_micros, self.offer.sort_key)


def price_candidate(request: PlacementRequest, offer: Offer) -> Candidate | None:
    """The offer priced for the request, or ``None`` if it does not sell the asked market."""
    unit = offer.price_usd_per_hour(spot=request.use_spot)
    if unit is None:
        return None
    hourly = unit * request.num_nodes
    return Candidate(
        offer=offer, hourly_usd=hourly, total_micros=round_to_micros(hourly * request.hours)
    )


def matching_candidates(request: PlacementRequest, offers: Iterable[Offer]) -> list[Candidate]:
    """Offers with the requested accelerator and count per node, in the requested clouds and
    regions and market, sorted by :attr:`Candidate.rank_key`. Contracts are not applied here."""
    clouds = set(request.clouds) if request.clouds is not None else None
    regions = set(request.regions) if request.regions is not None else None
    count = Decimal(request.count)
    found = []
    for offer in offers:
        if offer.accelerator != request.accelerator or offer.accelerator_count != count:
            continue
        if clouds is not None and offer.provider not in clouds:
            continue
        if regions is not None and offer.region not in regions:
            continue
        candidate = price_candidate(request, offer)
        if candidate is not None:
            found.append(candidate)
    found.sort(key=lambda c: c.rank_key)
    return found
