"""First-refusal desk: lead-time alerts already sent, so a restart does not repeat them.

Revision ID: rofr_0002
Revises: rofr_0001
Create Date: 2025-01-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "rofr_0002"
down_revision = "rofr_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rofr_alerts_sent",
        sa.Column("alert_key", sa.String(400), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_rofr_alerts_sent_deadline", "rofr_alerts_sent", ["deadline"])


def downgrade() -> None:
    op.drop_index("ix_rofr_alerts_sent_deadline", table_name="rofr_alerts_sent")
    op.drop_table("rofr_alerts_sent")
