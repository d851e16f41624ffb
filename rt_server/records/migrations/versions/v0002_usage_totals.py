"""Token totals per conversation, and an index for listing one dialect by time.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(
            sa.Column("total_tokens", sa.Integer(), nullable=False, server_default="0")
        )
    op.create_index(
        "ix_conversations_dialect_started_at", "conversations", ["dialect", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_conversations_dialect_started_at", "conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("total_tokens")
