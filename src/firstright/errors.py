"""The error tree of firstright. Every expected failure raises one of these.

    FirstrightError                  base; carries ``exit_code`` and an HTTP ``status``
    ├── InputError                   the input is invalid (exit 1, HTTP 400/422)
    │   ├── SourceError              a file cannot be read or parsed (hostile, too big, bad YAML)
    │   ├── ValidationFailed         one or more located problems (``problems: list[Problem]``)
    │   └── ConflictError            same idempotency key or id with a different body (HTTP 409)
    ├── NotFound                     an id that does not exist (exit 1, HTTP 404)
    ├── RuleRefusal                  a contract rule said no (exit 1, HTTP 403/409/503 by kind)
    │   └── NoEligibleOffer          nothing may serve this demand; names the clauses
    ├── AuthError                    missing or unknown API key (HTTP 401)
    │   └── Forbidden                the key's role or party may not do this (HTTP 403)
    └── RuntimeFailure               storage, network, upstream (exit 3, HTTP 502/503)
        ├── StorageError
        └── UpstreamError            ``retryable``, ``provider``

Adapters translate foreign exceptions into these (``raise StorageError(...) from exc``); only
``cli/exit_codes.py`` maps them to exit codes; HTTP mapping lives in ``api/errors.py`` (the
admin API, ``/api/...``) and ``gateway/errors.py`` (the ``/v1`` gateway, OpenAI-style errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    """One located problem in an input file: ``FILE:LINE:COL: message``."""

    file: str
    message: str
    line: int | None = None
    column: int | None = None
    path: tuple[str | int, ...] = field(default=())

    def render(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}:{self.column if self.column is not None else 1}"
        dotted = ".".join(str(p) for p in self.path)
        prefix = f"{dotted}: " if dotted and dotted not in self.message else ""
        return f"{where}: {prefix}{self.message}"


class FirstrightError(Exception):
    """Base of every error firstright raises on purpose."""

    exit_code = 3
    status = 500
    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InputError(FirstrightError):
    exit_code = 1
    status = 400
    code = "invalid_request_error"


class SourceError(InputError):
    """A file that cannot be read or parsed safely."""

    def __init__(self, file: str, message: str, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.problem = Problem(file=file, message=message, line=line, column=column)


class ValidationFailed(InputError):
    status = 422

    def __init__(self, problems: list[Problem]) -> None:
        assert problems, "ValidationFailed needs at least one problem"
        super().__init__("; ".join(p.render() for p in problems[:5]))
        self.problems = problems


class ConflictError(InputError):
    status = 409
    code = "conflict"


class NotFound(FirstrightError):
    exit_code = 1
    status = 404
    code = "not_found"


class RuleRefusal(FirstrightError):
    """A contract rule refused the action; ``clause_ids`` name the clauses that decided."""

    exit_code = 1
    status = 403
    code = "contract_refusal"

    def __init__(self, message: str, clause_ids: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.clause_ids = clause_ids


class NoEligibleOffer(RuleRefusal):
    status = 503
    code = "no_eligible_provider"


class AuthError(FirstrightError):
    exit_code = 2
    status = 401
    code = "invalid_api_key"


class Forbidden(AuthError):
    status = 403
    code = "permission_denied"


class RuntimeFailure(FirstrightError):
    exit_code = 3
    status = 503
    code = "runtime_failure"


class StorageError(RuntimeFailure):
    code = "storage_error"


class UpstreamError(RuntimeFailure):
    status = 502
    code = "upstream_error"

    def __init__(self, message: str, provider: str = "", retryable: bool = False) -> None:
        super().__init__(message)
        self.provider = provider
        self.retryable = retryable
