"""ASGI middleware refusing request bodies over a byte limit (413), declared or streamed."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from firstright.api.errors import BodyTooLarge, error_body


class BodyLimit:
    def __init__(self, app: ASGIApp, *, body_bytes_max: int) -> None:
        assert body_bytes_max > 0
        self.app = app
        self.body_bytes_max = body_bytes_max

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.body_bytes_max or declared < 0:
                    await self._refuse(send)
                    return
        seen = 0
        limit = self.body_bytes_max

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise BodyTooLarge(f"request body over {limit} bytes")
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send) -> None:
        error = BodyTooLarge(f"request body over {self.body_bytes_max} bytes")
        payload = orjson.dumps(error_body(error))
        await send(
            {
                "type": "http.response.start",
                "status": error.status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(payload)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})
