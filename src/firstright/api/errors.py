"""The one place that maps firstright errors to admin API responses (``/api/...``).

    {"error": {"type": "not_found", "message": "...", "status": 404, ...details}}

Status codes come from the error tree (``firstright.errors``): InputError 400, ValidationFailed
and request-shape errors 422, ConflictError 409, NotFound 404, AuthError 401 (with
``WWW-Authenticate: Bearer``), Forbidden 403, RuleRefusal 403, RuntimeFailure 503. Details carry
the error's data: located ``problems``, ``clause_ids``.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from firstright.errors import (
    AuthError,
    FirstrightError,
    Forbidden,
    InputError,
    RuleRefusal,
    ValidationFailed,
)

log = logging.getLogger("firstright.api")


class BodyTooLarge(InputError):
    """A request body over ``ADMIN_BODY_BYTES_MAX``."""

    status = 413
    code = "request_too_large"


def error_body(error: FirstrightError) -> dict[str, Any]:
    detail: dict[str, Any] = {"type": error.code, "message": error.message, "status": error.status}
    if isinstance(error, ValidationFailed):
        detail["problems"] = [
            {"file": p.file, "line": p.line, "column": p.column, "message": p.render()}
            for p in error.problems
        ]
    if isinstance(error, RuleRefusal) and error.clause_ids:
        detail["clause_ids"] = list(error.clause_ids)
    return {"error": detail}


def error_response(error: FirstrightError) -> JSONResponse:
    headers = (
        {"WWW-Authenticate": "Bearer"}
        if isinstance(error, AuthError) and not isinstance(error, Forbidden)
        else None
    )
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


async def _firstright_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, FirstrightError)
    if exc.status >= 500:
        log.warning("%s %s -> %s: %s", request.method, request.url.path, exc.status, exc.message)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = []
    for item in exc.errors():
        path = ".".join(str(part) for part in item.get("loc", ()))
        problems.append({"path": path, "message": f"{path}: {item.get('msg', 'invalid')}"})
    message = "; ".join(p["message"] for p in problems[:5]) or "invalid request"
    body = {
        "error": {
            "type": "invalid_request_error",
            "message": message,
            "status": 422,
            "problems": problems,
        }
    }
    return JSONResponse(body, status_code=422)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    body = {"error": {"type": kind, "message": str(exc.detail), "status": exc.status_code}}
    return JSONResponse(body, status_code=exc.status_code, headers=exc.headers)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(FirstrightError, _firstright_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
