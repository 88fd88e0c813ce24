"""Model-endpoint token prices: per-million-token input and output prices per (provider, model).

The source is LiteLLM's public price map (``data/model_prices.json``, see ``data/SOURCES.md``),
parsed with exact decimals (the adapter passes ``parse_float=Decimal``). Only entries with both a
per-token input and output price are kept; image, audio and per-call prices are out of scope.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

TOKENS_PER_MILLION = Decimal(1_000_000)
TEMPLATE_KEY = "sample_spec"
"""The documentation entry of the source file; it is not a model."""


@dataclass(frozen=True, slots=True)
class ModelPrice:
    model: str
    """The source's key, e.g. ``gpt-4o`` or ``azure/gpt-4o``."""
    provider: str
    """The source's ``litellm_provider``, e.g. ``openai``, ``azure``, ``bedrock``."""
    mode: str | None
    input_usd_per_mtok: Decimal
    output_usd_per_mtok: Decimal

    @property
    def base_model(self) -> str:
        """The model name without a provider prefix (``azure/gpt-4o`` -> ``gpt-4o``)."""
        return self.model.rsplit("/", 1)[-1]

    def cost_usd(self, input_tokens: int, output_tokens: int) -> Decimal:
        """Exact list price of one call."""
        return (
            self.input_usd_per_mtok * input_tokens + self.output_usd_per_mtok * output_tokens
        ) / TOKENS_PER_MILLION


@dataclass(frozen=True, slots=True)
class ModelPriceBook:
    prices: tuple[ModelPrice, ...]
    _by_model: dict[str, ModelPrice] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for price in self.prices:
            self._by_model[price.model] = price

    def get(self, model: str) -> ModelPrice | None:
        """The price of a model by the source's exact key."""
        return self._by_model.get(model)

    def for_provider(self, provider: str) -> tuple[ModelPrice, ...]:
        return tuple(p for p in self.prices if p.provider == provider)

    def lookup(self, model: str, provider: str | None = None) -> ModelPrice | None:
        """Find by exact key, then ``provider/model``, then the provider's entry whose base
        name equals ``model``."""
        exact = self._by_model.get(model)
        if exact is not None and (provider is None or exact.provider == provider):
            return exact
        if provider is not None:
            prefixed = self._by_model.get(f"{provider}/{model}")
            if prefixed is not None:
                return prefixed
            for price in self.prices:
                if price.provider == provider and price.base_model == model:
                    return price
        return None

    def __len__(self) -> int:
        return len(self.prices)


def _per_million(value: object) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        return None
    amount = Decimal(value)
    if not amount.is_finite() or amount < 0:
        return None
    return amount * TOKENS_PER_MILLION


def _tidy(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (``10``, not ``1E+1``)."""
    normal = value.normalize()
    return normal.quantize(Decimal(1)) if normal.as_tuple().exponent > 0 else normal  # type: ignore[operator]


def parse_model_prices(data: Mapping[str, object]) -> ModelPriceBook:
    """Typed prices from the source map (numbers must already be Decimal or int)."""
    prices = []
    for model in sorted(data):
        entry = data[model]
        if model == TEMPLATE_KEY or not isinstance(entry, Mapping):
            continue
        provider = entry.get("litellm_provider")
        input_price = _per_million(entry.get("input_cost_per_token"))
        output_price = _per_million(entry.get("output_cost_per_token"))
        if not isinstance(provider, str) or input_price is None or output_price is None:
            continue
        mode = entry.get("mode")
        prices.append(
            ModelPrice(
                model=model,
                provider=provider,
                mode=mode if isinstance(mode, str) else None,
                input_usd_per_mtok=_tidy(input_price),
                output_usd_per_mtok=_tidy(output_price),
            )
        )
    return ModelPriceBook(prices=tuple(prices))
