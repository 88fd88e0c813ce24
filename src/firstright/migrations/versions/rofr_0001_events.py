"""First-refusal desk: append-only events per capacity request, a request projection
(rebuildable from the events) and the holders' standing instructions.

Revision ID: rofr_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "rofr_0001"
down_revision = None
branch_labels = ("rofr",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rofr_requests",
        sa.Column("request_id", sa.String(128), primary_key=True),
        sa.Column("owner", sa.String(128), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("contract", sa.Text, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("last_seq", sa.Integer, nullable=False),
        sa.Column("last_t", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_timer_kind", sa.String(64), nullable=True),
        sa.Column("next_timer_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rofr_requests_next_timer_at", "rofr_requests", ["next_timer_at"])
    op.create_index("ix_rofr_requests_owner", "rofr_requests", ["owner"])
    op.create_index("ix_rofr_requests_holder", "rofr_requests", ["holder"])
    op.create_table(
        "rofr_events",
        sa.Column(
            "request_id",
            sa.String(128),
            sa.ForeignKey("rofr_requests.request_id"),
            primary_key=True,
        ),
        sa.Column("seq", sa.Integer, primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("t", sa.DateTime(timezone=True), nullable=False),
        sa.Column("idempotency_key", sa.String(256), nullable=False, unique=True),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("response", sa.Text, nullable=False),
    )
    op.create_table(
        "rofr_instructions",
        sa.Column("instruction_id", sa.String(128), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("body_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_index("ix_rofr_instructions_holder", "rofr_instructions", ["holder"])


def downgrade() -> None:
    op.drop_index("ix_rofr_instructions_holder", table_name="rofr_instructions")
    op.drop_table("rofr_instructions")
    op.drop_table("rofr_events")
    op.drop_index("ix_rofr_requests_holder", table_name="rofr_requests")
    op.drop_index("ix_rofr_requests_owner", table_name="rofr_requests")
    op.drop_index("ix_rofr_requests_next_timer_at", table_name="rofr_requests")
    op.drop_table("rofr_requests")
