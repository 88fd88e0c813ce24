"""Placement decisions: one row per placed (or unplaceable) request, with its answer and trace.

``answer`` is the JSON of ``PlacementAnswer.to_json()`` (choice, runners-up, trace, first-refusal
notice, counterfactual); the other columns repeat what lists and summaries filter and add up.
``party`` is the buyer, ``counterparty`` the party operating the chosen cloud and ``holder`` the
holder of a first refusal due on the request; all three may read the row.

Revision ID: placements_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "placements_0001"
down_revision = None
branch_labels = ("placements",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "placements",
        sa.Column("placement_id", sa.String(200), primary_key=True),
        sa.Column("content_sha256", sa.String(64), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("party", sa.String(64), nullable=False),
        sa.Column("counterparty", sa.String(64), nullable=True),
        sa.Column("holder", sa.String(64), nullable=True),
        sa.Column("contract", sa.String(200), nullable=True),
        sa.Column("workload", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider", sa.String(64), nullable=True),
        sa.Column("region", sa.String(64), nullable=True),
        sa.Column("instance_type", sa.String(128), nullable=True),
        sa.Column("accelerator", sa.String(64), nullable=False),
        sa.Column("gpus", sa.Integer, nullable=False),
        sa.Column("total_micros", sa.BigInteger, nullable=False),
        sa.Column("first_refusal", sa.Boolean, nullable=False),
        sa.Column("why", sa.Text, nullable=False),
        sa.Column("clause_ids", sa.Text, nullable=False),
        sa.Column("answer", sa.Text, nullable=False),
        sa.CheckConstraint("status IN ('placed', 'no_offer')", name="ck_placements_status"),
    )
    op.create_index("ix_placements_decided_at", "placements", ["decided_at"])
    op.create_index("ix_placements_party", "placements", ["party"])


def downgrade() -> None:
    op.drop_index("ix_placements_party", "placements")
    op.drop_index("ix_placements_decided_at", "placements")
    op.drop_table("placements")
