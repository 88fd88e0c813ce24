"""Assembling a gateway: from ``--upstream URL`` (zero-config) or from a configuration file
with contracts, plus the background work that keeps routes current.

    gateway_for_upstream(url, sink, log_stream)   every model to one upstream, any key accepted
    gateway_for_config(path, sink, log_stream)    backends, tenants and contracts from a file
    Gateway.start() / Gateway.stop()              meter thread, rerank and reload task; stop
                                                  drains the meter (every answered request stored)

Routes are recompiled when a contract or configuration file changes (checked every
``refresh_s``) and when the contracts in force change with time (once a minute); backends are
re-ranked by observed latency every second. Nothing of this happens per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy.engine import Engine

from firstright.domain.contracts.policy import Policy
from firstright.errors import AuthError
from firstright.gateway.backends import ANY_MODEL, Backend, PriceLookup, backend_from_config
from firstright.gateway.config import (
    BreakerConfig,
    GatewayConfig,
    GatewayLimits,
    Timeouts,
    contract_paths,
    load_gateway_config,
)
from firstright.gateway.contracts_view import ContractRules
from firstright.gateway.handler import GatewayHandler, StoreLookup, Tenants
from firstright.gateway.metering import Meter, UsageSink
from firstright.gateway.metrics import GatewayMetrics
from firstright.gateway.routing import Profile, RouteTable
from firstright.gateway.upstream import UpstreamEndpoint
from firstright.services.auth import authenticate
from firstright.services.contract_loader import load_contracts

log = logging.getLogger("firstright.gateway")

UPSTREAM_BACKEND_ID = "upstream"
UPSTREAM_PARTY = "local"
RERANK_INTERVAL_S = 1.0
POLICY_REFRESH_S = 60.0


class Gateway:
    def __init__(
        self,
        handler: GatewayHandler,
        meter: Meter,
        metrics: GatewayMetrics,
        reload: Callable[[], bool] | None = None,
        refresh_s: float = 5.0,
    ) -> None:
        self.handler = handler
        self.meter = meter
        self.metrics = metrics
        self._reload = reload
        self._refresh_s = refresh_s
        self._task: asyncio.Task[None] | None = None

    @property
    def backends(self) -> tuple[Backend, ...]:
        return self.handler.table.backends

    async def start(self) -> None:
        self.meter.start()
        self._task = asyncio.create_task(self._background(), name="firstright-gateway-refresh")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for backend in self.backends:
            backend.close()
        await asyncio.to_thread(self.meter.close)

    async def _background(self) -> None:
        loop = asyncio.get_running_loop()
        last_reload = loop.time()
        while True:
            await asyncio.sleep(RERANK_INTERVAL_S)
            self.handler.table.rerank()
            if self._reload is not None and loop.time() - last_reload >= self._refresh_s:
                last_reload = loop.time()
                try:
                    self._reload()
                except Exception:  # a bad edit must not stop serving with the last good routes
                    log.exception("reloading the gateway configuration failed; keeping routes")


def gateway_for_upstream(url: str, sink: UsageSink, log_stream: TextIO | None) -> Gateway:
    """Zero-config mode: every model to the OpenAI-compatible upstream at ``url`` (``.../v1``)."""
    UpstreamEndpoint.parse(url)
    api_key = os.environ.get("FIRSTRIGHT_UPSTREAM_API_KEY") or None
    backend = Backend(
        backend_id=UPSTREAM_BACKEND_ID,
        operator=UPSTREAM_BACKEND_ID,
        vendor=UPSTREAM_BACKEND_ID,
        provider=UPSTREAM_BACKEND_ID,
        region=None,
        models=frozenset({ANY_MODEL}),
        base_url=url,
        api_key=api_key,
        forward_client_auth=api_key is None,
        in_flight_max=None,
        tokens_per_minute=None,
        timeouts=Timeouts(),
        breaker=BreakerConfig(),
        prices={},
        expected_latency_ms=None,
        price_fallback=PriceLookup(),
    )
    table = RouteTable((backend,))
    profile = Profile(name="default", party=UPSTREAM_PARTY)
    table.compile([profile])
    metrics = GatewayMetrics(lambda: table.backends)
    meter = Meter(sink, metrics, log_stream)
    handler = GatewayHandler(table, None, profile, GatewayLimits(), meter)
    return Gateway(handler, meter, metrics)


def _file_stamps(paths: list[Path]) -> tuple[tuple[str, int, int], ...]:
    stamps: list[tuple[str, int, int]] = []
    for path in paths:
        files = sorted(path.rglob("*")) if path.is_dir() else [path]
        for file in files:
            with contextlib.suppress(OSError):
                stat = file.stat()
                stamps.append((str(file), stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


def _profiles(config: GatewayConfig) -> tuple[dict[str, tuple[str, Profile]], list[Profile]]:
    by_hash: dict[str, tuple[str, Profile]] = {}
    profiles: list[Profile] = []
    for tenant in config.tenants:
        profile = Profile(
            name=tenant.id,
            party=tenant.party,
            channel=tenant.channel,
            product=tenant.product,
            customer=tenant.customer,
            workload=tenant.workload,
            regions=frozenset(tenant.regions),
            default_deadline_ms=tenant.default_deadline_ms,
        )
        by_hash[tenant.key_sha256] = (tenant.id, profile)
        profiles.append(profile)
    return by_hash, profiles


def build_table(
    config: GatewayConfig,
    config_path: str | os.PathLike[str],
    backends: tuple[Backend, ...],
    profiles: list[Profile],
    at: datetime,
) -> RouteTable:
    """Compile the route table for ``profiles`` under the contracts in force at ``at``."""
    table = RouteTable(backends)
    paths = contract_paths(config, config_path)
    if paths:
        policy = Policy.compile(load_contracts(paths), config.contracts_at or at)
        rules = ContractRules(policy, config.workload)
        table.rules_for = rules.rules_for
        table.may_serve = rules.may_serve
    table.compile(profiles)
    return table


def key_store_lookup(engine: Engine) -> StoreLookup:
    """Tenant keys from the key store (``firstright keys create --role tenant``)."""

    def lookup(bearer: str) -> tuple[str, Profile] | None:
        try:
            principal = authenticate(engine, bearer)
        except AuthError:
            return None
        if principal.role != "tenant":
            return None
        name = f"key:{principal.key_id}"
        profile = Profile(
            name=name, party=principal.party, channel=principal.channel, product=principal.product
        )
        return name, profile

    return lookup


def gateway_for_config(
    path: str | os.PathLike[str],
    sink: UsageSink,
    log_stream: TextIO | None,
    store_lookup: StoreLookup | None = None,
) -> Gateway:
    """A gateway from a configuration file (backends, tenants, contracts); tenant keys not in
    the file are looked up with ``store_lookup``."""
    config = load_gateway_config(path)
    prices = PriceLookup()
    backends = tuple(backend_from_config(b, config.breaker, prices) for b in config.backends)
    by_hash, profiles = _profiles(config)
    table = build_table(config, path, backends, profiles, datetime.now(UTC))
    metrics = GatewayMetrics(lambda: handler.table.backends)
    meter = Meter(sink, metrics, log_stream)
    default = profiles[0] if profiles else Profile(name="default", party=UPSTREAM_PARTY)
    handler = GatewayHandler(table, Tenants(by_hash, store_lookup), default, config.limits, meter)
    reloader = _Reloader(path, config, backends, handler)
    return Gateway(handler, meter, metrics, reloader.reload, config.refresh_s)


class _Reloader:
    """Recompiles the routes when the configuration or a contract file changes, or when the
    contracts in force may have changed with time (every ``POLICY_REFRESH_S``)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        config: GatewayConfig,
        backends: tuple[Backend, ...],
        handler: GatewayHandler,
    ) -> None:
        self.path = path
        self.config = config
        self.backends = backends
        self.handler = handler
        self.watched = [Path(path), *contract_paths(config, path)]
        self.stamps = _file_stamps(self.watched)
        self.compiled_at = datetime.now(UTC)

    def reload(self) -> bool:
        stamps = _file_stamps(self.watched)
        now = datetime.now(UTC)
        stale = (now - self.compiled_at).total_seconds() >= POLICY_REFRESH_S
        if stamps == self.stamps and not stale:
            return False
        fresh = load_gateway_config(self.path)
        if fresh.backends != self.config.backends:
            log.warning("backend changes in %s take effect on restart", self.path)
        by_hash, profiles = _profiles(fresh)
        self.handler.table = build_table(fresh, self.path, self.backends, profiles, now)
        self.handler.tenants = Tenants(
            by_hash, self.handler.tenants.store if self.handler.tenants else None
        )
        self.handler.limits = fresh.limits
        self.watched = [Path(self.path), *contract_paths(fresh, self.path)]
        self.stamps = stamps
        self.compiled_at = now
        log.info("routes recompiled (%d routes)", self.handler.table.route_count)
        return True
