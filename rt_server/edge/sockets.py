"""The client socket a session talks to, on either edge, behind one :class:`ClientSocket`.

A session does not read its client: the socket calls it. Each frame read is handed to
:meth:`ClientSink.client_frame` in the callback that read it, and what the session sends
goes to the socket's transport at once. Two implementations:

- :class:`PicowsSocket`, the fast edge (``rt-server``): picows, a compiled WebSocket, on the
  connection rt_server's own uvicorn WebSocket protocol took over (:mod:`.asgi`). Frames
  arrive in picows' data callback; a frame whose header announces more than its cap is
  refused by picows with close 1009 before its payload is read; writes go straight to the
  transport, and the send budget is what the client has left unread there. The first frame
  of a loop pass is written at once; the frames sent after it in the same pass (the rest of
  a reply's burst, read from the backend in one callback) are joined and written together
  at the end of the pass: one ``send()`` system call instead of one per frame.
- :class:`StarletteSocket`, the compatibility edge (``uvicorn rt_server.main:app``): a
  reader task over Starlette's ``receive()`` and a writer task over a bounded queue.

Both enforce the same limits (README, "Limits"): ``SEND_BUFFER_BYTES`` bounds what the
client has not read, a client that stops reading is closed 1008 after
``STALL_TIMEOUT_SECONDS``, and every close gives up after :data:`CLOSE_TIMEOUT` (on the
fast edge the socket is then aborted). On the fast edge a client whose unread bytes pass the
high-water mark is not read either until it catches up, so what it sends meanwhile (pings
whose pongs it leaves unread, say) waits in its own socket, not in rt_server's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from abc import ABC, abstractmethod
from collections import deque
from typing import Protocol

from loguru import logger
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from rt_server.wsio import set_reading

__all__ = [
    "CLOSE_TIMEOUT",
    "ClientSink",
    "ClientSocket",
    "PicowsSocket",
    "StarletteSocket",
]

_SHORT, _MEDIUM, _LONG = struct.Struct("!BB"), struct.Struct("!BBH"), struct.Struct("!BBQ")
_FIN_TEXT, _FIN_BINARY = 0x81, 0x82  # a whole message's first byte (unmasked, server side)

_BATCH_BYTES = 65536  # joined frames past this are written at once

CLOSE_TIMEOUT = 2.0  # a close not completed in this time is abandoned (the socket aborted)
_STALLED = "the client is not reading its messages"


class ClientSink(Protocol):
    """What a client socket reports to its session, from the callback that learnt it."""

    def client_frame(self, data: str | bytes) -> None:
        """One whole message: text (``str``) or binary (``bytes``)."""

    def client_refused(self, code: int, reason: str) -> None:
        """The socket refused what the client sent (too large, not UTF-8) and is closing."""

    def client_gone(self, code: int | None) -> None:
        """The client closed or the connection dropped; nothing more will arrive."""

    def client_stalled(self) -> None:
        """The client's unread bytes stayed over the high-water mark for the stall timeout."""

    def client_writable(self, writable: bool) -> None:
        """The socket's send buffer crossed its high (False) or low (True) water mark."""


class ClientSocket(ABC):
    """One accepted client WebSocket."""

    peer: str = "?"

    @abstractmethod
    def start(self, sink: ClientSink) -> None:
        """Deliver the client's frames to ``sink`` from now on."""

    @abstractmethod
    def send(self, frame: str | bytes) -> bool:
        """Write one frame now; False when the client's unread bytes would pass the
        budget (nothing is written then)."""

    @abstractmethod
    def pause_reading(self) -> None:
        """Stop reading the client (its peer cannot take more now)."""

    @abstractmethod
    def resume_reading(self) -> None:
        """Read the client again."""

    @abstractmethod
    async def close(self, code: int, reason: str) -> None:
        """Send what is queued, close with ``code``; never waits more than
        :data:`CLOSE_TIMEOUT` plus a second of flushing."""


# --------------------------------------------------------------------------- fast edge


class PicowsSocket(ClientSocket, WSListener):
    """A client on picows: its listener is this object, its frames call the sink."""

    def __init__(
        self, peer: str, *, max_message_bytes: int, send_buffer_bytes: int, stall_seconds: float
    ) -> None:
        self.peer = peer
        self.transport: WSTransport | None = None
        self._sink: ClientSink | None = None
        self._early: deque[str | bytes] = deque()  # read before start()
        self._max = max_message_bytes
        self._budget = send_buffer_bytes
        self._fragments: bytearray | None = None
        self._fragment_type = WSMsgType.TEXT
        self._stall_seconds = stall_seconds
        self._stall: asyncio.TimerHandle | None = None
        self._paused = False  # the session asked not to be given frames for now
        self._full = False  # the client's unread bytes are over the high-water mark
        self._gone = False
        self._loop = asyncio.get_running_loop()
        self._batch = bytearray()  # frames joined for the end of this loop pass
        self._batch_cap = min(_BATCH_BYTES, send_buffer_bytes // 4)
        self._pass: asyncio.Handle | None = None  # the end of the pass a frame went out in
        self.disconnected = self._loop.create_future()

    # picows callbacks -------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        # Pause before the send budget is spent: the kernel's buffer is large, the high
        # water mark only says the client is falling behind.
        transport.underlying_transport.set_write_buffer_limits(
            high=self._budget // 2, low=self._budget // 8
        )

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.CLOSE:
            code = frame.get_close_code().value
            self._flush()
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
            self._report_gone(code)
            return
        if kind is WSMsgType.PONG:
            return
        if kind is WSMsgType.CONTINUATION or not frame.fin:
            if not self._fragment(kind, frame):
                return
            data: str | bytes | None = self._joined()
        elif kind is WSMsgType.BINARY:
            data = frame.get_payload_as_bytes()
        else:
            data = self._text(frame.get_payload_as_memoryview())
        if data is not None:
            self._deliver(data)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self._stall is not None:
            self._stall.cancel()
        if not self.disconnected.done():
            self.disconnected.set_result(None)
        self._report_gone(None)

    def pause_writing(self) -> None:
        loop = asyncio.get_running_loop()
        self._stall = loop.call_later(self._stall_seconds, self._stalled)
        self._full = True
        set_reading(self.transport, False)
        if self._sink is not None:
            self._sink.client_writable(False)

    def resume_writing(self) -> None:
        if self._stall is not None:
            self._stall.cancel()
            self._stall = None
        self._full = False
        set_reading(self.transport, not self._paused)
        if self._sink is not None:
            self._sink.client_writable(True)

    # ClientSocket -----------------------------------------------------------------------

    def start(self, sink: ClientSink) -> None:
        self._sink = sink
        while self._early:
            sink.client_frame(self._early.popleft())
        if self._gone:
            sink.client_gone(None)

    def send(self, frame: str | bytes) -> bool:
        transport = self.transport
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            return True  # the client is gone; the session hears it from on_ws_disconnected
        unread = transport.underlying_transport.get_write_buffer_size() + len(self._batch)
        if unread + len(frame) > self._budget:
            return False
        binary = isinstance(frame, bytes)
        payload = frame if isinstance(frame, bytes) else frame.encode()
        if self._pass is None:  # the first of this pass: at once
            transport.send(WSMsgType.BINARY if binary else WSMsgType.TEXT, payload)
            self._pass = self._loop.call_soon(self._flush)
            return True
        first, size = _FIN_BINARY if binary else _FIN_TEXT, len(payload)
        if len(self._batch) + size > self._batch_cap:
            self._flush()  # to the kernel now: joined bytes must not pass for unread ones
            self._pass = self._loop.call_soon(self._flush)
        if size < 126:
            self._batch += _SHORT.pack(first, size)
        elif size < 65536:
            self._batch += _MEDIUM.pack(first, 126, size)
        else:
            self._batch += _LONG.pack(first, 127, size)
        self._batch += payload
        return True

    def pause_reading(self) -> None:
        self._paused = True
        set_reading(self.transport, False)

    def resume_reading(self) -> None:
        self._paused = False
        set_reading(self.transport, not self._full)

    async def close(self, code: int, reason: str) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        self.send_close(code, reason)
        set_reading(transport, True)  # the client's close frame must be read to complete
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(self.disconnected)
        except TimeoutError:
            logger.debug("client did not complete the close in {:g} s; aborted", CLOSE_TIMEOUT)
            transport.disconnect(graceful=False)

    def send_close(self, code: int, reason: str) -> None:
        """Write what this pass joined, then the close frame (once); no waiting."""
        transport = self.transport
        if transport is not None and not transport.is_close_frame_sent:
            self._flush()
            transport.send_close(WSCloseCode(code), reason.encode()[:123])

    # helpers ----------------------------------------------------------------------------

    def _flush(self) -> None:
        """Write the frames joined in this pass (before anything that must follow them)."""
        if self._pass is not None:
            self._pass.cancel()
            self._pass = None
        if not self._batch:
            return
        batch, self._batch = self._batch, bytearray()
        transport = self.transport
        if transport is not None and not (
            transport.is_disconnected or transport.is_close_frame_sent
        ):
            transport.underlying_transport.write(batch)

    def _deliver(self, data: str | bytes) -> None:
        if self._sink is None:
            self._early.append(data)
        else:
            self._sink.client_frame(data)

    def _text(self, payload: memoryview | bytes | bytearray) -> str | None:
        try:
            return str(payload, "utf-8")
        except UnicodeDecodeError:
            self._refuse(1007, "a text message is not valid UTF-8")
            return None

    def _fragment(self, kind: WSMsgType, frame: WSFrame) -> bool:
        """Collect a fragmented message; True once it is whole."""
        if kind is not WSMsgType.CONTINUATION:
            self._fragments, self._fragment_type = bytearray(), kind
        elif self._fragments is None:
            self._refuse(1002, "a continuation frame with no message to continue")
            return False
        assert self._fragments is not None
        if len(self._fragments) + frame.payload_size > self._max:
            self._fragments = None
            self._refuse(1009, f"message over {self._max} bytes")
            return False
        self._fragments += frame.get_payload_as_memoryview()
        return bool(frame.fin)

    def _joined(self) -> str | bytes | None:
        assert self._fragments is not None
        payload, self._fragments = self._fragments, None
        if self._fragment_type is WSMsgType.BINARY:
            return bytes(payload)
        return self._text(payload)

    def _refuse(self, code: int, reason: str) -> None:
        if self._sink is not None:
            self._sink.client_refused(code, reason)
        elif self.transport is not None:
            self.send_close(code, reason)
            self.transport.disconnect()

    def _stalled(self) -> None:
        self._stall = None
        if self._sink is not None:
            self._sink.client_stalled()
        elif self.transport is not None:
            self.transport.disconnect(graceful=False)

    def _report_gone(self, code: int | None) -> None:
        if not self._gone:
            self._gone = True
            if self._sink is not None:
                self._sink.client_gone(code)


# ------------------------------------------------------------------ compatibility edge


class StarletteSocket(ClientSocket):
    """A client on Starlette's WebSocket (any ASGI server): two tasks pump it."""

    def __init__(
        self, websocket: WebSocket, *, send_buffer_bytes: int, stall_seconds: float
    ) -> None:
        client = websocket.client
        self.peer = f"{client.host}:{client.port}" if client else "?"
        self._ws = websocket
        self._budget = send_buffer_bytes
        self._stall_seconds = stall_seconds
        self._queue: deque[str | bytes] = deque()
        self._queued = 0
        self._ready = asyncio.Event()
        self._reading = asyncio.Event()
        self._reading.set()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, sink: ClientSink) -> None:
        self._tasks = [
            asyncio.create_task(self._read(sink)),
            asyncio.create_task(self._write(sink)),
        ]

    def send(self, frame: str | bytes) -> bool:
        if self._queued + len(frame) > self._budget:
            return False
        self._queued += len(frame)
        self._queue.append(frame)
        self._ready.set()
        return True

    def pause_reading(self) -> None:
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    async def close(self, code: int, reason: str) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._ws.application_state != WebSocketState.CONNECTED:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                await self._drain()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await self._ws.close(code, reason[:120])

    async def _read(self, sink: ClientSink) -> None:
        receive = self._ws.receive
        while True:
            if not self._reading.is_set():
                await self._reading.wait()
            message = await receive()
            if message["type"] == "websocket.disconnect":
                sink.client_gone(message.get("code"))
                return
            data: str | bytes | None = message.get("bytes")
            sink.client_frame(data if data is not None else message.get("text") or "")

    async def _write(self, sink: ClientSink) -> None:
        try:
            while True:
                await self._ready.wait()
                self._ready.clear()
                try:
                    async with asyncio.timeout(self._stall_seconds):
                        await self._drain()
                except TimeoutError:
                    sink.client_stalled()
                    return
        except WebSocketDisconnect:
            sink.client_gone(None)

    async def _drain(self) -> None:
        while self._queue:
            frame = self._queue.popleft()
            self._queued -= len(frame)
            if isinstance(frame, bytes):
                await self._ws.send_bytes(frame)
            else:
                await self._ws.send_text(frame)
