"""Backend wrappers for tests: the sockets stay real, a subclass watches or breaks them."""

from __future__ import annotations

from rt_server.backends.base import Backend, BackendConnection, BackendEvent


class WrappedConnection(BackendConnection):
    """A real backend connection; subclasses override what they watch."""

    def __init__(self, inner: BackendConnection) -> None:
        self._inner = inner

    async def send(self, event: BackendEvent) -> None:
        await self._inner.send(event)

    async def recv(self) -> BackendEvent:
        return await self._inner.recv()

    async def aclose(self) -> None:
        await self._inner.aclose()


class WrappedBackend(Backend):
    """A real backend whose connections :meth:`wrap` may wrap."""

    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name

    async def start(self) -> None:
        await self.inner.start()

    async def connect(self) -> BackendConnection:
        return self.wrap(await self.inner.connect())

    def wrap(self, connection: BackendConnection) -> BackendConnection:
        return connection

    async def aclose(self) -> None:
        await self.inner.aclose()


class RecordingConnection(WrappedConnection):
    def __init__(self, inner: BackendConnection, sent: list[BackendEvent]) -> None:
        super().__init__(inner)
        self.sent = sent

    async def send(self, event: BackendEvent) -> None:
        self.sent.append(event)
        await self._inner.send(event)


class RecordingBackend(WrappedBackend):
    """Delegates to a real backend and keeps every event each connection sent."""

    def __init__(self, inner: Backend) -> None:
        super().__init__(inner)
        self.connections: list[list[BackendEvent]] = []

    def wrap(self, connection: BackendConnection) -> BackendConnection:
        sent: list[BackendEvent] = []
        self.connections.append(sent)
        return RecordingConnection(connection, sent)

    def sent_of_type(self, kind: str) -> list[BackendEvent]:
        return [e for sent in self.connections for e in sent if e["type"] == kind]


class ClosesBefore(WrappedConnection):
    """Its socket is closed just before the ``nth`` event of type ``kind`` is sent, so that
    send is the first to find the backend gone."""

    def __init__(self, inner: BackendConnection, kind: str, nth: int) -> None:
        super().__init__(inner)
        self._kind, self._left = kind, nth

    async def send(self, event: BackendEvent) -> None:
        if event["type"] == self._kind:
            self._left -= 1
            if self._left == 0:
                await self._inner.aclose()
        await self._inner.send(event)


class FirstConnectionCloses(WrappedBackend):
    """The first connection is a :class:`ClosesBefore`; the rest are left alone."""

    def __init__(self, inner: Backend, kind: str, nth: int) -> None:
        super().__init__(inner)
        self._kind, self._nth, self._first = kind, nth, True

    def wrap(self, connection: BackendConnection) -> BackendConnection:
        if not self._first:
            return connection
        self._first = False
        return ClosesBefore(connection, self._kind, self._nth)
