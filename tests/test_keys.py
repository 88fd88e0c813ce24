"""API keys: creation, hashing, authentication, revocation, the CLI and the admin HTTP checks."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from firstright.adapters.db import migrate, open_engine
from firstright.adapters.keys_store import KeyStore
from firstright.api.app import AdminSettings, create_admin_app
from firstright.cli.main import cli
from firstright.errors import AuthError, Forbidden, InputError, NotFound
from firstright.services.auth import (
    Principal,
    authenticate,
    create_key,
    hash_secret,
    require_party,
    require_role,
    revoke_key,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(sqlite_url: str):  # type: ignore[no-untyped-def]
    engine = open_engine(sqlite_url)
    migrate(engine)
    yield engine
    engine.dispose()


def test_key_is_stored_hashed_and_authenticates(engine) -> None:  # type: ignore[no-untyped-def]
    made = create_key(engine, party="openai", role="party", created_at=T0, channel="openai-api")
    stored = KeyStore(engine).get(made.record.key_id)
    assert stored.secret_sha256 == hash_secret(made.secret)
    assert made.secret not in json.dumps(stored.to_json())
    principal = authenticate(engine, made.secret)
    assert principal == Principal(
        party="openai", role="party", key_id=made.record.key_id, channel="openai-api"
    )
    assert stored.created_at == T0


def test_unknown_malformed_and_revoked_keys_are_refused(engine) -> None:  # type: ignore[no-untyped-def]
    made = create_key(engine, party="openai", role="party", created_at=T0)
    forged = made.secret[:-4] + ("aaaa" if not made.secret.endswith("aaaa") else "bbbb")
    for bad in (forged, "nonsense", "", "frk_" + "x" * 500):
        with pytest.raises(AuthError, match="unknown API key"):
            authenticate(engine, bad)
    revoked = revoke_key(engine, made.record.key_id, T0)
    assert revoked.revoked_at == T0
    with pytest.raises(AuthError, match="revoked"):
        authenticate(engine, made.secret)
    with pytest.raises(NotFound):
        revoke_key(engine, "0000000000000000", T0)


def test_bad_role_and_names_are_input_errors(engine) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="role"):
        create_key(engine, party="openai", role="root", created_at=T0)
    with pytest.raises(InputError, match="party"):
        create_key(engine, party="Open AI", role="party", created_at=T0)
    assert KeyStore(engine).all() == []


def test_role_and_party_checks() -> None:
    admin = Principal(party="ops", role="admin", key_id="a")
    holder = Principal(party="microsoft", role="party", key_id="m")
    tenant = Principal(party="microsoft", role="tenant", key_id="t")
    require_role(admin, "admin")
    with pytest.raises(Forbidden):
        require_role(holder, "admin")
    require_party(admin, "microsoft", what="respond")
    require_party(holder, "microsoft", what="respond")
    with pytest.raises(Forbidden, match="only 'openai' may"):
        require_party(holder, "openai", what="notify")
    with pytest.raises(Forbidden):
        require_party(tenant, "microsoft", what="respond")


def test_cli_create_list_revoke(sqlite_url: str) -> None:
    runner = CliRunner()
    made = runner.invoke(
        cli,
        [
            "keys",
            "create",
            "--party",
            "openai",
            "--role",
            "admin",
            "--database",
            sqlite_url,
            "--json",
        ],
    )
    assert made.exit_code == 0, made.output
    created = json.loads(made.stdout)
    assert created["secret"].startswith("frk_") and created["role"] == "admin"
    listed = runner.invoke(cli, ["keys", "list", "--database", sqlite_url, "--json"])
    assert listed.exit_code == 0
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [row["key_id"] for row in rows] == [created["key_id"]]
    assert "secret" not in rows[0] and created["secret"] not in listed.stdout
    revoked = runner.invoke(
        cli, ["keys", "revoke", created["key_id"], "--database", sqlite_url, "--json"]
    )
    assert revoked.exit_code == 0 and json.loads(revoked.stdout)["revoked_at"]
    active = runner.invoke(cli, ["keys", "list", "--database", sqlite_url, "--json", "--active"])
    assert active.stdout == ""
    bad = runner.invoke(cli, ["keys", "create", "--party", "x", "--role", "god"])
    assert bad.exit_code == 2


def test_http_401_403_and_body_limit(engine) -> None:  # type: ignore[no-untyped-def]
    admin = create_key(engine, party="ops", role="admin", created_at=T0).secret
    party = create_key(engine, party="openai", role="party", created_at=T0).secret
    app = create_admin_app(engine, settings=AdminSettings(body_bytes_max=1024))
    with TestClient(app) as client:
        assert client.get("/api/health").json()["status"] == "ok"
        missing = client.get("/api/whoami")
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"] == "Bearer"
        assert missing.json()["error"]["type"] == "invalid_api_key"
        unknown = client.get("/api/whoami", headers={"Authorization": "Bearer frk_nope"})
        assert unknown.status_code == 401
        me = client.get("/api/whoami", headers={"Authorization": f"Bearer {party}"})
        assert me.json()["party"] == "openai"
        forbidden = client.get("/api/keys", headers={"Authorization": f"Bearer {party}"})
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["type"] == "permission_denied"
        listed = client.get("/api/keys", headers={"Authorization": f"Bearer {admin}"})
        assert listed.status_code == 200 and len(listed.json()) == 2
        big = client.post(
            "/api/whoami", content=b"x" * 2048, headers={"Authorization": f"Bearer {admin}"}
        )
        assert big.status_code == 413
        assert big.json()["error"]["type"] == "request_too_large"
        schema = client.get("/openapi.json").json()
        assert "/api/health" in schema["paths"]
        assert "HTTPBearer" in schema["components"]["securitySchemes"]
