"""Ledger exports: beancount (checked by ``bean-check``), CSV and Parquet.

The beancount journal writes every amount with six decimals (the ledger's micro-unit scale), so
no sub-cent difference hides behind mixed precision, and closes with a balance assertion per
account with an explicit zero tolerance (``~ 0.000000``), computed by the store in SQL
independently of the postings written above it: a one-micro difference fails the check.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from datetime import date, timedelta

import pyarrow as pa
import pyarrow.parquet as pq

from firstright.domain.ledger.entries import Entry
from firstright.domain.ledger.periods import month_start, next_month
from firstright.domain.money import micros_to_decimal

CSV_COLUMNS = (
    "entry_id",
    "period",
    "about_period",
    "why",
    "kind",
    "payer",
    "payee",
    "contract",
    "clause_id",
    "basis",
    "quantity",
    "unit",
    "rate",
    "currency",
    "account",
    "amount_micros",
    "amount",
)


def amount_text(amount_micros: int) -> str:
    """Six decimals, always: ``-12.500000``."""
    return f"{micros_to_decimal(amount_micros):f}"


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', "'") + '"'


def entry_date(entry: Entry) -> date:
    """An entry is dated the last day of the month it is booked in."""
    return (month_start(next_month(entry.period)) - timedelta(days=1)).date()


def to_beancount(
    entries: Sequence[Entry], balances: Iterable[tuple[str, int]], *, title: str
) -> str:
    out = io.StringIO()
    out.write(f"option {_quote('title')} {_quote(title)}\n")
    out.write(f"option {_quote('operating_currency')} {_quote('USD')}\n\n")
    if not entries:
        return out.getvalue()
    ordered = sorted(entries, key=lambda e: (e.period, e.entry_id))
    opened = entry_date(ordered[0]).replace(day=1) - timedelta(days=1)
    accounts = sorted({p.account for e in ordered for p in e.postings})
    currencies = sorted({e.line.currency for e in ordered})
    for account in accounts:
        out.write(f"{opened.isoformat()} open {account} {','.join(currencies)}\n")
    out.write("\n")
    for entry in ordered:
        line = entry.line
        narration = f"{entry.why.value} {line.clause_id or 'list-price'}: {line.basis}"
        out.write(
            f"{entry_date(entry).isoformat()} * {_quote(f'{line.payer}->{line.payee}')} "
            f"{_quote(narration)}\n"
        )
        out.write(f"  entry_id: {_quote(entry.entry_id)}\n")
        out.write(f"  why: {_quote(entry.why.value)}\n")
        out.write(f"  about_period: {_quote(line.about_period)}\n")
        if line.clause_id:
            out.write(f"  clause_id: {_quote(line.clause_id)}\n")
        for posting in entry.postings:
            out.write(
                f"  {posting.account}  {amount_text(posting.amount_micros)} {line.currency}\n"
            )
        out.write("\n")
    check_day = month_start(next_month(ordered[-1].period)).date()
    for account, total in balances:
        out.write(
            f"{check_day.isoformat()} balance {account} {amount_text(total)} ~ 0.000000 "
            f"{currencies[0]}\n"
        )
    return out.getvalue()


def _rows(entries: Sequence[Entry]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for entry in sorted(entries, key=lambda e: (e.period, e.entry_id)):
        line = entry.line
        for posting in entry.postings:
            rows.append(
                {
                    "entry_id": entry.entry_id,
                    "period": entry.period,
                    "about_period": line.about_period,
                    "why": entry.why.value,
                    "kind": line.kind.value,
                    "payer": line.payer,
                    "payee": line.payee,
                    "contract": line.contract,
                    "clause_id": line.clause_id,
                    "basis": line.basis,
                    "quantity": entry.quantity,
                    "unit": line.unit,
                    "rate": line.rate,
                    "currency": line.currency,
                    "account": posting.account,
                    "amount_micros": posting.amount_micros,
                    "amount": amount_text(posting.amount_micros),
                }
            )
    return rows


def to_csv(entries: Sequence[Entry]) -> str:
    """One row per posting."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(CSV_COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in _rows(entries):
        writer.writerow(row)
    return out.getvalue()


PARQUET_SCHEMA = pa.schema(
    [
        pa.field(name, pa.int64() if name in ("quantity", "amount_micros") else pa.string())
        for name in CSV_COLUMNS
    ]
)


def to_parquet(entries: Sequence[Entry]) -> bytes:
    """One row per posting, as a Parquet file's bytes."""
    rows = _rows(entries)
    table = pa.Table.from_pylist(rows, schema=PARQUET_SCHEMA)
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
