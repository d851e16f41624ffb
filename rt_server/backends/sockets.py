"""The three sockets a backend connection can ride on, behind one ``BackendConnection``.

``picows`` (the default, ``BACKEND_SOCKET=picows``) is a compiled WebSocket with a
callback API: each event read is decoded once by orjson and handed to the session in the
callback that read it, and a send is written to the transport at once, with no task,
Future or queue per event (:class:`PicowsConnection`). ``aiohttp``
(``BACKEND_SOCKET=aiohttp``) also frames in compiled code, behind an awaitable API that
the connection base pumps with a reader and a writer task. ``sdk`` (``BACKEND_SOCKET=sdk``) is the openai SDK's GA
``client.realtime.connect()``: the SDK's own handshake, ``recv_bytes()`` and
``send_raw()`` over python-websockets; it carries a reconnect send queue that rt_server
does not need (sessions reconnect and replay on their own), which is why it costs more
per event. Both end the same way: a closed socket is :class:`BackendClosed`.

A connection to a GA service (``keep=True``) hands on events (:class:`RawEvent`) that keep
the text they were decoded from, and sends a :class:`RawEvent` it is given as its text:
an event passed through unchanged (the ``/v1/realtime`` gateway) is never encoded again.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any, TypeAlias

import aiohttp
import orjson
from loguru import logger
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport
from websockets.exceptions import ConnectionClosed

from rt_server.backends.base import BackendConnection, BackendEvent, BackendSink
from rt_server.config import SocketKind
from rt_server.errors import BackendClosed
from rt_server.translate import RawEvent, raw_event
from rt_server.wsio import set_reading

__all__ = [
    "CLOSE_TIMEOUT",
    "HEARTBEAT",
    "MAX_MESSAGE_BYTES",
    "AiohttpConnection",
    "PicowsConnection",
    "SdkConnection",
    "SocketKind",
]

Normalise: TypeAlias = Callable[[BackendEvent], BackendEvent]

MAX_MESSAGE_BYTES = 16 * 1024 * 1024
CLOSE_TIMEOUT = 1.0  # a client's departure closes its backend connection within a second
# Keepalive, as python-websockets does it by default: a ping every 20 s, and a backend that
# does not answer within half of it is closed (a half-open TCP connection is noticed).
HEARTBEAT = 20.0

_TEXT = aiohttp.WSMsgType.TEXT
_BINARY = aiohttp.WSMsgType.BINARY


class AiohttpConnection(BackendConnection):
    """A Realtime session on an aiohttp WebSocket; ``receive``/``emit`` adapt a dialect."""

    def __init__(
        self,
        ws: aiohttp.ClientWebSocketResponse[Any],
        *,
        receive: Normalise,
        emit: Normalise,
        keep: bool = False,
    ) -> None:
        self._ws = ws
        self._receive = receive
        self._emit = emit
        self._keep = keep

    async def send(self, event: BackendEvent) -> None:
        try:
            await self._ws.send_frame(encode(self._emit(event)), _TEXT)
        except ConnectionError:
            raise self._closed() from None

    async def recv(self) -> BackendEvent:
        while True:
            message = await self._ws.receive()
            if message.type is _TEXT or message.type is _BINARY:
                if (event := decode(message.data, keep=self._keep)) is not None:
                    return self._receive(event)
                continue
            if message.type is aiohttp.WSMsgType.CLOSE:
                raise self._closed(message.extra)
            raise self._closed()

    def _closed(self, reason: str | None = None) -> BackendClosed:
        return closed(self._ws.close_code, reason)

    async def aclose(self) -> None:
        await self._stop_tasks()
        await self._ws.close()


class SdkConnection(BackendConnection):
    """A Realtime session on the openai SDK's connection (python-websockets)."""

    def __init__(
        self,
        connection: AsyncRealtimeConnection,
        *,
        receive: Normalise,
        emit: Normalise,
        keep: bool = False,
    ) -> None:
        self._connection = connection
        self._receive = receive
        self._emit = emit
        self._keep = keep

    async def send(self, event: BackendEvent) -> None:
        data = encode(self._emit(event)).decode()
        try:
            await self._connection.send_raw(data)
        except ConnectionClosed as exc:
            raise _sdk_closed(exc) from None

    async def recv(self) -> BackendEvent:
        while True:
            try:
                raw = await self._connection.recv_bytes()
            except ConnectionClosed as exc:
                raise _sdk_closed(exc) from None
            if (event := decode(raw, keep=self._keep)) is not None:
                return self._receive(event)

    async def aclose(self) -> None:
        await self._stop_tasks()
        await self._connection.close()


class PicowsConnection(BackendConnection, WSListener):
    """A Realtime session on picows: this object is the socket's listener."""

    def __init__(self, *, receive: Normalise, emit: Normalise, keep: bool = False) -> None:
        self._receive = receive
        self._emit = emit
        self._keep = keep
        self.transport: WSTransport | None = None
        self._early: deque[BackendEvent] = deque()  # read before listen() (or for recv())
        self._arrived: asyncio.Event = asyncio.Event()
        self._fragments: bytearray | None = None
        self._close_code: int | None = None
        self._close_reason: str | None = None
        self._ended: BackendClosed | None = None
        self._gone = asyncio.get_running_loop().create_future()

    # picows callbacks -------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
            if frame.fin:
                self._event(frame.get_payload_as_bytes())
            else:
                self._fragments = bytearray(frame.get_payload_as_memoryview())
        elif kind is WSMsgType.CONTINUATION and self._fragments is not None:
            self._fragments += frame.get_payload_as_memoryview()
            if frame.fin:
                data, self._fragments = bytes(self._fragments), None
                self._event(data)
        elif kind is WSMsgType.CLOSE:
            self._close_code = frame.get_close_code().value
            self._close_reason = frame.get_close_reason()
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self._ended = closed(self._close_code, self._close_reason)
        if not self._gone.done():
            self._gone.set_result(None)
        self._arrived.set()
        if self._sink is not None:
            self._sink.backend_closed(self._ended)

    def pause_writing(self) -> None:
        if self._sink is not None:
            self._sink.backend_writable(False)

    def resume_writing(self) -> None:
        if self._sink is not None:
            self._sink.backend_writable(True)

    def _event(self, raw: bytes) -> None:
        if (event := decode(raw, keep=self._keep)) is None:
            return
        event = self._receive(event)
        if self._sink is not None:
            self._sink.backend_event(event)
        else:
            self._early.append(event)
            self._arrived.set()

    # BackendConnection ------------------------------------------------------------------

    def listen(self, sink: BackendSink) -> None:
        self._sink = sink
        while self._early:
            sink.backend_event(self._early.popleft())
        if self._ended is not None:
            sink.backend_closed(self._ended)

    def send_nowait(self, event: BackendEvent) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected or transport.is_close_frame_sent:
            raise self._ended or closed(self._close_code, self._close_reason)
        transport.send(WSMsgType.TEXT, encode(self._emit(event)))

    async def send(self, event: BackendEvent) -> None:
        self.send_nowait(event)

    async def recv(self) -> BackendEvent:
        while not self._early:
            if self._ended is not None:
                raise self._ended
            self._arrived.clear()
            await self._arrived.wait()
        return self._early.popleft()

    def pause_reading(self) -> None:
        set_reading(self.transport, False)

    def resume_reading(self) -> None:
        set_reading(self.transport, True)

    async def aclose(self) -> None:
        transport = self.transport
        if transport is None or transport.is_disconnected:
            return
        self._sink = None  # the session that closes it wants no more of it
        if not transport.is_close_frame_sent:
            transport.send_close(WSCloseCode.OK)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                await asyncio.shield(self._gone)
        except TimeoutError:
            transport.disconnect(graceful=False)


def decode(raw: bytes, *, keep: bool = False) -> BackendEvent | None:
    """A server event (a :class:`RawEvent` with its text when ``keep``), or None for a
    message that is not a JSON object (skipped with a warning: one malformed message must
    not end the session)."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        logger.warning("< backend sent {} B that are not JSON; skipped", len(raw))
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        logger.warning("< backend sent a JSON {} with no type; skipped", type(event).__name__)
        return None
    return raw_event(event, raw) if keep else event


def encode(event: BackendEvent) -> bytes:
    """An event's JSON text: a :class:`RawEvent`'s own, any other encoded."""
    return event.raw if type(event) is RawEvent else orjson.dumps(event)


def closed(code: int | None, reason: str | None) -> BackendClosed:
    """The socket ended, with the close code and reason the backend gave (if any)."""
    return BackendClosed(
        f"the backend closed the session ({code}: {reason or 'no reason given'})",
        close_code=code,
    )


def _sdk_closed(exc: ConnectionClosed) -> BackendClosed:
    frame = exc.rcvd
    return closed(frame.code, frame.reason) if frame is not None else closed(None, None)
