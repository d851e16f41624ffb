"""The tables, as SQLAlchemy Core objects for queries (the migrations create them).

``conversations``: one row per session. ``events``: what happened in it, in order
(``seq``): turns (``role`` and ``text``), tool calls and results, usage, errors,
interruptions, each with its note's data as JSON. ``discussions``: what a conversation is
saved as (a Markdown file); a session opened with ``?discussion=`` records into one started
by the API, any other is a discussion of its own (same id). Times are naive UTC.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("started_at", DateTime(), nullable=False, index=True),
    Column("ended_at", DateTime(), nullable=True),
    Column("dialect", String(32), nullable=False),
    Column("backend", String(32), nullable=False),
    Column("profile", String(128), nullable=False),
    Column("peer", String(128), nullable=False),
    Column("close_code", Integer(), nullable=True),
    Column("close_reason", String(255), nullable=True),
    Column("total_tokens", Integer(), nullable=False, server_default="0"),  # since 0002
    Column("discussion_id", String(64), nullable=True, index=True),  # since 0003
)

# A discussion (since 0003): the saved transcript of its conversations, a Markdown file.
discussions = Table(
    "discussions",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("filename", String(255), nullable=False, unique=True),
    Column("title", String(255), nullable=True),
    Column("started_at", DateTime(), nullable=False, index=True),
)

events = Table(
    "events",
    metadata,
    Column(
        "conversation_id",
        String(64),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("seq", Integer(), primary_key=True),
    Column("at", DateTime(), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("role", String(16), nullable=True),
    Column("text", Text(), nullable=True),
    Column("data", JSON(), nullable=True),
)
