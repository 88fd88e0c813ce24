"""The gateway configuration file (YAML), validated like contracts (``FILE:LINE:COL``).

```yaml
contracts: ../contracts/msft-openai     # directory or file(s), relative to this file; optional
workload: api_serving                   # the workload model requests are (for contract scopes)
backends:
  - id: azure-eastus
    operator: microsoft                 # the party operating the endpoint
    vendor: openai                      # the party whose models it serves
    provider: azure                     # catalog name of the cloud
    region: eastus
    models: [gpt-4o, gpt-4o-mini]
    base_url: https://example.openai.azure.com/openai/v1
    api_key_env: AZURE_OPENAI_API_KEY   # the environment variable holding the key
    price: {input_usd_per_mtok: "2.50", output_usd_per_mtok: "10.00"}   # else the price map
    limits: {in_flight_max: 64, tokens_per_minute: 2000000}
tenants:
  - id: copilot
    party: microsoft
    channel: copilot
    product: m365-copilot
    key_sha256: 9f86d08...              # sha256 hex of the API key; the key itself is never stored
    default_deadline_ms: 20000
```

``load_gateway_config(path)`` reads, validates and checks cross-field rules (unique ids, every
tenant's model reachable); ``firstright check`` validates the file by its top-level ``backends``.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path
from typing import Annotated

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from firstright.adapters.yaml_source import load_yaml_file, validate_document
from firstright.errors import Problem, ValidationFailed
from firstright.gateway import limits

PartyId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:/-]{0,127}$")]
ModelName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Price = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s?#]+$", max_length=2000)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TokenPrice(Strict):
    input_usd_per_mtok: Price
    output_usd_per_mtok: Price


class BackendLimits(Strict):
    in_flight_max: Annotated[int, Field(gt=0, le=1_000_000)] | None = None
    tokens_per_minute: Annotated[int, Field(gt=0)] | None = None


class Timeouts(Strict):
    connect_s: Annotated[float, Field(gt=0, le=300)] = limits.CONNECT_TIMEOUT_S
    first_byte_s: Annotated[float, Field(gt=0, le=3600)] = limits.FIRST_BYTE_TIMEOUT_S
    read_idle_s: Annotated[float, Field(gt=0, le=3600)] = limits.READ_IDLE_TIMEOUT_S


class BackendConfig(Strict):
    id: Name
    operator: PartyId
    vendor: PartyId
    provider: Tag
    region: Tag | None = None
    models: list[ModelName] = Field(min_length=1, max_length=1000)
    """Model names served, as clients request them; ``*`` serves any model (upstream mode)."""
    base_url: Url
    api_key_env: EnvName | None = None
    price: TokenPrice | None = None
    """List price; without it the price map entry of (provider, model) is used."""
    limits: BackendLimits = Field(default_factory=BackendLimits)
    timeouts: Timeouts = Field(default_factory=Timeouts)
    expected_latency_ms: Annotated[int, Field(ge=0, le=3_600_000)] | None = None
    """Prior for the latency estimate until requests have been observed."""


class TenantConfig(Strict):
    id: Name
    party: PartyId
    channel: Tag | None = None
    product: Tag | None = None
    customer: Tag | None = None
    workload: Tag | None = None
    """What these requests are for contract scopes (e.g. ``product_serving``); default: the
    configuration's ``workload``."""
    key_sha256: Sha256Hex
    default_deadline_ms: Annotated[int, Field(gt=0, le=limits.DEADLINE_MS_MAX)] | None = None
    regions: list[Tag] = Field(default_factory=list, max_length=100)
    """Regions this tenant's requests may be served in; empty means any."""


class GatewayLimits(Strict):
    request_body_bytes_max: Annotated[int, Field(gt=0, le=1 << 30)] = limits.REQUEST_BODY_BYTES_MAX
    max_tokens_max: Annotated[int, Field(gt=0)] = limits.MAX_TOKENS_MAX
    queue_depth_max: Annotated[int, Field(gt=0, le=1_000_000)] = limits.QUEUE_DEPTH_MAX
    attempts_max: Annotated[int, Field(ge=1, le=10)] = limits.ATTEMPTS_MAX


class BreakerConfig(Strict):
    failures_max: Annotated[int, Field(ge=1, le=1000)] = 5
    open_s: Annotated[float, Field(gt=0, le=3600)] = 10.0


class GatewayConfig(Strict):
    contracts: list[str] = Field(default_factory=list, max_length=1000)
    """Contract directories or files, relative to the configuration file."""
    contracts_at: AwareDatetime | None = None
    """Evaluate the contracts as of this instant instead of now (demos, what-if runs)."""
    workload: Tag = "api_serving"
    backends: list[BackendConfig] = Field(min_length=1, max_length=limits.BACKENDS_MAX)
    tenants: list[TenantConfig] = Field(default_factory=list, max_length=limits.API_KEYS_MAX)
    limits: GatewayLimits = Field(default_factory=GatewayLimits)
    breaker: BreakerConfig = Field(default_factory=BreakerConfig)
    refresh_s: Annotated[float, Field(gt=0, le=86_400)] = 5.0
    """How often contract and configuration files are checked for changes."""

    @model_validator(mode="after")
    def _unique(self) -> GatewayConfig:
        for what, ids in (
            ("backend id", [b.id for b in self.backends]),
            ("tenant id", [t.id for t in self.tenants]),
            ("tenant key_sha256", [t.key_sha256 for t in self.tenants]),
        ):
            seen: set[str] = set()
            for value in ids:
                if value in seen:
                    raise ValueError(f"duplicate {what} {value!r}")
                seen.add(value)
        return self


def load_gateway_config(path: str | os.PathLike[str]) -> GatewayConfig:
    """Read and validate a gateway configuration file (raises SourceError/ValidationFailed)."""
    doc = load_yaml_file(path)
    config = validate_document(doc, GatewayConfig)
    problems: list[Problem] = []
    base = Path(path).parent
    for index, entry in enumerate(config.contracts):
        if not (base / entry).exists():
            problems.append(
                doc.problem(("contracts", index), f"no such file or directory: {entry}")
            )
    if problems:
        raise ValidationFailed(problems)
    return config


def contract_paths(config: GatewayConfig, config_path: str | os.PathLike[str]) -> list[Path]:
    base = Path(config_path).parent
    return [base / entry for entry in config.contracts]
