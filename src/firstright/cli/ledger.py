"""``firstright ledger``: import usage, close periods, export, list entries and balances."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from firstright.adapters.beancount_export import to_beancount, to_csv, to_parquet
from firstright.adapters.db import database_url_from, migrate, open_engine
from firstright.adapters.ledger_store import LedgerStore
from firstright.cli.settle import DATABASE_HELP, load_settlement_contracts, parse_now
from firstright.domain.ledger.periods import parse_period
from firstright.domain.money import micros_to_decimal
from firstright.errors import InputError
from firstright.limits import LEDGER_PAGE_SIZE_MAX
from firstright.services.settlement import close_periods
from firstright.services.usage_import import import_usage_file


@click.group("ledger")
def ledger() -> None:
    """The double-entry ledger: usage in, periods, exports."""


@ledger.command("import")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--contracts", "contracts_dir", default=None, help="Check parties against these.")
@click.option("--no-party-check", is_flag=True, help="Do not check parties against contracts.")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True)
def import_command(
    file: str, contracts_dir: str | None, no_party_check: bool, database: str | None, as_json: bool
) -> None:
    """Import usage records from CSV or JSON Lines (revenue rows: period, party, product,
    channel, amount). Idempotent by record id; any bad line imports nothing."""
    parties = None
    if not no_party_check:
        contracts = load_settlement_contracts(contracts_dir)
        parties = {p for c in contracts for p in c.parties}
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        inserted, duplicates = import_usage_file(engine, file, known_parties=parties)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"file": file, "inserted": inserted, "duplicates": duplicates}))
    else:
        click.echo(f"{file}: {inserted} records imported, {duplicates} already present")


@ledger.command("close")
@click.option("--period", "period", required=True, help="A month YYYY-MM or a quarter YYYY-Qn.")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--now", "now_text", default=None, help="The current instant (ISO 8601).")
@click.option("--json", "as_json", is_flag=True)
def close_command(period: str, database: str | None, now_text: str | None, as_json: bool) -> None:
    """Close a period: it never changes again; late usage lands in the next open month."""
    parsed = parse_period(period)
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        closed = close_periods(engine, parsed.label, now=parse_now(now_text))
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps({"period": parsed.label, "closed_now": closed}))
    else:
        done = ", ".join(closed) if closed else "nothing (already closed)"
        click.echo(f"{parsed.label}: closed {done}")


@ledger.command("export")
@click.option("--format", "fmt", type=click.Choice(["beancount", "csv", "parquet"]), required=True)
@click.option("--period", "period", default=None, help="Only entries booked in this period.")
@click.option("--output", "output", default=None, help="File to write (default stdout).")
@click.option("--database", "database", default=None, help=DATABASE_HELP)
def export_command(fmt: str, period: str | None, output: str | None, database: str | None) -> None:
    """Export entries as a beancount journal (bean-check clean), CSV or Parquet."""
    months = parse_period(period).months if period is not None else None
    if fmt == "parquet" and output is None:
        raise InputError("--format parquet needs --output FILE")
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        store = LedgerStore(engine)
        entries = store.entries(months=months)
        if fmt == "beancount":
            balances = store.balances(months=months)
            title = f"firstright ledger {period or 'all periods'}"
            payload: str | bytes = to_beancount(entries, balances, title=title)
        elif fmt == "csv":
            payload = to_csv(entries)
        else:
            payload = to_parquet(entries)
    finally:
        engine.dispose()
    if output is None:
        assert isinstance(payload, str)
        sys.stdout.write(payload)
    elif isinstance(payload, bytes):
        Path(output).write_bytes(payload)
    else:
        Path(output).write_text(payload, encoding="utf-8")


@ledger.command("entries")
@click.option("--period", "period", default=None)
@click.option("--party", "party", default=None)
@click.option("--limit", type=click.IntRange(1, LEDGER_PAGE_SIZE_MAX), default=100)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True)
def entries_command(  # noqa: PLR0917
    period: str | None,
    party: str | None,
    limit: int,
    offset: int,
    database: str | None,
    as_json: bool,
) -> None:
    """List journal entries (paginated)."""
    months = parse_period(period).months if period is not None else None
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        found = LedgerStore(engine).entries(months=months, party=party, limit=limit, offset=offset)
    finally:
        engine.dispose()
    if as_json:
        click.echo(json.dumps([e.to_json() for e in found], indent=2))
        return
    for e in found:
        click.echo(
            f"{e.period} {e.entry_id} {e.why.value:<15} {e.line.clause_id or 'list-price':<24} "
            f"{e.line.payer}->{e.line.payee} {micros_to_decimal(e.amount_micros):f} "
            f"{e.line.currency}"
        )


@ledger.command("balances")
@click.option("--period", "period", default=None, help="Balances through this period's end.")
@click.option("--party", "party", default=None)
@click.option("--database", "database", default=None, help=DATABASE_HELP)
@click.option("--json", "as_json", is_flag=True)
def balances_command(
    period: str | None, party: str | None, database: str | None, as_json: bool
) -> None:
    """Account balances (every entry booked up to the period's end)."""
    through = parse_period(period).last if period is not None else None
    engine = open_engine(database_url_from(database))
    try:
        migrate(engine)
        found = LedgerStore(engine).balances(through_month=through, party=party)
    finally:
        engine.dispose()
    if as_json:
        click.echo(
            json.dumps(
                [
                    {"account": a, "amount_micros": m, "amount": f"{micros_to_decimal(m):f}"}
                    for a, m in found
                ],
                indent=2,
            )
        )
        return
    for account, amount in found:
        click.echo(f"{account:<60} {micros_to_decimal(amount):>20f}")
