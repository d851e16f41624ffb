"""Discussions: a conversation's saved transcript (the proxy's discussions API); each
conversation belongs to one.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "discussions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("filename", sa.String(255), nullable=False, unique=True),
        sa.Column("title", sa.String(255), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_discussions_started_at", "discussions", ["started_at"])
    with op.batch_alter_table("conversations") as batch:
        batch.add_column(sa.Column("discussion_id", sa.String(64), nullable=True))
    op.create_index("ix_conversations_discussion_id", "conversations", ["discussion_id"])


def downgrade() -> None:
    op.drop_index("ix_conversations_discussion_id", "conversations")
    with op.batch_alter_table("conversations") as batch:
        batch.drop_column("discussion_id")
    op.drop_index("ix_discussions_started_at", "discussions")
    op.drop_table("discussions")
