"""The session observer that records conversations: notes in, records on the queue out.

Called synchronously from the session pumps, so it only builds small records and hands
them to :meth:`RecordStore.put`; the store's writer does the I/O. No audio is recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rt_server.observe import SessionInfo
from rt_server.records.store import Ended, Event, RecordStore, Started, utcnow
from rt_server.translate import Note

#: Notes that are turns: who spoke.
TURN_ROLES = {"user_text": "user", "user_transcript": "user", "assistant_text": "assistant"}
#: A resumed conversation's parts number their events apart: part N from N << 20 (one
#: conversation, several connections, possibly on several instances, never a clash).
PART_BITS = 20


@dataclass(slots=True)
class _Live:
    seq: int = 0
    tokens: int = 0
    dropped: int = 0  # events over the session's cap, counted, not recorded


class Recorder:
    """Observer: every session of every dialect, as records on ``store``'s queue."""

    def __init__(self, store: RecordStore, *, max_events: int = 10_000) -> None:
        self._store = store
        self._max_events = max_events  # per session: a flood of notes cannot fill the disk
        self._live: dict[str, _Live] = {}
        self._settled = asyncio.Event()
        self._settled.set()

    def session_started(self, info: SessionInfo) -> None:
        # A resumed part's Started is ignored (insert-or-ignore): the first part's stays.
        self._live[info.id] = _Live(seq=info.part << PART_BITS)
        self._settled.clear()
        started = datetime.fromtimestamp(info.started_at, UTC).replace(tzinfo=None)
        self._store.put(
            Started(
                info.id,
                started,
                info.dialect,
                info.backend,
                info.profile,
                info.peer,
                info.discussion,
            )
        )

    def session_note(self, info: SessionInfo, note: Note) -> None:
        live = self._live.setdefault(info.id, _Live(seq=info.part << PART_BITS))
        if note.kind == "rate_limits":
            return  # the account's, not the conversation's: /metrics has the latest
        if note.kind == "usage":
            total = note.data.get("total_tokens")
            live.tokens += total if isinstance(total, int) else 0
        if live.seq - (info.part << PART_BITS) >= self._max_events:
            live.dropped += 1
            return
        live.seq += 1
        data = plain(note.data)
        text: str | None = None
        role = TURN_ROLES.get(note.kind)
        if role is not None:
            text = str(data.pop("text", ""))
        self._store.put(Event(info.id, live.seq, utcnow(), note.kind, role, text, data or None))

    def session_ended(self, info: SessionInfo, close_code: int, reason: str) -> None:
        live = self._live.pop(info.id, _Live())
        if live.dropped:
            error = {
                "code": "records_truncated",
                "message": f"{live.dropped} later events were not recorded (RECORDS_MAX_EVENTS)",
            }
            self._store.put(Event(info.id, live.seq + 1, utcnow(), "error", None, None, error))
        self._store.put(Ended(info.id, utcnow(), close_code, _clean(reason)[:255], live.tokens))
        self._store.wake()
        if not self._live:
            self._settled.set()

    @property
    def live(self) -> int:
        """Sessions started and not yet ended."""
        return len(self._live)

    async def settled(self) -> None:
        """Return once no session is live (every session's end is queued)."""
        await self._settled.wait()


def plain(data: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON-ready copy of a note's data; NUL characters (PostgreSQL refuses them) removed."""
    return {_clean(str(key)): _value(value) for key, value in data.items()}


def _value(value: Any) -> Any:
    if isinstance(value, str):
        return _clean(value)
    if isinstance(value, Mapping):
        return plain(value)
    if isinstance(value, list | tuple):
        return [_value(item) for item in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _clean(str(value))


def _clean(text: str) -> str:
    return text.replace("\x00", "") if "\x00" in text else text
