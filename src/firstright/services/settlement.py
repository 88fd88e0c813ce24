"""Settle a period: rate usage, apply revenue shares and commitments, book by difference.

    settle(engine, contracts, "2025-03", now=...) -> SettlementReport
    close_periods(engine, "2025-Q1", now=...) -> list[str]
    statements_for(engine, "2025-Q1") -> list[Statement]

Settling reads every usage record up to the end of the period from the store into Arrow, rates
and aggregates it in DuckDB, computes each obligation's target in the pure domain and posts the
difference to what the ledger already holds, in one transaction. Running it again posts nothing.
A closed period is never written: usage that arrives for it later is booked in the next open
month as an ``ADJUSTMENT`` naming it. Any bad input raises before anything is posted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from firstright.adapters.duckdb_rating import month_bounds_us, rate_usage
from firstright.adapters.ledger_store import LedgerStore
from firstright.adapters.usage_store import UsageStore
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.ledger.entries import Entry
from firstright.domain.ledger.periods import Period, month_start, next_month, parse_period
from firstright.domain.ledger.planning import plan_entries
from firstright.domain.ledger.statements import Statement, build_statements
from firstright.domain.ledger.targets import PricedGroup, check_groups, settlement_targets
from firstright.domain.ledger.terms import MoneyTerms
from firstright.domain.money import micros_to_decimal


@dataclass(frozen=True, slots=True)
class SettlementReport:
    period: Period
    already_closed: bool
    records: int
    posted: list[Entry]
    closed_now: list[str]
    statements: list[Statement] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "period": self.period.label,
            "months": list(self.period.months),
            "already_closed": self.already_closed,
            "usage_records": self.records,
            "entries_posted": len(self.posted),
            "amount_posted_micros": sum(abs(e.amount_micros) for e in self.posted),
            "closed_now": self.closed_now,
            "statements": [s.to_json() for s in self.statements],
        }


def settle(
    engine: Engine,
    contracts: ContractSet,
    period_text: str,
    *,
    now: datetime,
    close_after_days: int | None = None,
) -> SettlementReport:
    period = parse_period(period_text)
    ledger = LedgerStore(engine)
    closed = ledger.closed_months()
    through = period.last
    posted: list[Entry] = []
    records = 0
    already_closed = through in closed
    if not already_closed:
        terms = MoneyTerms(contracts)
        _, end_us = month_bounds_us(through, through)
        table = UsageStore(engine).read_arrow(end_us=end_us)
        result = rate_usage(table, terms)
        records = result.records
        check_groups(terms, [r.group for r in result.usage])
        check_groups(terms, result.revenue)
        priced = [
            PricedGroup(r.group, r.choice, r.input_pico, r.output_pico, r.gpu_pico)
            for r in result.usage
        ]
        targets = settlement_targets(terms, priced, result.revenue, through)
        posted = plan_entries(targets, ledger.posted(), through_month=through, closed_months=closed)
        ledger.post(posted, now)
    closed_now: list[str] = []
    if close_after_days is not None:
        closed_now = close_due(ledger, through, now=now, after_days=close_after_days)
    return SettlementReport(
        period=period,
        already_closed=already_closed,
        records=records,
        posted=posted,
        closed_now=closed_now,
        statements=statements_for(engine, period.label),
    )


def close_due(ledger: LedgerStore, through: str, *, now: datetime, after_days: int) -> list[str]:
    """Close every open month up to ``through`` that ended at least ``after_days`` ago."""
    assert after_days >= 0
    closed = ledger.closed_months()
    due: list[str] = []
    month = min(closed | {through}) if closed else through
    # Months before the earliest known one have no entries; start from the earliest entry.
    earliest = ledger.entries(limit=1)
    if earliest:
        month = min(month, earliest[0].period)
    while month <= through:
        if (
            month not in closed
            and month_start(next_month(month)) + timedelta(days=after_days) <= now
        ):
            due.append(month)
        month = next_month(month)
    return ledger.close(due, now) if due else []


def close_periods(engine: Engine, period_text: str, *, now: datetime) -> list[str]:
    """Close the months of a period (idempotent); return the months closed by this call."""
    period = parse_period(period_text)
    return LedgerStore(engine).close(period.months, now)


def statements_for(engine: Engine, period_text: str) -> list[Statement]:
    period = parse_period(period_text)
    return build_statements(period, LedgerStore(engine).entries(months=period.months))


def render_statements(report: SettlementReport) -> str:
    """Plain-text statements for the terminal."""
    out: list[str] = []
    head = f"settlement {report.period.label}"
    if report.already_closed:
        head += " (closed; nothing posted)"
    else:
        head += f": {report.records} usage records, {len(report.posted)} entries posted"
    if report.closed_now:
        head += f"; closed {', '.join(report.closed_now)}"
    out.append(head)
    if not report.statements:
        out.append("no obligations in this period")
    for statement in report.statements:
        out.append("")
        out.append(f"{statement.party_a} <-> {statement.party_b} ({statement.currency})")
        for line in statement.lines:
            memo = "" if line.moves_money else " (memo)"
            about = f" about {line.about_period}" if line.about_period != line.period else ""
            out.append(
                f"  {line.period} {line.why:<15} {line.clause_id or 'list-price':<28} "
                f"{line.payer}->{line.payee} {micros_to_decimal(line.amount_micros):>16f}"
                f"{memo}{about}  {line.basis} x {line.quantity} {line.unit} @ {line.rate}"
            )
        if statement.net_payer is None:
            out.append("  net: even")
        else:
            out.append(
                f"  net: {statement.net_payer} pays {statement.net_payee} "
                f"{micros_to_decimal(abs(statement.net_micros)):f} {statement.currency}"
            )
    return "\n".join(out)
