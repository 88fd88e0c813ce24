"""The hot path: ``POST /v1/chat/completions``, ``POST /v1/embeddings``, ``GET /v1/models``.

Per request the handler parses only what routing needs (``model``, ``stream``, ``max_tokens``)
and forwards the client's original bytes; on streams without ``stream_options.include_usage``
it splices that option into the bytes (and hides the extra usage event from the client). One
retry loop walks the route (``Route.pick``); fallback to the next backend happens only before
the first byte reaches the client. After it, an upstream cut ends the stream with an SSE error
event and the usage record is marked partial. Every request ends in exactly one ``Outcome``
handed to the meter.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from firstright.errors import AuthError, FirstrightError, NoEligibleOffer, UpstreamError
from firstright.gateway.backends import Backend
from firstright.gateway.config import GatewayLimits
from firstright.gateway.errors import (
    BadRequest,
    ModelNotFound,
    Overloaded,
    PayloadTooLarge,
    UpstreamStatus,
    error_body,
    response_for,
    sse_error_event,
)
from firstright.gateway.limits import DEADLINE_MS_MAX, RETRY_AFTER_S_MAX
from firstright.gateway.metering import Meter, Outcome
from firstright.gateway.routing import Profile, Route, RouteTable
from firstright.gateway.upstream import UpstreamConnection

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

CHAT = "chat"
EMBEDDINGS = "embeddings"
JSON_TYPE = b"application/json"
SSE_TYPE = b"text/event-stream"
INCLUDE_USAGE = b'"stream_options":{"include_usage":true},'
_USAGE_OBJECT = re.compile(rb'"usage"\s*:\s*\{')
_PROMPT_TOKENS = re.compile(rb'"prompt_tokens"\s*:\s*(\d+)')
_COMPLETION_TOKENS = re.compile(rb'"completion_tokens"\s*:\s*(\d+)')
USAGE_TAIL_BYTES = 8192
USAGE_WINDOW_BYTES = 1024
_CLIENT_ERROR = "client_error"
log = logging.getLogger("firstright.gateway")


StoreLookup = Callable[[str], tuple[str, Profile] | None]
"""bearer -> (tenant id, profile) from the key store (tenant keys made by ``firstright keys
create --role tenant``), or ``None`` for an unknown key. Blocking; run in a thread."""
STORE_CACHE_S = 60.0
STORE_CACHE_ENTRIES_MAX = 10_000


class Tenants:
    """API keys of tenants, by the SHA-256 of the key (keys are never held in clear): the
    configuration's keys first, then the key store (answers cached for ``STORE_CACHE_S``)."""

    def __init__(
        self, by_hash: dict[str, tuple[str, Profile]], store: StoreLookup | None = None
    ) -> None:
        self.by_hash = by_hash
        self.store = store
        self._cached: dict[str, tuple[float, tuple[str, Profile] | None]] = {}

    async def lookup(self, authorization: bytes | None) -> tuple[str, Profile]:
        if not authorization:
            raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
        scheme, _, key = authorization.partition(b" ")
        key = key.strip()
        if scheme.lower() != b"bearer" or not key:
            raise AuthError("the Authorization header must be 'Bearer <key>'")
        digest = hashlib.sha256(key).hexdigest()
        found = self.by_hash.get(digest)
        if found is not None:
            return found
        if self.store is not None:
            now = time.monotonic()
            cached = self._cached.get(digest)
            if cached is not None and now - cached[0] < STORE_CACHE_S:
                found = cached[1]
            else:
                found = await asyncio.to_thread(self.store, key.decode("latin-1"))
                if len(self._cached) >= STORE_CACHE_ENTRIES_MAX:
                    self._cached.clear()
                self._cached[digest] = (now, found)
            if found is not None:
                return found
        raise AuthError("invalid API key")


class GatewayHandler:
    """Serves ``/v1``; holds the route table, the tenants and the meter."""

    def __init__(
        self,
        table: RouteTable,
        tenants: Tenants | None,
        default_profile: Profile,
        limits: GatewayLimits,
        meter: Meter,
    ) -> None:
        self.table = table
        self.tenants = tenants
        """``None`` in upstream mode: any key is accepted, requests use ``default_profile``."""
        self.default_profile = default_profile
        self.limits = limits
        self.meter = meter
        self.in_flight = 0
        self._sequence = 0
        self._id_prefix = f"gw-{os.urandom(6).hex()}-"

    # -- dispatch --------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        if path == "/v1/chat/completions":
            if method == "POST":
                await self.model_request(scope, receive, send, CHAT)
                return
        elif path == "/v1/embeddings":
            if method == "POST":
                await self.model_request(scope, receive, send, EMBEDDINGS)
                return
        elif path == "/v1/models":
            if method == "GET":
                await self.list_models(scope, send)
                return
        else:
            await _send_json(send, 404, error_body(404, f"unknown path {path}", "not_found"))
            return
        await _send_json(
            send,
            405,
            error_body(405, f"method {method} not allowed on {path}", "method_not_allowed"),
        )

    # -- model requests --------------------------------------------------------------------

    async def model_request(self, scope: Scope, receive: Receive, send: Send, kind: str) -> None:
        started = time.perf_counter()
        wall = time.time()
        self._sequence += 1
        record_id = self._id_prefix + str(self._sequence)
        tenant: str | None = None
        profile = self.default_profile
        model: str | None = None
        stream = False
        status = 500
        backend: Backend | None = None
        input_tokens = output_tokens = attempts = 0
        upstream_ms = 0.0
        partial = False
        refusals: list[str] = []
        route: Route | None = None
        error_code: str | None = None
        self.in_flight += 1
        try:
            authorization: bytes | None = None
            deadline_header: bytes | None = None
            content_length = -1
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value
                elif name == b"x-firstright-deadline-ms":
                    deadline_header = value
                elif name == b"content-length":
                    content_length = int(value) if value.isdigit() else -1
            try:
                if self.in_flight > self.limits.queue_depth_max:
                    raise Overloaded(
                        f"the gateway holds {self.limits.queue_depth_max} requests already"
                    )
                if self.tenants is not None:
                    tenant, profile = await self.tenants.lookup(authorization)
                body = await self._read_body(receive, content_length)
                request = _parse(body)
                model = request.get("model")
                if not isinstance(model, str) or not model:
                    model = None
                    raise BadRequest("'model' must be a non-empty string", "model")
                stream = kind == CHAT and request.get("stream") is True
                self._check_max_tokens(request)
                deadline_ms = _deadline(deadline_header, profile.default_deadline_ms)
                hide_usage = False
                if stream:
                    body, hide_usage = _with_usage(body, request)
                route = self.table.get(profile, model)
                if route is None:
                    raise ModelNotFound(f"the model '{model}' does not exist or is not served here")
                # ---- the retry loop: fallback only before the first byte reaches the client
                index = 0
                last_error: UpstreamError | None = None
                while attempts < self.limits.attempts_max:
                    now_s = time.monotonic()
                    candidate, index = route.pick(index, now_s, deadline_ms, refusals)
                    if candidate is None:
                        break
                    attempts += 1
                    load = candidate.load
                    load.in_flight += 1
                    try:
                        sent_at = time.perf_counter()
                        connection = await candidate.pool.exchange(
                            _request_bytes(candidate, kind, body, authorization),
                            candidate.first_byte_timeout_s,
                        )
                        upstream_status = connection.status
                        if upstream_status == 429 or upstream_status >= 500:
                            last_error = await self._upstream_failed(
                                candidate, connection, now_s, refusals
                            )
                            continue
                        if stream and upstream_status == 200:
                            backend = candidate
                            status = 200
                            partial, input_tokens, output_tokens = await self._relay_stream(
                                candidate, connection, send, hide_usage
                            )
                        else:
                            payload = await connection.read_full(candidate.read_idle_timeout_s)
                            candidate.pool.release(connection)
                            backend = candidate
                            status = upstream_status
                            if status == 200:
                                input_tokens, output_tokens = _usage_of(payload)
                            else:
                                error_code = _CLIENT_ERROR
                            await _send_upstream_json(send, status, connection, payload, candidate)
                        upstream_ms = (time.perf_counter() - sent_at) * 1000
                        candidate.breaker.succeeded()
                        candidate.observe_latency(upstream_ms)
                        if input_tokens or output_tokens:
                            load.spend_tokens(input_tokens + output_tokens, now_s)
                        return
                    except UpstreamError as error:
                        assert backend is None, "stream errors are handled by _relay_stream"
                        candidate.breaker.failed(now_s)
                        refusals.append(f"{candidate.id}:{_reason_of(error)}")
                        last_error = error
                    finally:
                        load.in_flight -= 1
                if last_error is not None:
                    raise last_error
                raise self._no_backend(route, model, profile)
            except FirstrightError as error:
                if backend is not None:
                    raise
                status, payload = response_for(error)
                error_code = error.code
                await _send_json(send, status, payload, error)
            except Exception:
                if backend is not None:
                    raise
                log.exception("request %s failed", record_id)
                status, error_code = 500, "internal_error"
                payload = error_body(500, "internal error in the gateway", error_code)
                await _send_json(send, status, payload)
        finally:
            self.in_flight -= 1
            latency_ms = (time.perf_counter() - started) * 1000
            self.meter.record(
                Outcome(
                    record_id,
                    wall,
                    kind,
                    tenant,
                    profile.party,
                    profile.channel,
                    profile.product,
                    backend,
                    model,
                    stream,
                    status,
                    input_tokens,
                    output_tokens,
                    latency_ms,
                    upstream_ms,
                    partial,
                    attempts,
                    backend is not None
                    and route is not None
                    and route.holder_count > 0
                    and not route.is_holder(backend),
                    refusals,
                    route.clause_ids if route is not None else (),
                    error_code,
                )
            )

    async def _read_body(self, receive: Receive, content_length: int) -> bytes:
        body_max = self.limits.request_body_bytes_max
        if content_length > body_max:
            raise PayloadTooLarge(f"request body over {body_max} bytes")
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body"):
            return body
        parts = [body]
        size = len(body)
        while message.get("more_body"):
            message = await receive()
            if message["type"] == "http.disconnect":
                raise BadRequest("the client went away before sending the whole body")
            part = message.get("body", b"")
            size += len(part)
            if size > body_max:
                raise PayloadTooLarge(f"request body over {body_max} bytes")
            parts.append(part)
        return b"".join(parts)

    def _check_max_tokens(self, request: dict[str, Any]) -> None:
        for field in ("max_tokens", "max_completion_tokens"):
            value = request.get(field)
            if value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise BadRequest(f"'{field}' must be a non-negative integer", field)
            if value > self.limits.max_tokens_max:
                raise BadRequest(
                    f"'{field}' is {value}, over the limit of {self.limits.max_tokens_max}", field
                )

    async def _upstream_failed(
        self,
        backend: Backend,
        connection: UpstreamConnection,
        now_s: float,
        refusals: list[str],
    ) -> UpstreamStatus:
        """A 429 or 5xx before anything reached the client: note it and let the loop go on."""
        status = connection.status
        retry_after = _retry_after_s(connection.header(b"retry-after"))
        try:
            payload = await connection.read_full(backend.read_idle_timeout_s)
            backend.pool.release(connection)
        except UpstreamError:
            payload = b""
        if status == 429:
            backend.breaker.released()
            backend.breaker.back_off(now_s + (retry_after if retry_after is not None else 1.0))
        else:
            backend.breaker.failed(now_s)
        refusals.append(f"{backend.id}:upstream_{status}")
        return UpstreamStatus(status, payload, backend.id, retry_after)

    async def _relay_stream(
        self,
        backend: Backend,
        connection: UpstreamConnection,
        send: Send,
        hide_usage: bool,
    ) -> tuple[bool, int, int]:
        """Relay SSE bytes as they come. Returns (partial, input_tokens, output_tokens)."""
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", connection.header(b"content-type") or SSE_TYPE),
                    (b"cache-control", b"no-cache"),
                    (b"x-firstright-backend", backend.id_header),
                ],
            }
        )
        tail = b""
        pending = b""
        partial = False
        timeout_s = backend.read_idle_timeout_s
        try:
            while True:
                chunk = await connection.read_chunk(timeout_s)
                if chunk is None:
                    break
                tail = (tail + chunk)[-USAGE_TAIL_BYTES:]
                if hide_usage:
                    chunk, pending = _drop_usage_events(pending + chunk)
                    if not chunk:
                        continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            backend.pool.release(connection)
            if pending:
                await send({"type": "http.response.body", "body": pending, "more_body": True})
        except UpstreamError as error:
            partial = True
            backend.pool.discard(connection)
            backend.breaker.failed(time.monotonic())
            event = sse_error_event(
                502, f"the upstream stream was cut: {error.message}", error.code
            )
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        input_tokens, output_tokens = _usage_of(tail)
        return partial, input_tokens, output_tokens

    def _no_backend(self, route: Route, model: str, profile: Profile) -> NoEligibleOffer:
        clauses = route.clause_ids
        where = f"model '{model}'" + (f" on channel '{profile.channel}'" if profile.channel else "")
        if not route.order:
            detail = route.describe_exclusions() or "no backend serves it"
            return NoEligibleOffer(f"no eligible backend for {where}: {detail}", clauses)
        return NoEligibleOffer(
            f"no eligible backend can take {where} now (all refused or failed)", clauses
        )

    # -- models ----------------------------------------------------------------------------

    async def list_models(self, scope: Scope, send: Send) -> None:
        try:
            profile = self.default_profile
            authorization = None
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = value
            if self.tenants is not None:
                _, profile = await self.tenants.lookup(authorization)
            if self.tenants is None and self.table.wildcard:  # upstream mode: its own list
                await self._proxy_models(send, authorization)
                return
            routes = self.table.models_for(profile)
            data = [
                {"id": r.model, "object": "model", "created": 0, "owned_by": r.order[0].vendor}
                for r in sorted(routes, key=lambda r: r.model)
            ]
            await _send_json(send, 200, orjson.dumps({"object": "list", "data": data}))
        except FirstrightError as error:
            status, payload = response_for(error)
            await _send_json(send, status, payload, error)

    async def _proxy_models(self, send: Send, authorization: bytes | None) -> None:
        backend = self.table.backends[0]
        request = backend.models_request
        if backend.forward_client_auth and authorization:
            request = request[:-2] + b"Authorization: " + authorization + b"\r\n\r\n"
        connection = await backend.pool.exchange(request, backend.first_byte_timeout_s)
        payload = await connection.read_full(backend.read_idle_timeout_s)
        backend.pool.release(connection)
        await _send_upstream_json(send, connection.status, connection, payload, backend)


# -- helpers (module level: no attribute lookups on the hot path) -----------------------------


def _parse(body: bytes) -> dict[str, Any]:
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from exc
    if not isinstance(request, dict):
        raise BadRequest("the request body must be a JSON object")
    return request


def _deadline(header: bytes | None, default_ms: int | None) -> float | None:
    if header is None:
        return default_ms
    text = header.strip()
    if not text.isdigit() or not 0 < int(text) <= DEADLINE_MS_MAX:
        raise BadRequest(
            f"x-firstright-deadline-ms must be an integer from 1 to {DEADLINE_MS_MAX}",
            "x-firstright-deadline-ms",
        )
    return int(text)


def _with_usage(body: bytes, request: dict[str, Any]) -> tuple[bytes, bool]:
    """The body with ``stream_options.include_usage`` true, and whether the client did not
    ask for usage itself (then the usage event is hidden from it)."""
    if "stream_options" not in request:
        brace = body.index(b"{")
        option = INCLUDE_USAGE if request else INCLUDE_USAGE[:-1]  # no comma before "}"
        return body[: brace + 1] + option + body[brace + 1 :], True
    options = request["stream_options"]
    if isinstance(options, dict) and options.get("include_usage") is True:
        return body, False
    if options is not None and not isinstance(options, dict):
        raise BadRequest("'stream_options' must be an object", "stream_options")
    request["stream_options"] = {**(options or {}), "include_usage": True}
    return orjson.dumps(request), True


def _request_bytes(backend: Backend, kind: str, body: bytes, authorization: bytes | None) -> bytes:
    prefix = backend.chat_prefix if kind == CHAT else backend.embeddings_prefix
    if backend.forward_client_auth and authorization:
        prefix += b"Authorization: " + authorization + b"\r\n"
    return b"%sContent-Length: %d\r\n\r\n%s" % (prefix, len(body), body)


def _usage_of(payload: bytes) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) of the last non-null ``usage`` object in ``payload``."""
    end = len(payload)
    while True:
        at = payload.rfind(b'"usage"', 0, end)
        if at < 0:
            return 0, 0
        found = _USAGE_OBJECT.match(payload, at)
        if found is not None:
            break
        end = at
    section = payload[found.end() : found.end() + USAGE_WINDOW_BYTES]
    prompt = _PROMPT_TOKENS.search(section)
    completion = _COMPLETION_TOKENS.search(section)
    return (
        int(prompt.group(1)) if prompt else 0,
        int(completion.group(1)) if completion else 0,
    )


def _drop_usage_events(data: bytes) -> tuple[bytes, bytes]:
    """Split complete SSE events from the rest; drop usage-only events (no choices). Events end
    with a blank line (``\n\n``, or ``\r\n\r\n`` from some servers)."""
    crlf = data.rfind(b"\r\n\r\n")
    lf = data.rfind(b"\n\n")
    if crlf >= 0 and crlf + 2 >= lf:
        separator, cut = b"\r\n\r\n", crlf + 4
    elif lf >= 0:
        separator, cut = b"\n\n", lf + 2
    else:
        return b"", data
    complete, rest = data[:cut], data[cut:]
    if b'"usage"' not in complete:
        return complete, rest
    kept = []
    for event in complete.split(separator):
        if not event:
            continue
        if b'"usage"' in event and _is_usage_only(event):
            continue
        kept.append(event + separator)
    return b"".join(kept), rest


def _is_usage_only(event: bytes) -> bool:
    payload = event.partition(b"data:")[2].strip()
    try:
        data = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and not data.get("choices") and bool(data.get("usage"))


def _retry_after_s(value: bytes | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_S_MAX)


def _reason_of(error: UpstreamError) -> str:
    return error.code


async def _send_json(
    send: Send, status: int, payload: bytes, error: FirstrightError | None = None
) -> None:
    headers = [(b"content-type", JSON_TYPE), (b"content-length", b"%d" % len(payload))]
    if isinstance(error, UpstreamStatus) and error.retry_after_s is not None:
        headers.append((b"retry-after", b"%d" % round(error.retry_after_s)))
    elif isinstance(error, AuthError) and error.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _send_upstream_json(
    send: Send, status: int, connection: UpstreamConnection, payload: bytes, backend: Backend
) -> None:
    headers = [
        (b"content-type", connection.header(b"content-type") or JSON_TYPE),
        (b"content-length", b"%d" % len(payload)),
        (b"x-firstright-backend", backend.id_header),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})
