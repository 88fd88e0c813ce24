"""``firstright keys create|list|revoke``: API keys for the HTTP surfaces."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from firstright.adapters.db import database_url_from, migrate, open_engine
from firstright.adapters.keys_store import KeyRecord
from firstright.services.auth import ROLES, create_key, list_keys, revoke_key

DATABASE_HELP = "Database URL (sqlite:///FILE or postgresql://...); env FIRSTRIGHT_DATABASE."


@click.group()
def keys() -> None:
    """Create, list and revoke API keys (stored hashed; a secret is shown once)."""


@keys.command("create")
@click.option("--party", required=True, help="Party the key acts as (e.g. openai).")
@click.option("--role", required=True, type=click.Choice(ROLES), help="admin, party or tenant.")
@click.option("--channel", default=None, help="Channel of a tenant key (e.g. openai-api).")
@click.option("--product", default=None, help="Product of a tenant key.")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def create_command(
    *,
    party: str,
    role: str,
    channel: str | None,
    product: str | None,
    database: str | None,
    as_json: bool,
) -> None:
    """Create a key and print its secret (the only time it is shown)."""
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        made = create_key(
            engine,
            party=party,
            role=role,
            channel=channel,
            product=product,
            created_at=datetime.now(UTC),
        )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({**made.record.to_json(), "secret": made.secret}))
    else:
        click.echo(made.secret)
        click.echo(
            f"key {made.record.key_id} for {party} ({role}); store the secret now, "
            "it is not shown again",
            err=True,
        )


def _line(record: KeyRecord) -> str:
    scope = " ".join(
        f"{name}={value}"
        for name, value in (("channel", record.channel), ("product", record.product))
        if value
    )
    state = f"revoked {record.revoked_at:%Y-%m-%dT%H:%M:%SZ}" if record.revoked_at else "active"
    created = f"{record.created_at:%Y-%m-%dT%H:%M:%SZ}"
    return f"{record.key_id}  {record.party:<16} {record.role:<7} {created}  {state}  {scope}"


@keys.command("list")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON Lines.")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
def list_command(database: str | None, as_json: bool, active: bool) -> None:
    """List keys (never their secrets)."""
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        records = list_keys(engine, include_revoked=not active)
    finally:
        engine.dispose()
    for record in records:
        click.echo(json.dumps(record.to_json()) if as_json else _line(record))


@keys.command("revoke")
@click.argument("key_id")
@click.option("--database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def revoke_command(key_id: str, database: str | None, as_json: bool) -> None:
    """Revoke a key now; it stops working at once."""
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        record = revoke_key(engine, key_id, datetime.now(UTC))
    finally:
        engine.dispose()
    click.echo(json.dumps(record.to_json()) if as_json else _line(record))
