"""Usage records: what one request, one capacity allocation or one revenue report consumed.

A usage record is the unit of metering. It carries a client-chosen ``record_id`` so that writing
it twice is a no-op (same id and same content) and writing a different record under an old id is
a conflict (``ConflictError``), never a second write. Three sources produce records:

- ``gateway``: one model request; ``input_tokens``/``output_tokens`` and the price of the request
  at list or contract rate in ``amount_micros``;
- ``capacity``: GPU-hours of a capacity allocation accrued for one day (``gpu_hours_micros``);
- ``revenue``: revenue a party reports for a period (``amount_micros``), the basis of revenue
  shares.

``firstright schema usage`` prints the JSON Schema of :class:`UsageRecord`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from firstright.limits import USAGE_CLAUSE_IDS_MAX, USAGE_QUANTITY_MAX, USAGE_REFUSALS_MAX

UsageSource = Literal["gateway", "capacity", "revenue"]
USAGE_SOURCES: tuple[UsageSource, ...] = ("gateway", "capacity", "revenue")

RecordId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")]
PartyRef = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
Label = Annotated[str, StringConstraints(min_length=1, max_length=200)]
Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
Quantity = Annotated[int, Field(ge=0, le=USAGE_QUANTITY_MAX)]
Amount = Annotated[int, Field(ge=-USAGE_QUANTITY_MAX, le=USAGE_QUANTITY_MAX)]


class UsageRecord(BaseModel):
    """One metered fact. Immutable; identical content under one ``record_id`` is idempotent."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    record_id: RecordId
    """Client-chosen id; the idempotency key."""
    source: UsageSource
    occurred_at: AwareDatetime
    """When the usage happened (stored in UTC); decides its settlement period."""
    party: PartyRef
    """The party that consumed (gateway, capacity) or earned (revenue)."""
    counterparty: PartyRef | None = None
    """The other side, e.g. the party owning the provider that served the usage."""
    tenant: Label | None = None
    channel: Label | None = None
    product: Label | None = None
    provider: Label | None = None
    backend: Label | None = None
    operator: Label | None = None
    vendor: Label | None = None
    model: Label | None = None
    input_tokens: Quantity = 0
    output_tokens: Quantity = 0
    gpu_type: Label | None = None
    gpu_hours_micros: Quantity = 0
    """GPU-hours times 1,000,000 (integer)."""
    amount_micros: Amount = 0
    """Price of this usage at list/contract rate, or the revenue amount, in micro-units."""
    currency: Currency = "USD"
    latency_ms: Annotated[int, Field(ge=0, le=86_400_000)] | None = None
    status: Annotated[int, Field(ge=100, le=599)] | None = None
    partial: bool = False
    refusals: list[Label] = Field(default_factory=list, max_length=USAGE_REFUSALS_MAX)
    clause_ids: list[Label] = Field(default_factory=list, max_length=USAGE_CLAUSE_IDS_MAX)

    @field_validator("occurred_at")
    @classmethod
    def _to_utc(cls, value: datetime) -> datetime:
        return value.astimezone(UTC)

    @model_validator(mode="after")
    def _non_negative_usage(self) -> UsageRecord:
        if self.source != "revenue" and self.amount_micros < 0:
            raise ValueError("amount_micros of gateway and capacity usage is never negative")
        return self

    def content_json(self) -> bytes:
        """Canonical JSON of the record (sorted keys, UTC times): the basis of idempotency.

        Equal to the sorted JSON of :meth:`to_row_json`, built from the validated fields
        directly (no serialiser pass), because batch inserts hash every record."""
        data = dict(self.__dict__)
        data["occurred_at"] = format_utc(self.occurred_at)
        return orjson.dumps(data, option=orjson.OPT_SORT_KEYS)

    def content_hash(self) -> str:
        """SHA-256 hex of :meth:`content_json`; equal hashes mean equal content."""
        return hashlib.sha256(self.content_json()).hexdigest()

    def to_row_json(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        data["occurred_at"] = format_utc(self.occurred_at)
        return data


def format_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a ``Z``: one spelling per instant."""
    assert moment.tzinfo is not None, "usage times are aware"
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    # "...+00:00" -> "...Z"
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def usage_json_schema() -> dict[str, Any]:
    """The published JSON Schema of a usage record (``firstright schema usage``)."""
    schema = UsageRecord.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "firstright usage record"
    return schema
