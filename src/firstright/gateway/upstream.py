"""Upstream HTTP/1.1 client: persistent keep-alive connections per backend, no per-request
session objects.

    UpstreamEndpoint.parse(url)   scheme, host, port and base path of an OpenAI-compatible base URL
    UpstreamPool(endpoint)        idle keep-alive connections to one endpoint
    pool.exchange(request, ...)   send one request, return the connection once the response
                                  head is in; read the body with ``read_full`` or ``read_chunk``
    pool.release(connection)      back to the idle list (or closed when not reusable)

The protocol feeds bytes to ``httptools``' response parser (the C parser uvicorn uses) and keeps
the body as a list of chunks, so a non-streamed response costs one future and one timer. Foreign
errors (``OSError``, parser errors, timeouts) become ``UpstreamError``/``UpstreamTimeout``.
A reused connection that the upstream closed before answering is retried once on a new one.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import cast
from urllib.parse import urlsplit

import httptools

from firstright.errors import InputError, UpstreamError
from firstright.gateway.errors import UpstreamTimeout
from firstright.gateway.limits import (
    CONNECT_TIMEOUT_S,
    STREAM_BUFFER_BYTES_MAX,
    UPSTREAM_IDLE_CONNECTIONS_MAX,
)


class UpstreamEndpoint:
    __slots__ = ("base_path", "host", "host_header", "port", "ssl_context", "url")

    def __init__(self, url: str, host: str, port: int, base_path: str, tls: bool) -> None:
        self.url = url
        self.host = host
        self.port = port
        self.base_path = base_path.rstrip("/")
        self.ssl_context = ssl.create_default_context() if tls else None
        default_port = 443 if tls else 80
        self.host_header = host if port == default_port else f"{host}:{port}"

    @classmethod
    def parse(cls, url: str) -> UpstreamEndpoint:
        """An endpoint from a base URL such as ``https://api.openai.com/v1``."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InputError(f"upstream URL must be http(s)://HOST[:PORT]/PATH, got {url!r}")
        if parts.query or parts.fragment:
            raise InputError(f"upstream URL must not have a query or fragment: {url!r}")
        tls = parts.scheme == "https"
        try:
            port = parts.port or (443 if tls else 80)
        except ValueError as exc:
            raise InputError(f"upstream URL has an invalid port: {url!r}") from exc
        return cls(url, parts.hostname, port, parts.path or "", tls)

    def request_prefix(self, path: str, authorization: str | None) -> bytes:
        """Request line and fixed headers of a JSON POST to ``base_path + path`` (without
        ``Content-Length`` and the blank line, which the caller adds)."""
        head = (
            f"POST {self.base_path}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
            "Content-Type: application/json\r\nAccept-Encoding: identity\r\n"
        )
        if authorization:
            head += f"Authorization: {authorization}\r\n"
        return head.encode("latin-1")

    def get_request(self, path: str, authorization: str | None) -> bytes:
        head = f"GET {self.base_path}{path} HTTP/1.1\r\nHost: {self.host_header}\r\n"
        if authorization:
            head += f"Authorization: {authorization}\r\n"
        return (head + "Accept-Encoding: identity\r\n\r\n").encode("latin-1")


class UpstreamConnection(asyncio.Protocol):
    """One keep-alive connection; holds the state of the response being read."""

    __slots__ = (
        "buffered",
        "chunks",
        "closed",
        "done",
        "error",
        "headers",
        "headers_done",
        "keep_alive",
        "loop",
        "parser",
        "paused",
        "pool",
        "received",
        "status",
        "transport",
        "waiter",
    )

    def __init__(self, pool: UpstreamPool) -> None:
        self.pool = pool
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.closed = False
        self.waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.chunks: list[bytes] = []
        self.buffered = 0
        self.headers_done = False
        self.done = False
        self.error: UpstreamError | None = None
        self.keep_alive = True
        self.received = False
        self.paused = False

    # -- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamError(f"invalid HTTP from upstream: {exc}", self.pool.name, True))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.done:
            retryable = not self.received
            self._fail(UpstreamError("upstream closed the connection", self.pool.name, retryable))

    def pause_writing(self) -> None:  # the upstream reads slowly; requests are small
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks ----------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > STREAM_BUFFER_BYTES_MAX and not self.paused and self.transport:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        self.done = True
        self._wake()

    # -- used by the gateway ----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self._reset()
        self.transport.write(data)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    async def read_head(self, timeout_s: float) -> None:
        while not self.headers_done and self.error is None:
            await self._wait(timeout_s, "waiting for the response head")
        if self.error is not None:
            raise self.error

    async def read_full(self, timeout_s: float) -> bytes:
        """The whole body (after ``read_head`` or instead of it)."""
        while not self.done and self.error is None:
            await self._wait(timeout_s, "reading the response")
        if self.error is not None:
            raise self.error
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    async def read_chunk(self, timeout_s: float) -> bytes | None:
        """The body bytes received since the last call; ``None`` at the end of the body."""
        while not self.chunks and not self.done and self.error is None:
            await self._wait(timeout_s, "waiting for the next chunk")
        if self.chunks:
            chunks = self.chunks
            data = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            self.chunks = []
            self.buffered = 0
            if self.paused and self.transport is not None:
                self.paused = False
                self.transport.resume_reading()
            return data
        if self.error is not None:
            raise self.error
        return None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def _wait(self, timeout_s: float, what: str) -> None:
        waiter = self.loop.create_future()
        self.waiter = waiter
        timer = self.loop.call_later(timeout_s, self._time_out, waiter, what, timeout_s)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def _time_out(self, waiter: asyncio.Future[None], what: str, timeout_s: float) -> None:
        if waiter.done():
            return
        message = f"upstream {self.pool.name} timed out after {timeout_s:g} s {what}"
        self.error = UpstreamTimeout(message, self.pool.name, True)
        self.close()
        waiter.set_result(None)

    def _fail(self, error: UpstreamError) -> None:
        if self.error is None:
            self.error = error
        self._wake()

    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class UpstreamPool:
    """Idle keep-alive connections to one endpoint (LIFO, so warm connections are reused)."""

    __slots__ = ("connect_timeout_s", "endpoint", "idle", "idle_max", "name")

    def __init__(
        self,
        endpoint: UpstreamEndpoint,
        name: str,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        idle_max: int = UPSTREAM_IDLE_CONNECTIONS_MAX,
    ) -> None:
        self.endpoint = endpoint
        self.name = name
        self.connect_timeout_s = connect_timeout_s
        self.idle_max = idle_max
        self.idle: list[UpstreamConnection] = []

    async def exchange(self, request: bytes, head_timeout_s: float) -> UpstreamConnection:
        """Send ``request``; return the connection once the response head is in."""
        idle = self.idle
        while idle:
            connection = idle.pop()
            if connection.closed:
                continue
            connection.send(request)
            try:
                await connection.read_head(head_timeout_s)
                return connection
            except UpstreamError as error:
                connection.close()
                if not (error.retryable and not connection.received):
                    raise
                # the upstream closed an idle connection as we reused it: try a new one
                break
        connection = await self._connect()
        connection.send(request)
        try:
            await connection.read_head(head_timeout_s)
        except UpstreamError:
            connection.close()
            raise
        return connection

    def release(self, connection: UpstreamConnection) -> None:
        if (
            connection.closed
            or not connection.done
            or not connection.keep_alive
            or connection.error is not None
            or len(self.idle) >= self.idle_max
        ):
            connection.close()
            return
        self.idle.append(connection)

    def discard(self, connection: UpstreamConnection) -> None:
        connection.close()

    def close(self) -> None:
        while self.idle:
            self.idle.pop().close()

    async def _connect(self) -> UpstreamConnection:
        endpoint = self.endpoint
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout_s):
                _, protocol = await loop.create_connection(
                    lambda: UpstreamConnection(self),
                    endpoint.host,
                    endpoint.port,
                    ssl=endpoint.ssl_context,
                    server_hostname=endpoint.host if endpoint.ssl_context else None,
                )
        except TimeoutError as exc:
            raise UpstreamTimeout(
                f"connecting to {self.name} ({endpoint.host}:{endpoint.port}) timed out",
                self.name,
                True,
            ) from exc
        except (OSError, ssl.SSLError) as exc:
            raise UpstreamError(
                f"cannot connect to {self.name} ({endpoint.host}:{endpoint.port}): {exc}",
                self.name,
                True,
            ) from exc
        return protocol
