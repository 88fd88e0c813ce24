"""Runtime state of one backend: its connection pool, prebuilt request prefixes, circuit
breaker, load and latency estimate. Built from ``BackendConfig`` (or from ``--upstream``)."""

from __future__ import annotations

import os
from decimal import Decimal

from firstright.adapters.catalogs import load_model_prices
from firstright.errors import InputError
from firstright.gateway.breaker import CircuitBreaker
from firstright.gateway.config import BackendConfig, BreakerConfig, Timeouts
from firstright.gateway.limits import BackendLoad
from firstright.gateway.upstream import UpstreamEndpoint, UpstreamPool

LATENCY_EWMA_WEIGHT = 0.2
ANY_MODEL = "*"

TokenPrices = tuple[Decimal, Decimal]
"""(input, output) USD per million tokens."""


class Backend:
    __slots__ = (
        "breaker",
        "chat_prefix",
        "embeddings_prefix",
        "endpoint",
        "first_byte_timeout_s",
        "forward_client_auth",
        "id",
        "id_header",
        "latency_ms",
        "load",
        "models",
        "models_request",
        "operator",
        "pool",
        "price_fallback",
        "prices",
        "provider",
        "read_idle_timeout_s",
        "region",
        "vendor",
    )

    def __init__(
        self,
        *,
        backend_id: str,
        operator: str,
        vendor: str,
        provider: str,
        region: str | None,
        models: frozenset[str],
        base_url: str,
        api_key: str | None,
        forward_client_auth: bool,
        in_flight_max: int | None,
        tokens_per_minute: int | None,
        timeouts: Timeouts,
        breaker: BreakerConfig,
        prices: dict[str, TokenPrices],
        expected_latency_ms: int | None,
        price_fallback: PriceLookup | None = None,
    ) -> None:
        self.id = backend_id
        self.id_header = backend_id.encode()
        self.operator = operator
        self.vendor = vendor
        self.provider = provider
        self.region = region
        self.models = models
        self.endpoint = UpstreamEndpoint.parse(base_url)
        self.pool = UpstreamPool(self.endpoint, backend_id, timeouts.connect_s)
        self.forward_client_auth = forward_client_auth
        auth = f"Bearer {api_key}" if api_key else None
        self.chat_prefix = self.endpoint.request_prefix("/chat/completions", auth)
        self.embeddings_prefix = self.endpoint.request_prefix("/embeddings", auth)
        self.models_request = self.endpoint.get_request("/models", auth)
        self.first_byte_timeout_s = timeouts.first_byte_s
        self.read_idle_timeout_s = timeouts.read_idle_s
        self.breaker = CircuitBreaker(breaker.failures_max, breaker.open_s)
        self.load = BackendLoad(in_flight_max, tokens_per_minute)
        self.prices = prices
        self.price_fallback = price_fallback
        self.latency_ms = float(expected_latency_ms or 0)

    def serves(self, model: str) -> bool:
        return model in self.models or ANY_MODEL in self.models

    def price_of(self, model: str) -> TokenPrices | None:
        found = self.prices.get(model) or self.prices.get(ANY_MODEL)
        if found is None and self.price_fallback is not None:
            found = self.price_fallback(model, None)
        return found

    def observe_latency(self, latency_ms: float) -> None:
        self.latency_ms += LATENCY_EWMA_WEIGHT * (latency_ms - self.latency_ms)

    def close(self) -> None:
        self.pool.close()


def backend_from_config(
    config: BackendConfig, breaker: BreakerConfig, price_lookup: PriceLookup
) -> Backend:
    api_key: str | None = None
    if config.api_key_env is not None:
        api_key = os.environ.get(config.api_key_env)
        if not api_key:
            raise InputError(
                f"backend {config.id}: environment variable {config.api_key_env} is not set"
            )
    prices: dict[str, TokenPrices] = {}
    for model in config.models:
        if config.price is not None:
            prices[model] = (config.price.input_usd_per_mtok, config.price.output_usd_per_mtok)
        else:
            found = price_lookup(model, config.provider)
            if found is not None:
                prices[model] = found
    return Backend(
        backend_id=config.id,
        operator=config.operator,
        vendor=config.vendor,
        provider=config.provider,
        region=config.region,
        models=frozenset(config.models),
        base_url=config.base_url,
        api_key=api_key,
        forward_client_auth=False,
        in_flight_max=config.limits.in_flight_max,
        tokens_per_minute=config.limits.tokens_per_minute,
        timeouts=config.timeouts,
        breaker=breaker,
        prices=prices,
        expected_latency_ms=config.expected_latency_ms,
    )


class PriceLookup:
    """List prices from the shipped price map, by (model, provider), cached."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str | None], TokenPrices | None] = {}

    def __call__(self, model: str, provider: str | None) -> TokenPrices | None:
        key = (model, provider)
        if key in self._cache:
            return self._cache[key]
        book = load_model_prices()
        found = book.lookup(model, provider) or book.lookup(model)
        result = (found.input_usd_per_mtok, found.output_usd_per_mtok) if found else None
        if len(self._cache) < 100_000:
            self._cache[key] = result
        return result
