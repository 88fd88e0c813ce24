"""What a clause is asked about: one piece of demand (a workload, a capacity request, a model call).

Clauses select demand with ``Selector`` lists (workloads, categories, channels, products,
customers); a demand matches a selector when every non-empty list contains the demand's value.
``category`` is what first-refusal scopes speak of (``new_capacity``,
``owner_built_research_training``); when it is not given the workload stands in for it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Demand:
    party: str
    """The party whose demand this is (the owner a clause binds)."""
    workload: str
    """``api_serving``, ``product_serving``, ``training``, ``research_training``, ..."""
    category: str | None = None
    channel: str | None = None
    product: str | None = None
    customer: str | None = None
    model: str | None = None
    vendor: str | None = None
    gpus: int = 0
    """GPUs asked for (0 when not a capacity question); bounds such as ``max_gpus`` use it."""

    def __post_init__(self) -> None:
        if not self.party or not self.workload:
            raise ValueError("a demand needs a party and a workload")
        if self.gpus < 0:
            raise ValueError("gpus must not be negative")

    @property
    def scope_category(self) -> str:
        """The category scope checks use: ``category``, or the workload when none is given."""
        return self.category if self.category is not None else self.workload
