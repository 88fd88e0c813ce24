"""The one place that maps errors to gateway HTTP responses, in OpenAI's error JSON.

    {"error": {"message": "...", "type": "invalid_request_error", "param": null, "code": "..."}}

Gateway-local errors (all in the project's tree, see ``firstright.errors``):

    InputError
    ├── BadRequest             malformed JSON, wrong field types (400)
    ├── PayloadTooLarge        body over ``request_body_bytes_max`` (413)
    └── ModelNotFound          no route for the requested model (404)
    RuntimeFailure
    ├── Overloaded             queue depth reached (503)
    └── UpstreamError          from the upstream client (502/504), ``retryable``
        └── UpstreamStatus     the upstream answered an error status: passed through as is
"""

from __future__ import annotations

import orjson

from firstright.errors import (
    AuthError,
    FirstrightError,
    InputError,
    NoEligibleOffer,
    RuleRefusal,
    RuntimeFailure,
    UpstreamError,
)


class BadRequest(InputError):
    status = 400
    code = "invalid_request"

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


class PayloadTooLarge(InputError):
    status = 413
    code = "request_too_large"


class ModelNotFound(InputError):
    status = 404
    code = "model_not_found"


class Overloaded(RuntimeFailure):
    status = 503
    code = "overloaded"


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamStatus(UpstreamError):
    """The upstream answered with an error status; its body is passed to the client as is."""

    def __init__(self, status: int, body: bytes, provider: str, retry_after_s: float | None):
        super().__init__(f"upstream {provider} answered HTTP {status}", provider, status >= 500)
        self.upstream_status = status
        self.body = body
        self.retry_after_s = retry_after_s


_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


def error_type(status: int) -> str:
    return _TYPE_BY_STATUS.get(status, "server_error" if status >= 500 else "invalid_request_error")


def error_body(
    status: int, message: str, code: str | None = None, param: str | None = None
) -> bytes:
    """OpenAI's error JSON for ``status``."""
    return orjson.dumps(
        {"error": {"message": message, "type": error_type(status), "param": param, "code": code}}
    )


def response_for(error: FirstrightError) -> tuple[int, bytes]:
    """(HTTP status, OpenAI error JSON) for any of our errors."""
    if isinstance(error, UpstreamStatus):
        body = error.body if _looks_like_error_json(error.body) else None
        status = error.upstream_status
        if body is None:
            body = error_body(status, error.message, "upstream_error")
        return status, body
    param = error.param if isinstance(error, BadRequest) else None
    message = error.message
    if isinstance(error, NoEligibleOffer | RuleRefusal) and error.clause_ids:
        message = f"{message} (clauses: {', '.join(error.clause_ids)})"
    status = error.status
    if isinstance(error, AuthError):
        status = error.status
    return status, error_body(status, message, error.code, param)


def sse_error_event(status: int, message: str, code: str) -> bytes:
    """The SSE event that ends a stream cut after its first byte (never a silent truncation)."""
    return b"data: " + error_body(status, message, code) + b"\n\n"


def _looks_like_error_json(body: bytes) -> bool:
    if not body or len(body) > 64 * 1024:
        return False
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        return False
    return isinstance(data, dict) and isinstance(data.get("error"), dict)


__all__ = [
    "BadRequest",
    "ModelNotFound",
    "Overloaded",
    "PayloadTooLarge",
    "UpstreamError",
    "UpstreamStatus",
    "UpstreamTimeout",
    "error_body",
    "error_type",
    "response_for",
    "sse_error_event",
]
