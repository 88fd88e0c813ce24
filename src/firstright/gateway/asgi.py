"""The outer ASGI app of ``firstright serve``: ``/v1/*`` to the gateway's hot path, ``/metrics``
to Prometheus, everything else to the admin app; lifespan events start and stop the gateway and
are forwarded to the admin app (whose lifespan runs the first-refusal timer scheduler).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from prometheus_client.registry import Collector

from firstright.errors import FirstrightError, Forbidden
from firstright.gateway.app import Gateway
from firstright.gateway.errors import error_body, response_for
from firstright.gateway.handler import Message, Receive, Scope, Send

ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
MetricsGuard = Callable[[str | None], None]
"""Checks the Authorization header of a ``/metrics`` request from off the machine; raises
AuthError/Forbidden. Requests from loopback need no key (DESIGN.md §5)."""
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class _Exposed(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Any:
        return self.gateway.metrics.collect()


class ServeApp:
    def __init__(
        self, gateway: Gateway, admin: ASGIApp | None, metrics_guard: MetricsGuard | None = None
    ) -> None:
        self.gateway = gateway
        self.admin = admin
        self.metrics_guard = metrics_guard
        self.handler = gateway.handler
        self._collector = _Exposed(gateway)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            path: str = scope["path"]
            if path.startswith("/v1/"):
                await self.handler(scope, receive, send)
            elif path == "/metrics":
                await self._metrics(scope, send)
            elif self.admin is not None:
                await self.admin(scope, receive, send)
            else:
                body = error_body(404, f"unknown path {path}", "not_found")
                await send(
                    {
                        "type": "http.response.start",
                        "status": 404,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": body})
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        elif self.admin is not None:
            await self.admin(scope, receive, send)

    async def _metrics(self, scope: Scope, send: Send) -> None:
        client = scope.get("client")
        if client is None or client[0] not in LOOPBACK_HOSTS:
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value.decode("latin-1")
            try:
                if self.metrics_guard is None:
                    raise Forbidden("metrics are only served on loopback")
                await asyncio.to_thread(self.metrics_guard, authorization)
            except FirstrightError as error:
                status, payload = response_for(error)
                await send(
                    {
                        "type": "http.response.start",
                        "status": status,
                        "headers": [(b"content-type", b"application/json")],
                    }
                )
                await send({"type": "http.response.body", "body": payload})
                return
        body = generate_latest(REGISTRY)
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", CONTENT_TYPE_LATEST.encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        message = await receive()
        assert message["type"] == "lifespan.startup"
        admin = _AdminLifespan(self.admin) if self.admin is not None else None
        try:
            await self.gateway.start()
            REGISTRY.register(self._collector)
            if admin is not None:
                await admin.startup()
        except Exception as exc:
            await send({"type": "lifespan.startup.failed", "message": str(exc)})
            raise
        # Everything built at startup lives as long as the process: keep it out of the
        # collector's way so full collections stay short under load.
        gc.collect()
        gc.freeze()
        await send({"type": "lifespan.startup.complete"})
        message = await receive()
        assert message["type"] == "lifespan.shutdown"
        try:
            if admin is not None:
                await admin.shutdown()
        finally:
            with contextlib.suppress(KeyError):
                REGISTRY.unregister(self._collector)
            await self.gateway.stop()
        await send({"type": "lifespan.shutdown.complete"})


class _AdminLifespan:
    """Drives the admin app's lifespan protocol from ours."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def startup(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        self.task = asyncio.create_task(self._run(scope))
        await self.inbox.put({"type": "lifespan.startup"})
        reply = await self._reply()
        if reply["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"admin app failed to start: {reply.get('message', '')}")

    async def shutdown(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        reply = await self._reply()
        if self.task is not None:
            await self.task
        if reply["type"] != "lifespan.shutdown.complete":
            raise RuntimeError(f"admin app failed to stop: {reply.get('message', '')}")

    async def _run(self, scope: Scope) -> None:
        await self.app(scope, self.inbox.get, self._send)

    async def _send(self, message: Message) -> None:
        await self.outbox.put(message)

    async def _reply(self) -> Message:
        assert self.task is not None
        getter = asyncio.ensure_future(self.outbox.get())
        done, _ = await asyncio.wait({getter, self.task}, return_when=asyncio.FIRST_COMPLETED)
        if getter in done:
            return getter.result()
        getter.cancel()
        error = self.task.exception()
        raise RuntimeError(f"admin app lifespan ended: {error!r}")
