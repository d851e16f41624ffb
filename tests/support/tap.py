"""A backend wrapper that records both directions of every connection; the sockets stay real."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable

from rt_server.backends.base import Backend, BackendConnection, BackendEvent


class TapConnection(BackendConnection):
    def __init__(self, inner: BackendConnection) -> None:
        self._inner = inner
        self.sent: list[BackendEvent] = []
        self.received: list[BackendEvent] = []
        self._changed = asyncio.Event()

    async def send(self, event: BackendEvent) -> None:
        self.sent.append(event)
        await self._inner.send(event)

    async def recv(self) -> BackendEvent:
        event = await self._inner.recv()
        self.received.append(event)
        self._changed.set()
        return event

    async def aclose(self) -> None:
        await self._inner.aclose()

    def of_type(self, kind: str, *, sent: bool = False) -> list[BackendEvent]:
        return [e for e in (self.sent if sent else self.received) if e["type"] == kind]

    def appended(self) -> bytes:
        """The caller audio this connection was given."""
        events = self.of_type("input_audio_buffer.append", sent=True)
        return b"".join(base64.b64decode(e["audio"]) for e in events)

    def reply_audio(self) -> bytes:
        events = self.of_type("response.output_audio.delta")
        return b"".join(base64.b64decode(e["delta"]) for e in events)

    async def wait_for(
        self, predicate: Callable[[TapConnection], bool], timeout: float = 10.0
    ) -> None:
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()


class TapBackend(Backend):
    """Delegates to a real backend and keeps every connection's traffic."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.connections: list[TapConnection] = []

    async def start(self) -> None:
        await self.inner.start()

    async def connect(self) -> BackendConnection:
        connection = TapConnection(await self.inner.connect())
        self.connections.append(connection)
        return connection

    async def aclose(self) -> None:
        await self.inner.aclose()

    def sent_of_type(self, kind: str) -> list[BackendEvent]:
        return [e for c in self.connections for e in c.sent if e["type"] == kind]
