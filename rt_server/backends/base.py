"""The backend adapter interface: how a session reaches a Realtime API.

A :class:`Backend` lives as long as the process (it owns the SDK client and the
credential); each client session opens its own :class:`BackendConnection` through it.
Events cross this boundary as plain dicts with GA event names, whatever dialect the
service speaks. ``session.py`` never asks which backend it has.
"""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections import deque
from types import TracebackType
from typing import Any, Protocol, Self

from rt_server.errors import BackendClosed
from rt_server.translate import BackendEvent

__all__ = ["Backend", "BackendConnection", "BackendEvent", "BackendSink"]


class BackendSink(Protocol):
    """What a connection reports to its session, from the callback that learnt it."""

    def backend_event(self, event: BackendEvent) -> None:
        """One server event (GA names)."""

    def backend_closed(self, closed: BackendClosed) -> None:
        """The connection ended; nothing more will arrive on it."""

    def backend_writable(self, writable: bool) -> None:
        """The send buffer crossed its high (False) or low (True) water mark."""


class _Closing:
    """``async with`` support for things closed by ``aclose()``."""

    async def aclose(self) -> None:
        """Release what this holds; safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class BackendConnection(_Closing, ABC):
    """One live Realtime session on the backend.

    A session uses it through callbacks: :meth:`listen` delivers every event to a
    :class:`BackendSink`, :meth:`send_nowait` writes without waiting. This base provides
    both on top of ``recv()`` and ``send()`` with a reader and a writer task (sockets with
    an awaitable API); a callback socket overrides them (``sockets.PicowsConnection``).
    """

    _sink: BackendSink | None = None
    _reader: asyncio.Task[None] | None = None
    _writer: asyncio.Task[None] | None = None
    _queue: deque[BackendEvent] | None = None
    _reading: asyncio.Event | None = None

    def listen(self, sink: BackendSink) -> None:
        """Deliver every event to ``sink`` from now on, and the end of the connection."""
        self._sink = sink
        self._reader = asyncio.create_task(self._read(sink))

    def send_nowait(self, event: BackendEvent) -> None:
        """Send ``event`` in order after those before it; raises ``BackendClosed`` if the
        connection is known to be gone (a loss found later reaches the sink)."""
        if self._queue is None:
            self._queue = deque()
        self._queue.append(event)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())

    def unsent(self) -> list[BackendEvent]:
        """Events given to :meth:`send_nowait` and not written when the connection ended."""
        return list(self._queue or ())

    def pause_reading(self) -> None:
        """Stop delivering events until :meth:`resume_reading` (the client is full)."""
        if self._reading is None:
            self._reading = asyncio.Event()
        self._reading.clear()

    def resume_reading(self) -> None:
        if self._reading is not None:
            self._reading.set()

    async def _read(self, sink: BackendSink) -> None:
        try:
            while True:
                if self._reading is not None and not self._reading.is_set():
                    await self._reading.wait()
                sink.backend_event(await self.recv())
        except BackendClosed as exc:
            sink.backend_closed(exc)

    async def _write(self) -> None:
        queue = self._queue
        assert queue is not None
        try:
            while queue:
                await self.send(queue[0])
                queue.popleft()
        except BackendClosed as exc:
            if self._sink is not None:
                self._sink.backend_closed(exc)

    async def _stop_tasks(self) -> None:
        """Cancel the reader and writer tasks (called by ``aclose``)."""
        tasks = [task for task in (self._reader, self._writer) if task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    @abstractmethod
    async def send(self, event: BackendEvent) -> None:
        """Send one client event; raises ``BackendClosed`` if the connection is gone."""

    @abstractmethod
    async def recv(self) -> BackendEvent:
        """The next server event (GA names); raises ``BackendClosed`` when it ends."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection; safe to call more than once."""


class Backend(_Closing, ABC):
    """A Realtime API endpoint and its credential, shared by every session."""

    name: str = "backend"

    async def start(self) -> None:
        """Acquire what the backend needs before the first session (default: nothing)."""

    @abstractmethod
    async def connect(self) -> BackendConnection:
        """Open a new Realtime session for one client.

        Returns once the WebSocket handshake has succeeded and the connection is ready
        for events; the caller owns the connection and must close it (it is an async
        context manager). The backend's first event, ``session.created``, is still to be
        received: the caller configures the session with ``session.update``.

        Every failure is raised as :class:`rt_server.errors.BackendError` with a code
        the client can act on: ``backend_unreachable`` (no connection),
        ``backend_auth_failed`` (401/403 or no credential), ``backend_rate_limited``
        (429, with ``retry_after`` when the service gave one), ``backend_unavailable``
        (5xx) or ``backend_timeout``; ``retryable`` says whether trying later may work.
        """

    async def check(self) -> None:
        """Raise ``BackendError`` if the credential cannot currently be used."""

    async def client_secret(self, session: dict[str, Any], *, seconds: int) -> dict[str, Any]:
        """Mint an ephemeral client secret bound to ``session`` (a GA session object).

        Returns the service's answer (``value``, ``expires_at``, ``session``); raises
        ``BackendError`` like :meth:`connect`, or ``NotImplementedError`` (no such API).
        """
        raise NotImplementedError(f"the {self.name} backend cannot mint client secrets")

    async def aclose(self) -> None:
        """Release the client and credential; called once at shutdown."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self
