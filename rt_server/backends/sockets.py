"""The two sockets a backend connection can ride on, behind one ``BackendConnection``.

``aiohttp`` (the default, ``BACKEND_SOCKET=aiohttp``) frames WebSocket messages in
compiled code and is where the audio hot path spends least: text frames are read as
bytes and decoded once by orjson, and sent from orjson's bytes without a ``str`` in
between. ``sdk`` (``BACKEND_SOCKET=sdk``) is the openai SDK's GA
``client.realtime.connect()``: the SDK's own handshake, ``recv_bytes()`` and
``send_raw()`` over python-websockets; it carries a reconnect send queue that rt_server
does not need (sessions reconnect and replay on their own), which is why it costs more
per event. Both end the same way: a closed socket is :class:`BackendClosed`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeAlias

import aiohttp
import orjson
from loguru import logger
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from websockets.exceptions import ConnectionClosed

from rt_server.backends.base import BackendConnection, BackendEvent
from rt_server.config import SocketKind
from rt_server.errors import BackendClosed

__all__ = [
    "CLOSE_TIMEOUT",
    "HEARTBEAT",
    "MAX_MESSAGE_BYTES",
    "AiohttpConnection",
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
        self, ws: aiohttp.ClientWebSocketResponse[Any], *, receive: Normalise, emit: Normalise
    ) -> None:
        self._ws = ws
        self._receive = receive
        self._emit = emit

    async def send(self, event: BackendEvent) -> None:
        try:
            await self._ws.send_frame(orjson.dumps(self._emit(event)), _TEXT)
        except ConnectionError:
            raise self._closed() from None

    async def recv(self) -> BackendEvent:
        while True:
            message = await self._ws.receive()
            if message.type is _TEXT or message.type is _BINARY:
                if (event := decode(message.data)) is not None:
                    return self._receive(event)
                continue
            if message.type is aiohttp.WSMsgType.CLOSE:
                raise self._closed(message.extra)
            raise self._closed()

    def _closed(self, reason: str | None = None) -> BackendClosed:
        return closed(self._ws.close_code, reason)

    async def aclose(self) -> None:
        await self._ws.close()


class SdkConnection(BackendConnection):
    """A Realtime session on the openai SDK's connection (python-websockets)."""

    def __init__(
        self, connection: AsyncRealtimeConnection, *, receive: Normalise, emit: Normalise
    ) -> None:
        self._connection = connection
        self._receive = receive
        self._emit = emit

    async def send(self, event: BackendEvent) -> None:
        data = orjson.dumps(self._emit(event)).decode()
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
            if (event := decode(raw)) is not None:
                return self._receive(event)

    async def aclose(self) -> None:
        await self._connection.close()


def decode(raw: bytes | str) -> BackendEvent | None:
    """A server event, or None for a message that is not a JSON object (skipped with a
    warning: one malformed message must not end the session)."""
    try:
        event = orjson.loads(raw)
    except orjson.JSONDecodeError:
        logger.warning("< backend sent {} B that are not JSON; skipped", len(raw))
        return None
    if not isinstance(event, dict) or not isinstance(event.get("type"), str):
        logger.warning("< backend sent a JSON {} with no type; skipped", type(event).__name__)
        return None
    return event


def closed(code: int | None, reason: str | None) -> BackendClosed:
    """The socket ended, with the close code and reason the backend gave (if any)."""
    return BackendClosed(
        f"the backend closed the session ({code}: {reason or 'no reason given'})",
        close_code=code,
    )


def _sdk_closed(exc: ConnectionClosed) -> BackendClosed:
    frame = exc.rcvd
    return closed(frame.code, frame.reason) if frame is not None else closed(None, None)
