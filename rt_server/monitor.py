"""The live monitor: every session of every dialect, as a JSON feed (the ``/monitor`` WebSocket).

:class:`Monitor` is a session observer. Observers are called synchronously from the
session pumps, so it never awaits: each event is serialised once and appended to every
connected feed's bounded queue. A feed that falls behind (a slow or stalled reader) loses
messages rather than slowing anything down; the loss is counted, and the feed is told
with ``{"type": "dropped", "count": N}`` at the point where messages went missing.

One JSON object per text frame, each with ``type`` and ``time`` (ISO 8601, UTC):

- ``monitor``: first, on connecting: ``sessions`` (those live now, on every instance
  sharing ``REDIS_URL``) and ``buffer``;
- ``session_started``: ``session``, ``dialect``, ``data``: backend, profile, peer, instance;
- a note from a session: ``type`` is its kind (``user_transcript``, ``user_text``,
  ``assistant_text``, ``speech_started``, ``truncated``, ``tool_call``, ``tool_result``,
  ``usage``, ``rate_limits``, ``timeout_triggered``, ``mcp_list_tools``, ``mcp_call``,
  ``error``), ``session``, ``dialect``, ``data`` (text, item ids, tool name,
  arguments and output, error code and message, ...);
- ``session_ended``: ``session``, ``dialect``, ``data``: close ``code``, ``reason``;
- ``dropped``: ``count`` messages this feed lost because it read too slowly.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from loguru import logger
from starlette.websockets import WebSocket

from rt_server.observe import SessionInfo
from rt_server.shared import Shared, SharedUnavailable
from rt_server.translate import Note

DEFAULT_BUFFER = 1000  # messages a feed may have waiting before it starts losing them


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _dumps(message: dict[str, Any]) -> str:
    return orjson.dumps(message).decode()


def describe(info: SessionInfo, instance: str | None = None) -> dict[str, Any]:
    """A live session as the monitor lists it (``instance``: the one serving it)."""
    started = datetime.fromtimestamp(info.started_at, UTC).isoformat(timespec="milliseconds")
    described = {
        "session": info.id,
        "dialect": info.dialect,
        "backend": info.backend,
        "profile": info.profile,
        "peer": info.peer,
        "started": started,
    }
    if instance is not None:
        described["instance"] = instance
    return described


@dataclass(slots=True, eq=False)  # compared and hashed by identity: feeds live in a set
class Feed:
    """One connected monitor: a bounded queue of serialised messages and a drop counter."""

    limit: int
    queue: deque[str] = field(default_factory=deque)
    dropped: int = 0
    dropped_total: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, message: str) -> None:
        """Queue ``message``, or count it as lost when the queue is full; never blocks."""
        if self.dropped and len(self.queue) < self.limit:
            self.queue.append(self._dropped_notice())
        if len(self.queue) >= self.limit:
            self.dropped += 1
            self.dropped_total += 1
        else:
            self.queue.append(message)
        self.ready.set()

    async def get(self) -> str:
        """The next message; a ``dropped`` notice once the reader has caught up."""
        while not self.queue:
            if self.dropped:
                return self._dropped_notice()
            self.ready.clear()
            await self.ready.wait()
        return self.queue.popleft()

    def _dropped_notice(self) -> str:
        count, self.dropped = self.dropped, 0
        return _dumps({"type": "dropped", "time": _now(), "count": count})


class Monitor:
    """A session observer that fans events out to every connected ``/monitor`` feed:
    through ``shared`` when given (the feeds of every instance hear every instance)."""

    def __init__(self, buffer: int = DEFAULT_BUFFER, shared: Shared | None = None) -> None:
        self.buffer = buffer
        self.feeds: set[Feed] = set()
        self.live: dict[str, SessionInfo] = {}
        self.shared = shared
        self._instance = shared.instance if shared is not None else None
        if shared is not None:
            shared.listen("monitor", self._fan_out)

    # ---------------------------------------------------------------- Observer

    def session_started(self, info: SessionInfo) -> None:
        self.live[info.id] = info
        data = describe(info, self._instance)
        del data["session"], data["dialect"]
        self._publish("session_started", info, data)

    def session_note(self, info: SessionInfo, note: Note) -> None:
        self._publish(note.kind, info, note.data)

    def session_ended(self, info: SessionInfo, close_code: int, reason: str) -> None:
        self.live.pop(info.id, None)
        self._publish("session_ended", info, {"code": close_code, "reason": reason})

    def _publish(self, kind: str, info: SessionInfo, data: Any) -> None:
        shared = self.shared
        if not self.feeds and (shared is None or shared.local):
            return
        message = _dumps(
            {
                "type": kind,
                "time": _now(),
                "session": info.id,
                "dialect": info.dialect,
                "data": data,
            }
        )
        if shared is not None:
            shared.publish("monitor", message)
        else:
            self._fan_out(message)

    def _fan_out(self, message: str) -> None:
        for feed in self.feeds:
            feed.put(message)

    # ---------------------------------------------------------------- serving a feed

    def subscribe(self, sessions: list[dict[str, Any]] | None = None) -> Feed:
        """A new feed, starting with ``sessions`` (default: those live here now)."""
        feed = Feed(self.buffer)
        if sessions is None:
            sessions = [describe(info, self._instance) for info in self.live.values()]
        hello = {"type": "monitor", "time": _now(), "sessions": sessions, "buffer": self.buffer}
        feed.put(_dumps(hello))
        self.feeds.add(feed)
        return feed

    async def serve(self, websocket: WebSocket) -> None:
        """Stream the feed to an accepted ``websocket`` until it goes away."""
        sessions = None  # those of this instance, unless the shared registry answers
        if self.shared is not None:
            with contextlib.suppress(SharedUnavailable):
                sessions = await self.shared.live()
        feed = self.subscribe(sessions)
        log = logger.bind(session="monitor")
        log.info("monitor connected ({} feeds)", len(self.feeds))
        tasks = [
            asyncio.create_task(_send_feed(websocket, feed)),
            asyncio.create_task(_until_closed(websocket)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.feeds.discard(feed)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            failures = [r for r in results if isinstance(r, Exception)]
            log.info(
                "monitor left ({} messages dropped{})",
                feed.dropped_total,
                f"; {type(failures[0]).__name__}" if failures else "",
            )
        with contextlib.suppress(Exception):
            await websocket.close()


async def _send_feed(websocket: WebSocket, feed: Feed) -> None:
    while True:
        await websocket.send_text(await feed.get())


async def _until_closed(websocket: WebSocket) -> None:
    """Read (and ignore) what the monitor sends, until it disconnects."""
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
