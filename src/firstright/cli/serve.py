"""``firstright serve``: the gateway (``/v1``), the admin API, ``/metrics`` and the dashboard in
one process.

    firstright serve --upstream http://127.0.0.1:8000/v1        # zero-config
    firstright serve --config gateway.yaml --port 8080          # backends, tenants, contracts
"""

from __future__ import annotations

import logging
import sys

import click

from firstright.errors import Forbidden, InputError

LOG_LEVELS = ("debug", "info", "warning", "error")
GRACEFUL_SHUTDOWN_S = 60
GIL_SWITCH_INTERVAL_S = 0.0005


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="Gateway YAML.")
@click.option("--upstream", help="Zero-config: every model to this OpenAI-compatible URL (…/v1).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535))
@click.option("--database", help="Database URL (default: env FIRSTRIGHT_DATABASE, firstright.db).")
@click.option("--log-level", type=click.Choice(LOG_LEVELS), default="info", show_default=True)
def serve(  # noqa: PLR0917 - click passes options by position
    config_path: str | None,
    upstream: str | None,
    host: str,
    port: int,
    database: str | None,
    log_level: str,
) -> None:
    """Serve the OpenAI-compatible gateway, the admin API and metrics."""
    if (config_path is None) == (upstream is None):
        raise click.UsageError("give exactly one of --config FILE or --upstream URL")
    if upstream is not None and not upstream.rstrip("/").endswith("/v1"):
        raise InputError(f"--upstream must be a base URL ending in /v1, got {upstream!r}")
    import uvicorn  # noqa: PLC0415

    from firstright.adapters.db import database_url_from, migrate, open_engine  # noqa: PLC0415
    from firstright.api.app import create_admin_app  # noqa: PLC0415
    from firstright.gateway.app import (  # noqa: PLC0415
        gateway_for_config,
        gateway_for_upstream,
        key_store_lookup,
    )
    from firstright.gateway.asgi import ServeApp  # noqa: PLC0415
    from firstright.gateway.metering import store_sink  # noqa: PLC0415
    from firstright.services.auth import authenticate, bearer_from_header  # noqa: PLC0415

    # The metering thread works in batches; a short switch interval hands the GIL back to the
    # event loop within a millisecond when a request arrives during a batch.
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    # Alembic narrates every start ("Context impl SQLiteImpl"); migrations speak up only on error.
    logging.getLogger("alembic").setLevel(logging.WARNING)
    engine = open_engine(database_url_from(database))
    migrate(engine)
    sink = store_sink(engine)
    log_stream = sys.stderr if log_level in ("debug", "info") else None
    if upstream is not None:
        gateway = gateway_for_upstream(upstream.rstrip("/"), sink, log_stream)
    else:
        assert config_path is not None
        gateway = gateway_for_config(config_path, sink, log_stream, key_store_lookup(engine))

    def metrics_guard(authorization: str | None) -> None:
        principal = authenticate(engine, bearer_from_header(authorization))
        if principal.role != "admin":
            raise Forbidden("metrics need an admin key")

    app = ServeApp(gateway, create_admin_app(engine), metrics_guard)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=log_level,
        server_header=False,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    uvicorn.Server(config).run()
