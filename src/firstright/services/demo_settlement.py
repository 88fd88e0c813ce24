"""The money part of the demo: usage and revenue of the scenario, settled quarter by quarter.

Usage records written (ids ``demo-*``, replaced on each run; the ledger then posts only the
differences, so a second run posts nothing):

* ``capacity``: each Azure placement of OpenAI inside the Azure commitment's period, at the
  catalog price of the chosen offer (it draws the commitment down);
* ``revenue``: OpenAI's API revenue and Microsoft's Azure OpenAI Service revenue per month,
  the bases of the revenue shares in both directions. The amounts are assumptions
  (:data:`REVENUE_NOTE`): OpenAI's revenue by channel is not public.

Then every quarter from the first record to the last is settled (``services/settlement.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from firstright.adapters.db import storage_errors
from firstright.adapters.usage_store import UsageStore, usage_records
from firstright.domain.contracts.versions import ContractSet
from firstright.domain.placement.answer import PlacementAnswer
from firstright.domain.usage import UsageRecord

DEMO_PREFIX = "demo-"
REVENUE_NOTE = (
    "assumption: quarterly revenue of the OpenAI API (from $1.0B in 2025-Q1, +15% a quarter) and "
    "of the Azure OpenAI Service (from $0.6B, +12%) is illustrative; revenue by channel is not "
    "public"
)
QUARTERS: tuple[tuple[str, datetime], ...] = tuple(
    (f"{year}-Q{q}", datetime(year, 3 * q - 1, 15, tzinfo=UTC))
    for year, q in ((2025, 1), (2025, 2), (2025, 3), (2025, 4), (2026, 1), (2026, 2))
)
OPENAI_API_Q1_USD = Decimal(1_000_000_000)
AZURE_OPENAI_Q1_USD = Decimal(600_000_000)
OPENAI_GROWTH = Decimal("1.15")
AZURE_GROWTH = Decimal("1.12")


def _micros(amount: Decimal) -> int:
    return int(amount.quantize(Decimal(1))) * 1_000_000


def demo_records(answers: Sequence[PlacementAnswer]) -> list[UsageRecord]:
    """The scenario's capacity and revenue records (deterministic ids and content)."""
    records: list[UsageRecord] = []
    first_quarter = QUARTERS[0][1]
    for answer in answers:
        choice = answer.choice
        if choice is None or choice.offer.provider != "azure" or answer.at < first_quarter:
            continue
        request = answer.request
        records.append(
            UsageRecord(
                record_id=f"{DEMO_PREFIX}capacity-{answer.request_id}",
                source="capacity",
                occurred_at=answer.at,
                party=request.party,
                counterparty="microsoft",
                provider="azure",
                gpu_type=request.accelerator,
                gpu_hours_micros=int(Decimal(request.gpus) * request.hours * 1_000_000),
                amount_micros=choice.total_micros,
            )
        )
    openai_api, azure_openai = OPENAI_API_Q1_USD, AZURE_OPENAI_Q1_USD
    for label, at in QUARTERS:
        for offset in (-1, 0, 1):  # one report per month of the quarter
            month = at.replace(month=at.month + offset)
            tag = f"{label}-m{offset + 2}"
            records.append(
                UsageRecord(
                    record_id=f"{DEMO_PREFIX}revenue-openai-api-{tag}",
                    source="revenue",
                    occurred_at=month,
                    party="openai",
                    channel="openai-api",
                    product="api",
                    amount_micros=_micros(openai_api / 3),
                )
            )
            records.append(
                UsageRecord(
                    record_id=f"{DEMO_PREFIX}revenue-azure-openai-{tag}",
                    source="revenue",
                    occurred_at=month,
                    party="microsoft",
                    channel="azure-openai",
                    product="azure-openai-service",
                    amount_micros=_micros(azure_openai / 3),
                )
            )
        openai_api *= OPENAI_GROWTH
        azure_openai *= AZURE_GROWTH
    return records


def reset_demo_usage(engine: Engine, *, keep_gateway: bool = True) -> None:
    """Remove the usage records an earlier demo run wrote (ids ``demo-*``)."""
    condition = sa.and_(
        usage_records.c.record_id.like(f"{DEMO_PREFIX}%"),
        usage_records.c.source != "gateway" if keep_gateway else sa.true(),
    )
    with storage_errors("resetting the demo's usage records"), engine.begin() as conn:
        conn.execute(usage_records.delete().where(condition))


def run_settlement(
    engine: Engine, contracts: ContractSet, answers: Sequence[PlacementAnswer], *, now: datetime
) -> list[dict[str, Any]]:
    """Write the scenario's records and settle every quarter; the reports as JSON."""
    from firstright.services.settlement import settle  # noqa: PLC0415

    reset_demo_usage(engine)
    UsageStore(engine).insert_many(demo_records(answers))
    reports = []
    for label, _ in QUARTERS:
        report = settle(engine, contracts, label, now=now)
        reports.append(
            {
                "period": label,
                "usage_records": report.records,
                "entries_posted": len(report.posted),
                "already_closed": report.already_closed,
            }
        )
    return reports
