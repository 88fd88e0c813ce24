"""The traffic part of the demo: model requests through the gateway to simulated upstreams.

    run = run_traffic(engine, on_progress=lambda done, total: ...)
    run.to_json()    # what was started and sent; the numbers themselves come from the store

Four simulators (``testing/sim_upstream.py``) start on free loopback ports, one per backend,
at the list prices of the shipped price map (``data/model_prices.json``):

* ``azure-eastus`` — GPT-4o operated by Microsoft on Azure (``azure/gpt-4o``), few requests
  in flight (:data:`AZURE_EAST_IN_FLIGHT_MAX`) so traffic spills;
* ``azure-sweden`` — GPT-4o on Azure in Europe (``azure/eu/gpt-4o``), above the first-refusal
  clause's ``match_price_cap``;
* ``openai-direct`` — GPT-4o operated by OpenAI (``gpt-4o``);
* ``azure-mai`` — Microsoft's in-house ``MAI-Thinking-1`` (``azure_ai/MAI-Thinking-1``),
  cheaper but slower.

A gateway configuration is written to a temporary directory (the backends above, the embedded
contracts evaluated as of :data:`CONTRACTS_AT` — the 21 January 2025 version: the API exclusive
to Azure and Microsoft's right of first refusal on new capacity — and three tenants with fresh
keys), and the gateway runs in this process exactly as ``firstright serve`` assembles it
(``gateway_for_config`` behind ``ServeApp`` under uvicorn), on a free loopback port. Then
:data:`TENANTS` send their requests concurrently (a third of them streamed):

* ``demo-openai-api`` (OpenAI, channel ``openai-api``): pinned to Azure by ``api-exclusive-azure``
  and ``api-channels-azure``; spills from East US to Sweden, never to OpenAI's own endpoint;
* ``demo-chatgpt`` (OpenAI, ChatGPT on new capacity): ``rofr-new-capacity`` offers every
  request to Microsoft's Azure backends first; they refuse when full, when too slow for the
  request's deadline, or priced over the cap, and the request goes to OpenAI's endpoint;
* ``demo-copilot`` (Microsoft, Microsoft 365 Copilot) asks for ``copilot-chat``, which the MAI
  backend and the Azure GPT-4o backends serve (GPT-4o under Microsoft's IP license): the
  gateway ranks them by list price, then latency, so MAI takes what it can and interactive
  requests with a tight deadline go to GPT-4o.

The gateway is stopped as on SIGTERM (uvicorn's graceful exit; the meter drains, so every
answered request has its usage record) and the simulators after it. Records carry the wall-clock
time they were sent ("now") and the parties of the contracts (``openai``, ``microsoft``), so a
later ``firstright settle`` of the current quarter rates them; the demo itself settles 2025-Q1 to
2026-Q2 only and says whether the traffic fell inside (``settled``). Re-running first deletes the
gateway records of tenants ``demo-*``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import socket
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
import yaml
from aiohttp import web
from sqlalchemy.engine import Engine

from firstright.adapters.db import storage_errors
from firstright.adapters.usage_store import usage_records
from firstright.errors import RuntimeFailure

DEMO_TENANT_PREFIX = "demo-"
CONTRACTS_AT = datetime(2025, 6, 16, tzinfo=UTC)
"""The contracts the gateway routes under: the 21 January 2025 version was in force then."""
LOOPBACK = "127.0.0.1"
AZURE_EAST_IN_FLIGHT_MAX = 4
MAI_IN_FLIGHT_MAX = 4
OUTPUT_TOKENS = 64
GATEWAY_START_S_MAX = 30.0
GATEWAY_STOP_S_MAX = 30.0
REQUEST_TIMEOUT_S = 30.0
STREAM_EVERY = 3
"""Every third request of a tenant is streamed."""
COPILOT_MODEL = "copilot-chat"
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True, slots=True)
class SimulatorSpec:
    """One simulated upstream and the backend entry that points at it."""

    backend_id: str
    operator: str
    vendor: str
    provider: str
    region: str
    models: tuple[str, ...]
    price_key: str
    """Entry of the shipped price map whose list price the backend charges."""
    latency_ms: int
    in_flight_max: int | None = None


@dataclass(frozen=True, slots=True)
class TenantSpec:
    tenant_id: str
    party: str
    channel: str
    product: str | None
    workload: str | None
    model: str
    requests: int
    concurrency: int
    deadline_ms: int | None = None
    deadline_every: int = 0
    """Every n-th request carries ``x-firstright-deadline-ms: deadline_ms`` (0: none)."""
    note: str = ""


SIMULATORS: tuple[SimulatorSpec, ...] = (
    SimulatorSpec(
        "azure-eastus",
        "microsoft",
        "openai",
        "azure",
        "eastus",
        ("gpt-4o", COPILOT_MODEL),
        "azure/gpt-4o",
        latency_ms=90,
        in_flight_max=AZURE_EAST_IN_FLIGHT_MAX,
    ),
    SimulatorSpec(
        "azure-sweden",
        "microsoft",
        "openai",
        "azure",
        "swedencentral",
        ("gpt-4o", COPILOT_MODEL),
        "azure/eu/gpt-4o",
        latency_ms=110,
        in_flight_max=24,
    ),
    SimulatorSpec(
        "openai-direct",
        "openai",
        "openai",
        "openai",
        "us",
        ("gpt-4o",),
        "gpt-4o",
        latency_ms=15,
    ),
    SimulatorSpec(
        "azure-mai",
        "microsoft",
        "microsoft",
        "azure",
        "eastus",
        ("MAI-Thinking-1", COPILOT_MODEL),
        "azure_ai/MAI-Thinking-1",
        latency_ms=250,
        in_flight_max=MAI_IN_FLIGHT_MAX,
    ),
)

TENANTS: tuple[TenantSpec, ...] = (
    TenantSpec(
        "demo-openai-api",
        "openai",
        "openai-api",
        None,
        None,
        "gpt-4o",
        requests=180,
        concurrency=8,
        note="OpenAI API: only Azure-operated backends (api-exclusive-azure, api-channels-azure)",
    ),
    TenantSpec(
        "demo-chatgpt",
        "openai",
        "chatgpt",
        "chatgpt",
        "new_capacity",
        "gpt-4o",
        requests=120,
        concurrency=6,
        deadline_ms=60,
        deadline_every=4,
        note="ChatGPT on new capacity: offered to Microsoft's Azure backends first "
        "(rofr-new-capacity), then OpenAI's own",
    ),
    TenantSpec(
        "demo-copilot",
        "microsoft",
        "copilot",
        "m365-copilot",
        "product_serving",
        COPILOT_MODEL,
        requests=180,
        concurrency=10,
        deadline_ms=180,
        deadline_every=4,
        note="Microsoft 365 Copilot: MAI or GPT-4o on Azure (ip-license-microsoft) by list "
        "price, then latency",
    ),
)


@dataclass(slots=True)
class TrafficRun:
    """What the traffic step started and sent (the metered numbers are read from the store)."""

    contracts_at: datetime
    started_at: datetime
    finished_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    sent: int = 0
    answered: Counter[int] = field(default_factory=Counter)
    failed: int = 0
    """Requests that got no HTTP answer at all (connection errors)."""
    stored: int = 0
    simulators: list[dict[str, Any]] = field(default_factory=list)
    gateway_url: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "contracts_at": self.contracts_at.isoformat(),
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat(),
            "duration_s": round((self.finished_at - self.started_at).total_seconds(), 2),
            "sent": self.sent,
            "answered": {str(k): v for k, v in sorted(self.answered.items())},
            "failed": self.failed,
            "stored": self.stored,
            "simulators": self.simulators,
            "gateway_url": self.gateway_url,
            "tenants": [
                {"tenant": t.tenant_id, "party": t.party, "channel": t.channel, "note": t.note}
                for t in TENANTS
            ],
        }


def reset_demo_traffic(engine: Engine) -> int:
    """Delete the gateway records of the demo's tenants (``demo-*``); how many went."""
    c = usage_records.c
    condition = sa.and_(c.source == "gateway", c.tenant.like(f"{DEMO_TENANT_PREFIX}%"))
    with storage_errors("resetting the demo's gateway traffic"), engine.begin() as conn:
        return int(conn.execute(usage_records.delete().where(condition)).rowcount or 0)


def count_demo_traffic(engine: Engine) -> int:
    c = usage_records.c
    query = (
        sa.select(sa.func.count())
        .select_from(usage_records)
        .where(c.source == "gateway", c.tenant.like(f"{DEMO_TENANT_PREFIX}%"))
    )
    with storage_errors("counting the demo's gateway traffic"), engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


def list_prices() -> dict[str, tuple[Decimal, Decimal]]:
    """(input, output) USD per million tokens of each simulator, from the shipped price map."""
    from firstright.adapters.catalogs import load_model_prices  # noqa: PLC0415

    book = load_model_prices()
    prices: dict[str, tuple[Decimal, Decimal]] = {}
    for sim in SIMULATORS:
        found = book.lookup(sim.price_key)
        if found is None:
            raise RuntimeFailure(f"the shipped price map has no entry {sim.price_key!r}")
        prices[sim.backend_id] = (found.input_usd_per_mtok, found.output_usd_per_mtok)
    return prices


def _key_sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def gateway_config(
    urls: dict[str, str],
    keys: dict[str, str],
    prices: dict[str, tuple[Decimal, Decimal]],
    contracts_dir: Path,
) -> dict[str, Any]:
    """The gateway configuration (the shape of ``examples/gateway/gateway.yaml``) for the
    simulators at ``urls`` (backend id -> ``.../v1``) and tenant ``keys`` (id -> key)."""
    backends = []
    for sim in SIMULATORS:
        price_in, price_out = prices[sim.backend_id]
        backend: dict[str, Any] = {
            "id": sim.backend_id,
            "operator": sim.operator,
            "vendor": sim.vendor,
            "provider": sim.provider,
            "region": sim.region,
            "models": list(sim.models),
            "base_url": urls[sim.backend_id],
            "price": {"input_usd_per_mtok": str(price_in), "output_usd_per_mtok": str(price_out)},
            "expected_latency_ms": sim.latency_ms,
        }
        if sim.in_flight_max is not None:
            backend["limits"] = {"in_flight_max": sim.in_flight_max}
        backends.append(backend)
    tenants = []
    for tenant in TENANTS:
        entry: dict[str, Any] = {
            "id": tenant.tenant_id,
            "party": tenant.party,
            "channel": tenant.channel,
            "key_sha256": _key_sha256(keys[tenant.tenant_id]),
            "default_deadline_ms": 30_000,
        }
        if tenant.product is not None:
            entry["product"] = tenant.product
        if tenant.workload is not None:
            entry["workload"] = tenant.workload
        tenants.append(entry)
    return {
        "contracts": [str(contracts_dir)],
        "contracts_at": CONTRACTS_AT.isoformat().replace("+00:00", "Z"),
        "workload": "api_serving",
        "backends": backends,
        "tenants": tenants,
        "breaker": {"failures_max": 5, "open_s": 15},
        "refresh_s": 3600,
    }


def run_traffic(engine: Engine, *, on_progress: ProgressFn | None = None) -> TrafficRun:
    """Start the simulators and the gateway, send :data:`TENANTS`' requests, stop everything.
    The gateway's usage records go to ``engine`` (earlier demo traffic is deleted first)."""
    reset_demo_traffic(engine)
    run = TrafficRun(contracts_at=CONTRACTS_AT, started_at=datetime.now(UTC))
    with tempfile.TemporaryDirectory(prefix="firstright-demo-") as folder:
        asyncio.run(_drive(engine, Path(folder), run, on_progress or (lambda _d, _t: None)))
    run.finished_at = datetime.now(UTC)
    run.stored = count_demo_traffic(engine)
    return run


async def _drive(engine: Engine, folder: Path, run: TrafficRun, progress: ProgressFn) -> None:
    from firstright.examples import default_contracts_dir  # noqa: PLC0415
    from firstright.testing.sim_upstream import SimSettings, create_sim_app  # noqa: PLC0415

    prices = list_prices()
    runners: list[web.AppRunner] = []
    try:
        urls: dict[str, str] = {}
        for index, sim in enumerate(SIMULATORS):
            price_in, price_out = prices[sim.backend_id]
            settings = SimSettings(
                name=sim.backend_id,
                latency_ms=float(sim.latency_ms),
                output_tokens=OUTPUT_TOKENS,
                seed=index,
                input_usd_per_mtok=price_in,
                output_usd_per_mtok=price_out,
            )
            app = create_sim_app(settings)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            runners.append(runner)
            site = web.TCPSite(runner, LOOPBACK, 0)
            await site.start()
            port = runner.addresses[0][1]
            urls[sim.backend_id] = f"http://{LOOPBACK}:{port}/v1"
            run.simulators.append(
                {
                    "name": sim.backend_id,
                    "url": urls[sim.backend_id],
                    "operator": sim.operator,
                    "vendor": sim.vendor,
                    "models": list(sim.models),
                    "price_key": sim.price_key,
                    "input_usd_per_mtok": str(price_in),
                    "output_usd_per_mtok": str(price_out),
                    "latency_ms": sim.latency_ms,
                    "in_flight_max": sim.in_flight_max,
                }
            )
        keys = {t.tenant_id: f"sk-{t.tenant_id}-{secrets.token_urlsafe(18)}" for t in TENANTS}
        config = gateway_config(urls, keys, prices, default_contracts_dir())
        path = folder / "gateway.yaml"
        path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
        gateway = _GatewayThread(engine, path)
        await asyncio.to_thread(gateway.start)
        run.gateway_url = gateway.url
        try:
            await _send_all(gateway.url, keys, run, progress)
        finally:
            gateway.server.should_exit = True  # stops it even if this task is cancelled
            await asyncio.to_thread(gateway.stop)
    finally:
        for runner in reversed(runners):
            await runner.cleanup()


class _GatewayThread:
    """The gateway as ``firstright serve --config`` assembles it, served by uvicorn on its own
    thread and a free loopback port; ``stop`` is uvicorn's graceful exit (as on SIGTERM)."""

    def __init__(self, engine: Engine, config_path: Path) -> None:
        import uvicorn  # noqa: PLC0415

        from firstright.gateway.app import gateway_for_config, key_store_lookup  # noqa: PLC0415
        from firstright.gateway.asgi import ServeApp  # noqa: PLC0415
        from firstright.gateway.metering import store_sink  # noqa: PLC0415

        gateway = gateway_for_config(
            config_path, store_sink(engine), None, key_store_lookup(engine)
        )
        self.app = ServeApp(gateway, None)
        self.socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.socket.bind((LOOPBACK, 0))
        port: int = self.socket.getsockname()[1]
        self.url = f"http://{LOOPBACK}:{port}/v1"
        self.server = uvicorn.Server(
            uvicorn.Config(
                self.app,
                lifespan="on",
                access_log=False,
                log_level="warning",
                server_header=False,
                proxy_headers=False,
                timeout_graceful_shutdown=int(GATEWAY_STOP_S_MAX),
            )
        )
        self.error: BaseException | None = None
        self.thread = threading.Thread(
            target=self._serve, name="firstright-demo-gateway", daemon=True
        )

    def _serve(self) -> None:
        try:
            asyncio.run(self.server.serve(sockets=[self.socket]))
        except BaseException as exc:  # reported by start/stop on the caller's thread
            self.error = exc

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + GATEWAY_START_S_MAX
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeFailure(f"the demo's gateway did not start: {self.error!r}")
            time.sleep(0.02)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(GATEWAY_STOP_S_MAX + 5)
        with contextlib.suppress(OSError):
            self.socket.close()
        if self.thread.is_alive():
            raise RuntimeFailure("the demo's gateway did not stop in time")


def _body(tenant: TenantSpec, index: int, stream: bool) -> dict[str, Any]:
    words = 40 + (index * 37) % 160
    prompt = " ".join(
        ("quarterly", "capacity", "review", "for", "the", "copilot", "roll-out")[i % 7]
        for i in range(words)
    )
    body: dict[str, Any] = {
        "model": tenant.model,
        "messages": [
            {"role": "system", "content": f"You answer for {tenant.product or tenant.channel}."},
            {"role": "user", "content": f"Request {index}: {prompt}"},
        ],
        "max_tokens": OUTPUT_TOKENS,
    }
    if stream:
        body["stream"] = True
    return body


async def _send_all(url: str, keys: dict[str, str], run: TrafficRun, progress: ProgressFn) -> None:
    total = sum(t.requests for t in TENANTS)
    done = 0
    progress(0, total)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT_S, limits=limits) as client:

        async def one(tenant: TenantSpec, index: int) -> None:
            nonlocal done
            stream = index % STREAM_EVERY == STREAM_EVERY - 1
            headers = {"Authorization": f"Bearer {keys[tenant.tenant_id]}"}
            if tenant.deadline_every and index % tenant.deadline_every == 0:
                headers["x-firstright-deadline-ms"] = str(tenant.deadline_ms)
            body = _body(tenant, index, stream)
            try:
                if stream:
                    async with client.stream(
                        "POST", "/chat/completions", json=body, headers=headers
                    ) as reply:
                        async for _ in reply.aiter_lines():
                            pass
                        run.answered[reply.status_code] += 1
                else:
                    reply = await client.post("/chat/completions", json=body, headers=headers)
                    run.answered[reply.status_code] += 1
            except httpx.HTTPError:
                run.failed += 1
            run.sent += 1
            done += 1
            progress(done, total)

        async def worker(tenant: TenantSpec, lane: int) -> None:
            for index in range(lane, tenant.requests, tenant.concurrency):
                await one(tenant, index)

        await asyncio.gather(*(worker(t, lane) for t in TENANTS for lane in range(t.concurrency)))
