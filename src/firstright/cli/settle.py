"""``firstright settle --period 2025-03|2025-Q1 [--contracts DIR] [--json]``."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from firstright.adapters.db import database_url_from, migrate, open_engine
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.ledger.periods import parse_period
from firstright.errors import InputError
from firstright.examples import default_contracts_dir
from firstright.services.contract_loader import load_contracts
from firstright.services.settlement import render_statements
from firstright.services.settlement import settle as run_settlement

DATABASE_HELP = "Database URL (sqlite:///FILE or postgresql://...); env FIRSTRIGHT_DATABASE."


def load_settlement_contracts(directory: str | None) -> ContractSet:
    """``--contracts DIR``, else the embedded example contracts."""
    if directory is not None:
        return load_contracts([directory])
    return load_contracts([default_contracts_dir()])


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise InputError(f"--now {text!r} is not an ISO 8601 instant") from exc
    if moment.tzinfo is None:
        raise InputError(f"--now {text!r} needs a time zone (e.g. Z)")
    return moment.astimezone(UTC)


@click.command("settle")
@click.option("--period", "period", required=True, help="A month YYYY-MM or a quarter YYYY-Qn.")
@click.option("--contracts", "contracts_dir", default=None, help="Contract bundles directory.")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option(
    "--close-after-days",
    type=click.IntRange(0, 3650),
    default=None,
    help="Also close every month that ended at least this many days ago.",
)
@click.option("--now", "now_text", default=None, help="The current instant (ISO 8601).")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def settle(  # noqa: PLR0917
    period: str,
    contracts_dir: str | None,
    database: str | None,
    close_after_days: int | None,
    now_text: str | None,
    as_json: bool,
) -> None:
    """Rate usage, apply revenue shares and commitments, post the differences, print statements.

    Running it again posts nothing; a closed period is only reported."""
    parse_period(period)
    now = parse_now(now_text)
    contracts = load_settlement_contracts(contracts_dir)
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        report = run_settlement(
            engine, contracts, period, now=now, close_after_days=close_after_days
        )
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(render_statements(report))
