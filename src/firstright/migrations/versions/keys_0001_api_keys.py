"""API keys: hashed secrets mapped to a party and a role.

Revision ID: keys_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "keys_0001"
down_revision = None
branch_labels = ("keys",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_keys",
        sa.Column("key_id", sa.String(64), primary_key=True),
        sa.Column("secret_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("party", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("channel", sa.String(128), nullable=True),
        sa.Column("product", sa.String(128), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint("role IN ('admin', 'party', 'tenant')", name="ck_api_keys_role"),
    )
    op.create_index("ix_api_keys_party", "api_keys", ["party"])


def downgrade() -> None:
    op.drop_index("ix_api_keys_party", table_name="api_keys")
    op.drop_table("api_keys")
