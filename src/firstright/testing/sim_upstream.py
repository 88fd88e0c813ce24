"""A simulated OpenAI-compatible provider for demos, tests and load tests (the "simulator").

It answers ``POST /v1/chat/completions`` (JSON and SSE streaming), ``POST /v1/embeddings`` and
``GET /v1/models`` with made-up but well-formed replies, and behaves like a provider under load:

- ``latency_ms`` before the first byte, then ``tokens_per_s`` pacing of streamed tokens;
- ``capacity``: requests in flight above it get ``429`` with ``Retry-After``;
- ``error_rate``: that share of requests fail with ``503`` (seeded, so a run replays);
- ``cut_stream_after``: streams are cut (connection closed) after that many events;
- list prices per million tokens, shown in ``/v1/models`` (``pricing``);
- ``GET /sim/stats``: requests seen, by status (tests use it to see where traffic went).

``SimSettings`` holds the knobs; ``create_sim_app(settings)`` returns the aiohttp application;
``firstright sim-upstream`` runs it.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import orjson
from aiohttp import web

SIM_CREATED = 1_700_000_000
WORDS = ("the", "gateway", "routes", "every", "request", "under", "its", "contracts")
EMBEDDING_DIMENSIONS = 8
SIM_BODY_BYTES_MAX = 8 * 1024 * 1024


@dataclass(slots=True)
class SimSettings:
    name: str = "sim"
    models: tuple[str, ...] = ()
    """Models served; empty serves any model."""
    latency_ms: float = 0.0
    tokens_per_s: float = 0.0
    """Stream pacing; 0 sends every token at once."""
    output_tokens: int = 16
    capacity: int = 0
    """Requests in flight above which the simulator answers 429; 0 is unlimited."""
    retry_after_s: int = 1
    error_rate: float = 0.0
    seed: int = 0
    cut_stream_after: int = 0
    """Close the connection after this many stream events; 0 never cuts."""
    input_usd_per_mtok: Decimal = Decimal("0")
    output_usd_per_mtok: Decimal = Decimal("0")


@dataclass(slots=True)
class SimState:
    in_flight: int = 0
    requests: int = 0
    by_status: Counter[int] = field(default_factory=Counter)


SIM_STATE = web.AppKey("sim_state", SimState)
"""Where a simulator app keeps its counters (for tests that inspect them)."""


def create_sim_app(settings: SimSettings) -> web.Application:
    app = web.Application(client_max_size=SIM_BODY_BYTES_MAX)
    state = SimState()
    rng = random.Random(settings.seed)
    app[SIM_STATE] = state

    def reply(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
        state.by_status[status] += 1
        return web.Response(
            status=status,
            body=orjson.dumps(payload),
            content_type="application/json",
            headers=headers,
        )

    def error(status: int, message: str, kind: str, code: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    async def admit(request: web.Request) -> tuple[dict[str, Any] | None, web.Response | None]:
        state.requests += 1
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return None, reply(400, error(400, "invalid JSON", "invalid_request_error", "bad"))
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return None, reply(
                400, error(400, "'model' is required", "invalid_request_error", "bad")
            )
        if settings.models and body["model"] not in settings.models:
            message = f"The model '{body['model']}' does not exist"
            return None, reply(404, error(404, message, "invalid_request_error", "model_not_found"))
        if settings.capacity and state.in_flight >= settings.capacity:
            return None, reply(
                429,
                error(429, f"{settings.name} is at capacity", "rate_limit_error", "rate_limited"),
                {"Retry-After": str(settings.retry_after_s)},
            )
        if settings.error_rate and rng.random() < settings.error_rate:
            return None, reply(
                503, error(503, f"{settings.name} failed", "server_error", "unavailable")
            )
        return body, None

    def prompt_tokens(body: dict[str, Any]) -> int:
        text = orjson.dumps(body.get("messages", body.get("input", "")))
        return max(1, len(text) // 4)

    def completion_tokens(body: dict[str, Any]) -> int:
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0:
            return min(limit, settings.output_tokens)
        return settings.output_tokens

    async def chat(request: web.Request) -> web.StreamResponse:
        body, refused = await admit(request)
        if refused is not None:
            return refused
        assert body is not None
        state.in_flight += 1
        try:
            if settings.latency_ms:
                await asyncio.sleep(settings.latency_ms / 1000)
            model = body["model"]
            inputs, outputs = prompt_tokens(body), completion_tokens(body)
            usage = {
                "prompt_tokens": inputs,
                "completion_tokens": outputs,
                "total_tokens": inputs + outputs,
            }
            words = [WORDS[i % len(WORDS)] for i in range(outputs)]
            if body.get("stream") is not True:
                return reply(
                    200,
                    {
                        "id": f"chatcmpl-{settings.name}-{state.requests}",
                        "object": "chat.completion",
                        "created": SIM_CREATED,
                        "model": model,
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": " ".join(words)},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": usage,
                    },
                    {"x-sim-name": settings.name},
                )
            return await stream(request, body, model, words, usage)
        finally:
            state.in_flight -= 1

    async def stream(
        request: web.Request,
        body: dict[str, Any],
        model: str,
        words: list[str],
        usage: dict[str, int],
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            status=200, headers={"Content-Type": "text/event-stream", "x-sim-name": settings.name}
        )
        await response.prepare(request)
        state.by_status[200] += 1
        chunk_id = f"chatcmpl-{settings.name}-{state.requests}"

        def event(choices: list[Any], extra: dict[str, Any] | None = None) -> bytes:
            data: dict[str, Any] = {
                "id": chunk_id,
                "object": "chat.completion.chunk",
                "created": SIM_CREATED,
                "model": model,
                "choices": choices,
            }
            if extra:
                data.update(extra)
            return b"data: " + orjson.dumps(data) + b"\n\n"

        events = [event([{"index": 0, "delta": {"role": "assistant", "content": ""}}])]
        events += [
            event([{"index": 0, "delta": {"content": (" " if i else "") + word}}])
            for i, word in enumerate(words)
        ]
        events.append(event([{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            events.append(event([], {"usage": usage}))
        delay_s = 1 / settings.tokens_per_s if settings.tokens_per_s else 0.0
        for index, data in enumerate(events):
            if settings.cut_stream_after and index >= settings.cut_stream_after:
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(data)
            if delay_s:
                await asyncio.sleep(delay_s)
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response

    async def embeddings(request: web.Request) -> web.Response:
        body, refused = await admit(request)
        if refused is not None:
            return refused
        assert body is not None
        inputs = body.get("input")
        items = inputs if isinstance(inputs, list) else [inputs]
        tokens = prompt_tokens(body)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": [
                    round((i + 1) * (d + 1) / 100, 4) for d in range(EMBEDDING_DIMENSIONS)
                ],
            }
            for i in range(len(items))
        ]
        return reply(
            200,
            {
                "object": "list",
                "data": data,
                "model": body["model"],
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            },
        )

    async def models(request: web.Request) -> web.Response:
        names = settings.models or ("sim-model",)
        pricing = {
            "input_usd_per_mtok": str(settings.input_usd_per_mtok),
            "output_usd_per_mtok": str(settings.output_usd_per_mtok),
        }
        data = [
            {
                "id": name,
                "object": "model",
                "created": SIM_CREATED,
                "owned_by": settings.name,
                "pricing": pricing,
            }
            for name in names
        ]
        return reply(200, {"object": "list", "data": data})

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "name": settings.name,
                "requests": state.requests,
                "in_flight": state.in_flight,
                "by_status": {str(k): v for k, v in sorted(state.by_status.items())},
            }
        )

    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_post("/v1/embeddings", embeddings)
    app.router.add_get("/v1/models", models)
    app.router.add_get("/sim/stats", stats)
    return app
