"""FastAPI dependencies shared by the admin routers: the engine and the calling principal."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from firstright.errors import AuthError
from firstright.services.auth import Principal, authenticate, require_role

bearer_scheme = HTTPBearer(auto_error=False, description="An API key from `firstright keys create`")


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller of this request: 401 when the key is missing, malformed, unknown or revoked."""
    if credentials is None:
        raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
    return authenticate(get_engine(request), credentials.credentials)


def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    require_role(principal, "admin")
    return principal


EngineDep = Annotated[Engine, Depends(get_engine)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
