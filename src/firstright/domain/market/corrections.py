"""Known data errors in the public catalogs, corrected or excluded explicitly, never silently.

Each entry here is a fact about the source data with the reason we change it. The normalizer
applies them and returns one :class:`CatalogCorrection` per change it actually made, so the CLI,
the README and the tests can show every deviation from the verbatim source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

CorrectionKind = Literal["corrected", "excluded"]


@dataclass(frozen=True, slots=True)
class CatalogCorrection:
    """One change to the source catalog: a corrected field or a group of excluded rows."""

    kind: CorrectionKind
    provider: str
    instance_type: str
    field: str
    source_value: str
    corrected_value: str | None
    """The value used instead; ``None`` when the rows are left out."""
    rows: int
    reason: str

    def describe(self) -> str:
        if self.kind == "corrected":
            change = f"{self.field} {self.source_value} -> {self.corrected_value}"
        else:
            change = f"{self.field} {self.source_value}: left out"
        return f"{self.provider} {self.instance_type}: {change} ({self.rows} rows) — {self.reason}"

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "provider": self.provider,
            "instance_type": self.instance_type,
            "field": self.field,
            "source_value": self.source_value,
            "corrected_value": self.corrected_value,
            "rows": self.rows,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class CountFix:
    """A wrong accelerator count: rows with ``wrong`` GPUs become ``right``."""

    provider: str
    instance_type: str
    accelerator: str
    wrong: str
    right: str
    reason: str


COUNT_FIXES: tuple[CountFix, ...] = (
    CountFix(
        provider="azure",
        instance_type="Standard_ND96isr_H100_v5",
        accelerator="H100",
        wrong="12",
        right="8",
        reason=(
            "the ND H100 v5 series has 8 NVIDIA H100 GPUs per VM (Azure documentation, "
            "ND-H100-v5 sizes); the catalog lists 12, so a request for H100:8 would never "
            "find Azure"
        ),
    ),
)

UNKNOWN_PRICE_REASONS: dict[tuple[str, str], str] = {
    ("gcp", "a4-highgpu-8g"): (
        "the source prices the a4-highgpu-8g host VM at 0.0 in every region: the price is "
        "unknown, not zero; adding the B200 accelerator row alone would undercharge the "
        "instance, so GCP B200 offers are left out"
    ),
}
"""Instance types whose zero prices are a known data error, with the explanation we show."""

ZERO_PRICE_REASON = "a price of 0 means the source does not know the price; it is treated as absent"
ZERO_SPOT_REASON = "a spot price of 0 means the source does not know it; spot is treated as absent"
