"""A placement request: the demand for GPU capacity one party wants placed, as read from YAML.

A requests file holds one request (a mapping with ``accelerator``) or a list under
``requests:``. Unknown keys are refused; every field error is reported with its position.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from firstright.limits import PLACEMENT_NODES_MAX, PLACEMENT_REQUESTS_MAX

Word = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:/-]{0,127}$")]
PartyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ProviderName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
AcceleratorName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}$")]
RegionName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
GPUS_PER_NODE_MAX = 64
HOURS_MAX = Decimal(87_600)
"""Ten years of hours: the longest term a request may ask for."""


class PlacementRequest(BaseModel):
    """One demand for GPU capacity, placed on the cheapest offer the contracts allow."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    party: PartyName
    """Who buys the capacity (the contracts bind this party)."""
    workload: Word
    """``api_serving``, ``product_inference``, ``training``, ``research``, ``new_capacity``..."""
    category: Word | None = None
    channel: Word | None = None
    product: Word | None = None
    customer: Word | None = None
    accelerator: AcceleratorName
    """Catalog spelling: ``H100``, ``A100-80GB``, ``B200``..."""
    count: Annotated[int, Field(ge=1, le=GPUS_PER_NODE_MAX)]
    """GPUs per node."""
    num_nodes: Annotated[int, Field(ge=1, le=PLACEMENT_NODES_MAX)] = 1
    hours: Annotated[Decimal, Field(gt=0, le=HOURS_MAX, allow_inf_nan=False)] = Decimal(1)
    clouds: list[ProviderName] | None = Field(default=None, min_length=1, max_length=50)
    """Providers the requester accepts; all when absent."""
    regions: list[RegionName] | None = Field(default=None, min_length=1, max_length=500)
    use_spot: bool = False
    at: AwareDatetime | None = None
    """The instant the placement is decided (contracts in force then); else ``--at``."""

    @property
    def gpus(self) -> int:
        return self.count * self.num_nodes


class PlacementRequestFile(BaseModel):
    """A list of requests: ``requests: [...]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: list[PlacementRequest] = Field(min_length=1, max_length=PLACEMENT_REQUESTS_MAX)


def is_request_list(data: object) -> bool:
    """Whether a parsed document is the list form (else it is one request)."""
    return isinstance(data, dict) and "requests" in data
