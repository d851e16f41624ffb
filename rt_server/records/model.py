"""What the records store keeps: a session began, something happened in it, it ended."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeAlias


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the tables hold."""
    return datetime.now(UTC).replace(tzinfo=None)


@dataclass(frozen=True, slots=True)
class Started:
    """A session began."""

    id: str
    started_at: datetime
    dialect: str
    backend: str
    profile: str
    peer: str
    discussion_id: str | None = None  # None: a discussion of its own (same id)


@dataclass(frozen=True, slots=True)
class Event:
    """Something happened in a session (the ``seq``-th thing)."""

    conversation_id: str
    seq: int
    at: datetime
    kind: str
    role: str | None
    text: str | None
    data: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Ended:
    """A session ended."""

    id: str
    ended_at: datetime
    close_code: int
    close_reason: str
    total_tokens: int


Record: TypeAlias = Started | Event | Ended


def discussion_filename(started_at: datetime, id: str) -> str:
    """The transcript file of a discussion: ``20260107-093000-3f9c0a1b2d4e.md``."""
    return f"{started_at:%Y%m%d-%H%M%S}-{id}.md"
