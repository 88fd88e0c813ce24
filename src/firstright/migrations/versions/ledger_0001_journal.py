"""The journal: immutable entries, their postings, and closed months.

Entries are only ever inserted. ``(obligation_sha256, seq)`` is unique so two settlements racing
on one obligation cannot both book the same difference.

Revision ID: ledger_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "ledger_0001"
down_revision = None
branch_labels = ("ledger",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("entry_id", sa.String(32), primary_key=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("about_period", sa.String(7), nullable=False),
        sa.Column("why", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payer", sa.String(64), nullable=False),
        sa.Column("payee", sa.String(64), nullable=False),
        sa.Column("contract", sa.String(200), nullable=True),
        sa.Column("clause_id", sa.String(128), nullable=True),
        sa.Column("basis", sa.Text, nullable=False),
        sa.Column("unit", sa.String(32), nullable=False),
        sa.Column("rate", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("quantity", sa.BigInteger, nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("obligation_key", sa.Text, nullable=False),
        sa.Column("obligation_sha256", sa.String(64), nullable=False),
        sa.Column("booked_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("obligation_sha256", "seq", name="uq_ledger_entries_obligation_seq"),
    )
    op.create_index("ix_ledger_entries_period", "ledger_entries", ["period"])
    op.create_index("ix_ledger_entries_payer", "ledger_entries", ["payer"])
    op.create_index("ix_ledger_entries_payee", "ledger_entries", ["payee"])
    op.create_table(
        "ledger_postings",
        sa.Column(
            "entry_id",
            sa.String(32),
            sa.ForeignKey("ledger_entries.entry_id"),
            primary_key=True,
        ),
        sa.Column("idx", sa.Integer, primary_key=True),
        sa.Column("account", sa.String(300), nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_ledger_postings_account", "ledger_postings", ["account"])
    op.create_table(
        "ledger_periods",
        sa.Column("month", sa.String(7), primary_key=True),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ledger_periods")
    op.drop_index("ix_ledger_postings_account", table_name="ledger_postings")
    op.drop_table("ledger_postings")
    op.drop_index("ix_ledger_entries_payee", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_payer", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_period", table_name="ledger_entries")
    op.drop_table("ledger_entries")
