"""``firstright db migrate``: bring a database to the current schema (every branch)."""

from __future__ import annotations

import json

import click

from firstright.adapters.db import database_url_from, heads_available, migrate, open_engine

DATABASE_HELP = "Database URL (sqlite:///FILE or postgresql://...); env FIRSTRIGHT_DATABASE."


@click.group()
def db() -> None:
    """Database administration."""


@db.command("migrate")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def migrate_command(database: str | None, as_json: bool) -> None:
    """Apply every pending migration (alembic upgrade heads)."""
    url = database_url_from(database)
    engine = open_engine(url)
    try:
        heads = migrate(engine, force=True)
    finally:
        engine.dispose()
    expected = heads_available()
    shown = engine.url.render_as_string(hide_password=True)
    if as_json:
        click.echo(json.dumps({"database": shown, "heads": heads, "expected": expected}))
    else:
        click.echo(f"{shown}: at {', '.join(heads)}")
