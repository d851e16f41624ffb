"""A backend wrapper that records what each session sent; the sockets stay real."""

from __future__ import annotations

from rt_server.backends.base import Backend, BackendConnection, BackendEvent


class RecordingConnection(BackendConnection):
    def __init__(self, inner: BackendConnection, sent: list[BackendEvent]) -> None:
        self._inner = inner
        self.sent = sent

    async def send(self, event: BackendEvent) -> None:
        self.sent.append(event)
        await self._inner.send(event)

    async def recv(self) -> BackendEvent:
        return await self._inner.recv()

    async def aclose(self) -> None:
        await self._inner.aclose()


class RecordingBackend(Backend):
    """Delegates to a real backend and keeps every event each connection sent."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self.connections: list[list[BackendEvent]] = []

    async def start(self) -> None:
        await self.inner.start()

    async def connect(self) -> BackendConnection:
        sent: list[BackendEvent] = []
        connection = RecordingConnection(await self.inner.connect(), sent)
        self.connections.append(sent)
        return connection

    async def aclose(self) -> None:
        await self.inner.aclose()

    def sent_of_type(self, kind: str) -> list[BackendEvent]:
        return [e for sent in self.connections for e in sent if e["type"] == kind]
