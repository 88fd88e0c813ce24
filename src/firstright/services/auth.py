"""API keys: create, authenticate, revoke; and the checks every HTTP surface makes.

A key is shown once as ``frk_<key_id>_<secret>``; the store keeps its SHA-256 only. Each key maps
to a party and a role:

    admin    may read everything and act as any party
    party    acts only as its own party (a lab, a cloud)
    tenant   a customer of a party's channel/product (the gateway's callers)
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, get_args

from sqlalchemy.engine import Engine

from firstright.adapters.keys_store import KeyRecord, KeyStore
from firstright.errors import AuthError, Forbidden, InputError

Role = Literal["admin", "party", "tenant"]
ROLES: tuple[str, ...] = get_args(Role)
KEY_PREFIX = "frk_"
BEARER_CHARS_MAX = 256
_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,127}$")
_BEARER = re.compile(r"^frk_([0-9a-f]{16})_([A-Za-z0-9_-]{20,128})$")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: the party a key belongs to and what it may do."""

    party: str
    role: str
    key_id: str
    channel: str | None = None
    product: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True, slots=True)
class NewKey:
    """A freshly created key; ``secret`` is the bearer token, shown once and never stored."""

    record: KeyRecord
    secret: str


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _check_name(field: str, value: str | None) -> None:
    if value is not None and not _NAME.match(value):
        raise InputError(
            f"{field}: {value!r} is not a valid name (lower-case letters, digits, '_', '-', "
            "'.', at most 128 characters)"
        )


def create_key(
    engine: Engine,
    *,
    party: str,
    role: str,
    created_at: datetime,
    channel: str | None = None,
    product: str | None = None,
) -> NewKey:
    """Create and store a key for ``party`` with ``role``; return its secret (shown once)."""
    if role not in ROLES:
        raise InputError(f"role: {role!r} is not one of {', '.join(ROLES)}")
    _check_name("party", party)
    _check_name("channel", channel)
    _check_name("product", product)
    if created_at.tzinfo is None:
        raise InputError("created_at must carry a time zone")
    key_id = secrets.token_hex(8)
    secret = f"{KEY_PREFIX}{key_id}_{secrets.token_urlsafe(32)}"
    record = KeyRecord(
        key_id=key_id,
        secret_sha256=hash_secret(secret),
        party=party,
        role=role,
        channel=channel,
        product=product,
        created_at=created_at,
        revoked_at=None,
    )
    KeyStore(engine).insert(record)
    return NewKey(record=record, secret=secret)


def bearer_from_header(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header; AuthError when absent or malformed."""
    if not authorization:
        raise AuthError("missing API key: send 'Authorization: Bearer <key>'")
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthError("malformed Authorization header: expected 'Bearer <key>'")
    return token.strip()


def authenticate(engine: Engine, bearer: str) -> Principal:
    """The principal of a bearer token; AuthError for unknown, malformed or revoked keys."""
    if len(bearer) > BEARER_CHARS_MAX or not _BEARER.match(bearer):
        raise AuthError("unknown API key")
    digest = hash_secret(bearer)
    record = KeyStore(engine).by_hash(digest)
    if record is None or not hmac.compare_digest(record.secret_sha256, digest):
        raise AuthError("unknown API key")
    if record.revoked:
        raise AuthError(f"API key {record.key_id} was revoked")
    return Principal(
        party=record.party,
        role=record.role,
        key_id=record.key_id,
        channel=record.channel,
        product=record.product,
    )


def list_keys(engine: Engine, *, include_revoked: bool = True) -> list[KeyRecord]:
    return KeyStore(engine).all(include_revoked=include_revoked)


def revoke_key(engine: Engine, key_id: str, at: datetime) -> KeyRecord:
    """Revoke a key from ``at`` on; NotFound when there is no such key."""
    return KeyStore(engine).revoke(key_id, at)


def require_role(principal: Principal, *roles: str) -> None:
    """Forbidden unless the principal has one of ``roles``."""
    if principal.role not in roles:
        raise Forbidden(
            f"key {principal.key_id} has role {principal.role!r}; this needs {' or '.join(roles)}"
        )


def require_party(principal: Principal, party: str, *, what: str) -> None:
    """Forbidden unless the principal acts as ``party`` (admins act as anyone)."""
    if principal.is_admin:
        return
    if principal.role != "party" or principal.party != party:
        raise Forbidden(f"only {party!r} may {what}; key {principal.key_id} is {principal.party!r}")
