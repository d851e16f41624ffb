"""Session observers: the live monitor, conversation records and metrics listen here.

Observers are called synchronously from the session's pumps, so they must not block:
one that does I/O queues the work and does it elsewhere (bounded, counting drops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from rt_server.translate import Note


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """Who a session is, for observers."""

    id: str
    dialect: str
    backend: str
    profile: str
    started_at: float  # wall clock, seconds since the epoch
    peer: str
    discussion: str | None = None  # the discussion it records into (None: its own)
    part: int = 0  # taken up again on a new connection this many times (``?resume=``)


class Observer(Protocol):
    """Hears about every session; each method must return quickly."""

    def session_started(self, info: SessionInfo) -> None: ...

    def session_note(self, info: SessionInfo, note: Note) -> None: ...

    def session_ended(self, info: SessionInfo, close_code: int, reason: str) -> None: ...
