"""The admin HTTP app: ``/api/...`` for people and tools, OpenAPI at ``/openapi.json``.

    create_admin_app(engine, settings=AdminSettings(...)) -> FastAPI
    create_app_from_env() -> FastAPI        uvicorn factory (env FIRSTRIGHT_DATABASE, ...)

Routers are listed by name in ``ROUTERS`` (one module per area: ``api/rofr.py``,
``api/ledger.py``, ...) and imported when the app is built. Background services listed in
``BACKGROUND`` (the first-refusal timer scheduler) start in the lifespan and stop with it.
Every route except ``/api/health`` needs an API key (``Authorization: Bearer ...``).
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from fastapi import APIRouter, FastAPI
from sqlalchemy.engine import Engine

from firstright import __version__
from firstright.adapters.db import database_url_from, migrate, open_engine, storage_errors
from firstright.api.body_limit import BodyLimit
from firstright.api.deps import AdminDep, EngineDep, PrincipalDep
from firstright.api.errors import install_error_handlers
from firstright.errors import InputError
from firstright.limits import ADMIN_BODY_BYTES_MAX
from firstright.services.auth import list_keys

log = logging.getLogger("firstright.api")

# area -> "module:attribute" of an APIRouter; add one line per area.
ROUTERS: dict[str, str] = {
    "rofr": "firstright.api.rofr:router",
    "placements": "firstright.api.placements:router",
    "traffic": "firstright.api.traffic:router",
    "dashboard": "firstright.dashboard.app:router",
    "ledger": "firstright.api.ledger:router",
}

# name -> "module:attribute" of an async context manager factory ``(app) -> AsyncContextManager``
# started in the lifespan; add one line per background service.
BACKGROUND: dict[str, str] = {
    "rofr_scheduler": "firstright.api.rofr:scheduler_lifespan",
}


def wall_clock() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class AdminSettings:
    """Everything the admin app is configured with (see ``settings_from_env``)."""

    body_bytes_max: int = ADMIN_BODY_BYTES_MAX
    rofr_contract_path: Path | None = None
    alert_webhook_url: str | None = None
    alert_lead_s: tuple[int, ...] = ()
    scheduler_enabled: bool = True
    scheduler_poll_s: float = 1.0
    clock: Callable[[], datetime] = wall_clock
    extra: dict[str, Any] = field(default_factory=dict)


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise InputError(f"env {name}: {raw!r} is not a number") from exc
    if value <= 0:
        raise InputError(f"env {name}: must be positive, got {raw!r}")
    return value


def _lead_env(name: str) -> tuple[int, ...]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return ()
    leads: list[int] = []
    for part in raw.split(","):
        try:
            leads.append(int(part.strip()))
        except ValueError as exc:
            raise InputError(f"env {name}: {part!r} is not a whole number of seconds") from exc
    if any(lead <= 0 for lead in leads):
        raise InputError(f"env {name}: lead times must be positive seconds")
    return tuple(sorted(set(leads), reverse=True))


def settings_from_env() -> AdminSettings:
    """Settings from env: FIRSTRIGHT_ROFR_CONTRACT (file), FIRSTRIGHT_ALERT_WEBHOOK (URL),
    FIRSTRIGHT_ALERT_LEAD_S (seconds before each deadline, comma separated),
    FIRSTRIGHT_SCHEDULER_POLL_S, FIRSTRIGHT_SCHEDULER=0 to disable the timer scheduler."""
    contract = os.environ.get("FIRSTRIGHT_ROFR_CONTRACT", "").strip()
    return AdminSettings(
        rofr_contract_path=Path(contract) if contract else None,
        alert_webhook_url=os.environ.get("FIRSTRIGHT_ALERT_WEBHOOK", "").strip() or None,
        alert_lead_s=_lead_env("FIRSTRIGHT_ALERT_LEAD_S"),
        scheduler_enabled=os.environ.get("FIRSTRIGHT_SCHEDULER", "1") != "0",
        scheduler_poll_s=_float_env("FIRSTRIGHT_SCHEDULER_POLL_S", 1.0),
    )


def _load(target: str) -> Any:
    module_name, attribute = target.split(":")
    return getattr(importlib.import_module(module_name), attribute)


def _system_router() -> APIRouter:
    router = APIRouter(prefix="/api", tags=["system"])

    @router.get("/health", summary="Liveness and database reachability (no key needed)")
    def health(engine: EngineDep) -> dict[str, str]:
        with storage_errors("database health check"), engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return {"status": "ok", "version": __version__}

    @router.get("/whoami", summary="The party and role of the calling key")
    def whoami(principal: PrincipalDep) -> dict[str, str | None]:
        return {
            "party": principal.party,
            "role": principal.role,
            "key_id": principal.key_id,
            "channel": principal.channel,
            "product": principal.product,
        }

    @router.get("/keys", summary="Every API key, without secrets (admin)")
    def keys(engine: EngineDep, _admin: AdminDep) -> list[dict[str, object]]:
        return [record.to_json() for record in list_keys(engine)]

    return router


def create_admin_app(engine: Engine, *, settings: AdminSettings | None = None) -> FastAPI:
    """The admin app on ``engine`` (migrated here). Background services run in its lifespan.
    Without ``settings`` they are read from the environment (``settings_from_env``)."""
    config = settings if settings is not None else settings_from_env()
    migrate(engine)
    services = [_load(target) for target in BACKGROUND.values()]

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for factory in services:
                await stack.enter_async_context(factory(app))
            yield

    app = FastAPI(
        title="firstright admin API",
        version=__version__,
        description="First refusal desk, keys and (later) ledger of firstright.",
        openapi_url="/openapi.json",
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.settings = config
    install_error_handlers(app)
    app.include_router(_system_router())
    for target in ROUTERS.values():
        router = _load(target)
        assert isinstance(router, APIRouter), target
        app.include_router(router)
    app.add_middleware(BodyLimit, body_bytes_max=config.body_bytes_max)
    return app


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory firstright.api.app:create_app_from_env``."""
    engine = open_engine(database_url_from(None))
    return create_admin_app(engine, settings=settings_from_env())
