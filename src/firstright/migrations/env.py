"""Alembic environment: runs on the connection ``firstright.adapters.db.migrate`` passes in.

Without one (``alembic`` run by hand) it connects to FIRSTRIGHT_DATABASE or ``firstright.db``.
"""

from __future__ import annotations

from alembic import context

from firstright.adapters.db import database_url_from, open_engine

config = context.config


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection,
            render_as_batch=connection.dialect.name == "sqlite",
            transaction_per_migration=False,
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = open_engine(database_url_from(None))
    with engine.begin() as own:
        context.configure(connection=own, render_as_batch=own.dialect.name == "sqlite")
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    raise SystemExit("firstright migrations run online only (firstright db migrate)")
run()
