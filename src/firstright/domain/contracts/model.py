"""The contract language: one version of an agreement, its parties and typed clauses.

These pydantic models are the single source of truth: ``firstright schema`` prints their JSON
Schema and the loader validates every bundle against them. The clause vocabulary is closed
(DESIGN.md §2); adding a kind is a code change the type checker follows through ``Clause``.

Cross-field rules that need a file position (dangling ``overrides``, unknown parties) live in
``rules.py`` and report a field path; rules local to one object are validators here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

PartyId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ProviderId = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]{0,63}$")]
ClauseId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_.:/-]{0,127}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=4000)]
NonNegativeDecimal = Annotated[Decimal, Field(ge=0, allow_inf_nan=False)]
Rate = Annotated[Decimal, Field(ge=0, le=1, allow_inf_nan=False)]
Percent = Annotated[Decimal, Field(ge=0, le=1000, allow_inf_nan=False)]


class Strict(BaseModel):
    """Every model refuses unknown keys and is immutable once loaded."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ---------------------------------------------------------------------------------------------
# Shared pieces


class Source(Strict):
    """Where a term comes from. A term that is not public says ``assumption: true``."""

    quote: Text | None = None
    url: Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=2000)] | None = None
    section: Text | None = None
    assumption: bool = False
    note: Text | None = None

    @model_validator(mode="after")
    def _cites_something(self) -> Source:
        if not (self.quote or self.url or self.section or self.assumption):
            raise ValueError("a source needs a quote, url or section, or assumption: true")
        return self


class Effective(Strict):
    """When a clause is in force, inside its contract version's life. ``until`` is exclusive."""

    from_: AwareDatetime | None = Field(default=None, alias="from")
    until: AwareDatetime | None = None
    until_event: Tag | None = None
    """A named event that ends the clause early (e.g. ``agi_verified_by_panel``)."""

    @field_validator("until")
    @classmethod
    def _ordered(cls, until: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("from_")
        if start is not None and until is not None and until <= start:
            raise ValueError("effective.until must be after effective.from")
        return until


class Selector(Strict):
    """Which demand a clause talks about. An empty list means "any"; all given lists must match."""

    workloads: list[Tag] = Field(default_factory=list, max_length=100)
    categories: list[Tag] = Field(default_factory=list, max_length=100)
    channels: list[Tag] = Field(default_factory=list, max_length=100)
    products: list[Tag] = Field(default_factory=list, max_length=100)
    customers: list[Tag] = Field(default_factory=list, max_length=100)


class Party(Strict):
    """A company. ``clouds`` are the providers (catalog names) it operates."""

    name: Text | None = None
    kind: Literal["lab", "cloud", "model_vendor", "customer", "investor"] | None = None
    clouds: list[ProviderId] = Field(default_factory=list, max_length=50)


class ClauseBase(Strict):
    id: ClauseId
    title: Text | None = None
    effective: Effective = Field(default_factory=Effective)
    overrides: list[ClauseId] = Field(default_factory=list, max_length=100)
    source: Source


# ---------------------------------------------------------------------------------------------
# exclusivity, carve_out / exception, ship_first


class ExclusivityParams(Selector):
    providers: list[ProviderId] = Field(min_length=1, max_length=50)
    """The only providers the selected demand may run on."""


class ExclusivityClause(ClauseBase):
    kind: Literal["exclusivity"]
    holder: PartyId
    """The party that benefits (its clouds are usually the allowed providers)."""
    owner: PartyId
    """The party whose demand is bound."""
    params: ExclusivityParams


class ExemptionParams(Selector):
    providers: list[ProviderId] = Field(default_factory=list, max_length=50)
    """Where the exempted demand may go; empty means any provider."""
    max_gpus: Annotated[int, Field(gt=0)] | None = None
    max_spend_usd: NonNegativeDecimal | None = None


class ExemptionClause(ClauseBase):
    """``carve_out`` or ``exception``: a class of demand exempt from the clauses it overrides."""

    kind: Literal["carve_out", "exception"]
    approved_by: PartyId | None = None
    params: ExemptionParams

    @model_validator(mode="after")
    def _overrides_something(self) -> ExemptionClause:
        if not self.overrides:
            raise ValueError(f"a {self.kind} must name the clauses it overrides in 'overrides'")
        return self


class ShipFirstParams(Selector):
    providers: list[ProviderId] = Field(min_length=1, max_length=50)
    escape: Literal["cannot_and_chooses_not", "cannot_or_chooses_not"] = "cannot_and_chooses_not"
    """When the owner may launch elsewhere first: the holder cannot support the needed
    capabilities and (or, for the weaker reading) chooses not to."""


class ShipFirstClause(ClauseBase):
    kind: Literal["ship_first"]
    holder: PartyId
    owner: PartyId
    params: ShipFirstParams


# ---------------------------------------------------------------------------------------------
# first_refusal (the parameters of specs/ROFR.md)


class RofrScope(Strict):
    covered_categories: list[Tag] = Field(min_length=1, max_length=100)
    exempt: list[Tag] = Field(default_factory=list, max_length=100)


class Tolerance(Strict):
    """How much a term may worsen for the owner after a release without a re-offer."""

    pct: NonNegativeDecimal | None = None
    abs: NonNegativeDecimal | None = None
    days: Annotated[int, Field(ge=0, le=3650)] | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Tolerance:
        given = [v for v in (self.pct, self.abs, self.days) if v is not None]
        if len(given) != 1:
            raise ValueError("a tolerance has exactly one of pct, abs, days")
        return self


class TokenPriceCap(Strict):
    """Per-million-token prices above which the holder refuses traffic (gateway first refusal)."""

    input_usd_per_mtok: NonNegativeDecimal
    output_usd_per_mtok: NonNegativeDecimal


TermDirection = Literal["lower", "higher", "earlier", "later"]
Duration = Annotated[timedelta, Field(gt=timedelta(0), le=timedelta(days=3650))]


class RofrParams(Strict):
    mode: Literal["rofr", "rofo"] = "rofr"
    trigger: Literal["third_party_offer", "owner_intent"] = "third_party_offer"
    scope: RofrScope
    effective_from: AwareDatetime | None = None
    terminated_at: AwareDatetime | None = None
    exercise_period: Duration
    deadline_inclusive: bool = True
    nonconforming_response_is_rejection: bool = False
    partial_exercise: Literal["all_or_none", "allowed"] = "all_or_none"
    partial_min_fraction: Annotated[Decimal, Field(gt=0, le=1)] | None = None
    release_window: Duration
    release_scope: Literal["any_third_party", "named_offeror"] = "any_third_party"
    holder_closing_window: Duration
    unmatchable_terms: Literal["cash_equivalent", "flag_for_review", "invalid_trigger"] = (
        "cash_equivalent"
    )
    required_notice_fields: list[Tag] = Field(default_factory=list, max_length=100)
    terms_order: dict[Tag, TermDirection] = Field(min_length=1, max_length=100)
    identity_terms: list[Tag] = Field(default_factory=lambda: ["gpu_type", "region"])
    reoffer_tolerance: dict[Tag, Tolerance] = Field(default_factory=dict, max_length=100)
    rofo_max_price_pct_of_offered: Percent | None = None
    in_flight: Literal["continue", "terminate"] = "continue"
    match_price_cap: TokenPriceCap | None = None

    # Cross-field checks are field validators on the later field, so a problem points at it.

    @field_validator("terminated_at")
    @classmethod
    def _after_start(cls, value: datetime | None, info: ValidationInfo) -> datetime | None:
        start = info.data.get("effective_from")
        if start is not None and value is not None and value <= start:
            raise ValueError("terminated_at must be after effective_from")
        return value

    @field_validator("partial_min_fraction")
    @classmethod
    def _partial_allowed(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is not None and info.data.get("partial_exercise") != "allowed":
            raise ValueError("partial_min_fraction is only allowed with partial_exercise: allowed")
        return value

    @field_validator("rofo_max_price_pct_of_offered")
    @classmethod
    def _rofo_only(cls, value: Decimal | None, info: ValidationInfo) -> Decimal | None:
        if value is not None and info.data.get("mode") != "rofo":
            raise ValueError("rofo_max_price_pct_of_offered is only allowed with mode: rofo")
        return value

    @field_validator("reoffer_tolerance")
    @classmethod
    def _known_terms(
        cls, value: dict[str, Tolerance], info: ValidationInfo
    ) -> dict[str, Tolerance]:
        order = info.data.get("terms_order")
        if order is not None:
            unknown = sorted(set(value) - set(order))
            if unknown:
                raise ValueError(f"reoffer_tolerance names terms not in terms_order: {unknown}")
        return value


class FirstRefusalClause(ClauseBase):
    kind: Literal["first_refusal"]
    holder: PartyId
    """Holds the right, for its clouds."""
    owner: PartyId
    """Buys the capacity and must offer it first."""
    params: RofrParams


# ---------------------------------------------------------------------------------------------
# money clauses: commitment, revenue_share, price


class CommitmentParams(Strict):
    amount_usd: Annotated[Decimal, Field(gt=0, allow_inf_nan=False)]
    providers: list[ProviderId] = Field(min_length=1, max_length=50)
    period_start: AwareDatetime
    period_end: AwareDatetime
    workloads: list[Tag] = Field(default_factory=list, max_length=100)
    """Which demand draws the commitment down; empty means all of the payer's spend."""
    true_up: bool = True
    """At period end the payer pays the shortfall."""

    @field_validator("period_end")
    @classmethod
    def _ordered(cls, value: datetime, info: ValidationInfo) -> datetime:
        start = info.data.get("period_start")
        if start is not None and value <= start:
            raise ValueError("period_end must be after period_start")
        return value


class CommitmentClause(ClauseBase):
    kind: Literal["commitment"]
    payer: PartyId
    payee: PartyId
    params: CommitmentParams


class RevenueTier(Strict):
    up_to_usd: NonNegativeDecimal | None = None
    """Upper bound of the tier's basis in the period; ``None`` on the last tier."""
    rate: Rate


class RevenueShareParams(Strict):
    basis: Selector = Field(default_factory=Selector)
    """Which revenue of the payer counts (by channel, product, ...)."""
    rate: Rate | None = None
    tiers: list[RevenueTier] = Field(default_factory=list, max_length=20)
    cap_usd: NonNegativeDecimal | None = None
    """Most the payer owes over the clause's life."""
    period: Literal["month", "quarter", "year"] = "quarter"

    @model_validator(mode="after")
    def _rate_or_tiers(self) -> RevenueShareParams:
        if (self.rate is None) == (not self.tiers):
            raise ValueError("a revenue share has exactly one of rate or tiers")
        if self.tiers:
            bounds = [t.up_to_usd for t in self.tiers]
            if any(b is None for b in bounds[:-1]):
                raise ValueError("only the last tier may omit up_to_usd")
            finite = [b for b in bounds if b is not None]
            if finite != sorted(finite) or len(set(finite)) != len(finite):
                raise ValueError("tier bounds must increase")
        return self


class RevenueShareClause(ClauseBase):
    kind: Literal["revenue_share"]
    payer: PartyId
    payee: PartyId
    params: RevenueShareParams


class GpuRate(Strict):
    provider: ProviderId
    accelerator: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    region: Annotated[str, StringConstraints(min_length=1, max_length=64)] | None = None
    usd_per_gpu_hour: NonNegativeDecimal


class TokenRate(Strict):
    model: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    """Model name; a trailing ``*`` matches a prefix."""
    provider: ProviderId | None = None
    input_usd_per_mtok: NonNegativeDecimal
    output_usd_per_mtok: NonNegativeDecimal


class PriceParams(Strict):
    gpu_rates: list[GpuRate] = Field(default_factory=list, max_length=10_000)
    token_rates: list[TokenRate] = Field(default_factory=list, max_length=10_000)
    discount_pct: Annotated[Decimal, Field(ge=0, le=100)] | None = None

    @model_validator(mode="after")
    def _has_prices(self) -> PriceParams:
        if not (self.gpu_rates or self.token_rates or self.discount_pct is not None):
            raise ValueError("a price clause needs gpu_rates, token_rates or discount_pct")
        return self


class PriceClause(ClauseBase):
    kind: Literal["price"]
    seller: PartyId
    buyer: PartyId
    params: PriceParams


# ---------------------------------------------------------------------------------------------
# ip_license


class IpLicenseParams(Strict):
    assets: list[Tag] = Field(min_length=1, max_length=50)
    """e.g. models, products, infrastructure, research, model_weights."""
    rights: list[Tag] = Field(default_factory=lambda: ["serve"], max_length=50)
    models: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=500
    )
    """Model names the license covers (a trailing ``*`` matches a prefix); empty = all."""
    excluded: list[Tag] = Field(default_factory=list, max_length=50)
    exclusive: bool = False


class IpLicenseClause(ClauseBase):
    kind: Literal["ip_license"]
    licensor: PartyId
    licensee: PartyId
    params: IpLicenseParams


Clause = Annotated[
    ExclusivityClause
    | ExemptionClause
    | FirstRefusalClause
    | ShipFirstClause
    | CommitmentClause
    | RevenueShareClause
    | IpLicenseClause
    | PriceClause,
    Field(discriminator="kind"),
]

CLAUSE_KINDS = (
    "exclusivity",
    "carve_out",
    "exception",
    "first_refusal",
    "ship_first",
    "commitment",
    "revenue_share",
    "ip_license",
    "price",
)


class Contract(Strict):
    """One version of an agreement. A version is in force from ``effective_from`` until the
    next version of the same ``contract_id`` takes effect (or ``effective_until``)."""

    contract_id: Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9._-]{0,127}$")]
    version: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    title: Text | None = None
    effective_from: AwareDatetime
    effective_until: AwareDatetime | None = None
    parties: dict[PartyId, Party] = Field(min_length=2, max_length=100)
    clauses: list[Clause] = Field(default_factory=list, max_length=1000)
    sources: list[Source] = Field(default_factory=list, max_length=200)

    @property
    def key(self) -> str:
        return f"{self.contract_id}@{self.version}"

    def clouds_of(self, party: str) -> list[str]:
        found = self.parties.get(party)
        return list(found.clouds) if found else []

    def owner_of_cloud(self, provider: str) -> str | None:
        for party_id, party in self.parties.items():
            if provider in party.clouds:
                return party_id
        return None
