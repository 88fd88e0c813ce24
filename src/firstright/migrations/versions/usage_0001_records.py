"""Usage records: one row per metered fact, idempotent by the client's ``record_id``.

``content_sha256`` is the hash of the record's canonical JSON; a second write of the same id
must carry the same hash. ``occurred_us`` repeats ``occurred_at`` as integer microseconds since
the epoch (UTC) so settlement reads and filters a column of plain integers.

Revision ID: usage_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "usage_0001"
down_revision = None
branch_labels = ("usage",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_records",
        sa.Column("record_id", sa.String(200), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("occurred_us", sa.BigInteger, nullable=False),
        sa.Column("party", sa.String(64), nullable=False),
        sa.Column("counterparty", sa.String(64), nullable=True),
        sa.Column("tenant", sa.String(200), nullable=True),
        sa.Column("channel", sa.String(200), nullable=True),
        sa.Column("product", sa.String(200), nullable=True),
        sa.Column("provider", sa.String(200), nullable=True),
        sa.Column("backend", sa.String(200), nullable=True),
        sa.Column("operator", sa.String(200), nullable=True),
        sa.Column("vendor", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("input_tokens", sa.BigInteger, nullable=False),
        sa.Column("output_tokens", sa.BigInteger, nullable=False),
        sa.Column("gpu_type", sa.String(200), nullable=True),
        sa.Column("gpu_hours_micros", sa.BigInteger, nullable=False),
        sa.Column("amount_micros", sa.BigInteger, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("latency_ms", sa.Integer, nullable=True),
        sa.Column("status", sa.Integer, nullable=True),
        sa.Column("partial", sa.Boolean, nullable=False),
        sa.Column("refusals", sa.Text, nullable=False),
        sa.Column("clause_ids", sa.Text, nullable=False),
        sa.CheckConstraint(
            "source IN ('gateway', 'capacity', 'revenue')", name="ck_usage_records_source"
        ),
    )
    op.create_index("ix_usage_records_occurred_us", "usage_records", ["occurred_us"])
    op.create_index("ix_usage_records_party", "usage_records", ["party"])


def downgrade() -> None:
    op.drop_index("ix_usage_records_party", table_name="usage_records")
    op.drop_index("ix_usage_records_occurred_us", table_name="usage_records")
    op.drop_table("usage_records")
