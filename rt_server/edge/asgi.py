"""rt_server's own uvicorn WebSocket protocol: the ASGI application on a picows socket.

``rt-server`` passes :class:`EdgeProtocol` to uvicorn as its ``ws`` protocol class (an
import string, ``rt_server.edge.asgi:EdgeProtocol``), so uvicorn keeps serving every HTTP
route and hands each upgrade request here. Until the application accepts, this is a plain
ASGI WebSocket server: the application sees the scope, its routes run their origin,
token and capacity checks, and may refuse with an HTTP response (the
``websocket.http.response`` extension) or a close (403). On ``websocket.accept`` the
connection is handed to picows, which answers 101 and parses the frames from then on.

The scope carries the ``rt_server.edge`` extension, an :class:`Edge`: a session that finds
it takes the socket over (:meth:`Edge.accept`) and is called back for every frame; any
other route (the monitor, a refusal after the handshake) keeps using ASGI ``receive`` and
``send``, which this class serves from the same socket.

Nothing of the request line is logged: its query string may hold a token.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from http import HTTPStatus
from typing import Any, cast
from urllib.parse import unquote

import httptools
from loguru import logger
from picows import (
    WSAutoPingStrategy,
    WSCloseCode,
    WSUpgradeRequest,
    WSUpgradeResponse,
    WSUpgradeResponseWithListener,
)
from picows.picows import WSProtocol  # type: ignore[attr-defined]  # not in the stubs
from uvicorn.config import Config
from uvicorn.server import ServerState

from rt_server.config import Limits
from rt_server.edge.http import MAX_HEAD_BYTES
from rt_server.edge.sockets import CLOSE_TIMEOUT, ClientSink, PicowsSocket
from rt_server.wsio import PICOWS_LOG

__all__ = ["EDGE", "Edge", "EdgeProtocol"]

EDGE = "rt_server.edge"  # the scope extension's name
_ASGI_LIMITS = Limits()  # a route on plain ASGI receive/send (the monitor): the defaults


class Edge:
    """What the scope's ``rt_server.edge`` extension holds: the way to take the socket."""

    def __init__(self, protocol: EdgeProtocol) -> None:
        self._protocol = protocol

    async def accept(self, subprotocol: str | None, limits: Limits) -> PicowsSocket:
        """Complete the handshake; the session then owns the socket's frames."""
        return self._protocol.upgrade(subprotocol, [], limits)


class _AsgiSink(ClientSink):
    """Frames for an ASGI application that reads with ``receive()``."""

    def __init__(self) -> None:
        self.messages: deque[dict[str, Any]] = deque()
        self.ready = asyncio.Event()
        self.closed = False

    def _put(self, message: dict[str, Any]) -> None:
        self.messages.append(message)
        self.ready.set()

    def client_frame(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            self._put({"type": "websocket.receive", "bytes": data})
        else:
            self._put({"type": "websocket.receive", "text": data})

    def client_refused(self, code: int, reason: str) -> None:
        self.client_gone(code)

    def client_gone(self, code: int | None) -> None:
        if not self.closed:
            self.closed = True
            self._put({"type": "websocket.disconnect", "code": code or 1005})

    def client_stalled(self) -> None:
        self.client_gone(1008)

    def client_writable(self, writable: bool) -> None:
        pass


class EdgeProtocol(asyncio.Protocol):
    """One upgrade request, then one WebSocket: the uvicorn ``ws`` protocol class."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        if not config.loaded:
            config.load()
        self.config = config
        self.app = config.loaded_app
        self.server_state = server_state
        self.app_state = app_state
        self.transport: asyncio.Transport | None = None
        self.socket: PicowsSocket | None = None
        self._head = b""
        self._scope: dict[str, Any] | None = None
        self._connected_sent = False
        self._responded = False  # an HTTP answer (a refusal) was written
        self._asgi: _AsgiSink | None = None
        self._lost = False

    # asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.server_state.connections.add(self)  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        if self._scope is not None:
            return  # uvicorn hands the head over whole; a client does not speak before 101
        self._head += data
        if len(self._head) > MAX_HEAD_BYTES:
            self._answer(431, b"request head too large")
            return
        if b"\r\n\r\n" not in self._head:
            return
        try:
            self._scope = self._parse(self._head)
        except httptools.HttpParserError:
            self._answer(400, b"malformed request")
            return
        task = asyncio.get_running_loop().create_task(self._run())
        self.server_state.tasks.add(task)
        task.add_done_callback(self.server_state.tasks.discard)

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.server_state.connections.discard(self)

    def shutdown(self) -> None:
        """uvicorn is stopping: close 1012 (rt_server's drain has already run)."""
        if self.socket is not None and self.socket.transport is not None:
            transport = self.socket.transport
            self.socket.send_close(WSCloseCode.SERVICE_RESTART.value, "server restarting")
            asyncio.get_running_loop().call_later(CLOSE_TIMEOUT, transport.disconnect, False)
        elif self.transport is not None and not self._responded:
            self._answer(503, b"server shutting down")

    # the handshake --------------------------------------------------------------------

    def upgrade(
        self,
        subprotocol: str | None,
        headers: list[tuple[bytes, bytes]],
        limits: Limits,
    ) -> PicowsSocket:
        """Hand the connection to picows, which answers 101; the socket it serves."""
        assert self.transport is not None
        assert self._scope is not None
        if self.socket is not None or self._responded:
            raise RuntimeError("the WebSocket was already accepted or refused")
        client = self._scope.get("client")
        peer = f"{client[0]}:{client[1]}" if client else "?"
        socket = PicowsSocket(
            peer,
            max_message_bytes=limits.max_message_bytes,
            send_buffer_bytes=limits.send_buffer_bytes,
            stall_seconds=limits.stall_timeout_seconds,
        )
        extra = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in headers]
        if subprotocol:
            extra.append(("Sec-WebSocket-Protocol", subprotocol))

        def listener(request: WSUpgradeRequest) -> WSUpgradeResponseWithListener:
            response = WSUpgradeResponse.create_101_response(extra_headers=extra)
            return WSUpgradeResponseWithListener(response, socket)

        picows = WSProtocol(
            None,
            None,
            False,
            listener,
            PICOWS_LOG,
            True,  # disconnect when a callback raises
            None,  # no handshake timeout: the head is already here
            False,
            10.0,
            10.0,
            WSAutoPingStrategy.PING_WHEN_IDLE,
            True,  # answer pings (the pongs count against the send budget)
            limits.max_message_bytes,
            None,
            16 * 1024,
        )
        self.socket = socket
        transport = self.transport
        transport.set_protocol(picows)
        picows.connection_made(transport)
        buffer = picows.get_buffer(len(self._head))
        buffer[: len(self._head)] = self._head
        picows.buffer_updated(len(self._head))
        if socket.transport is None:
            raise RuntimeError("picows refused the upgrade request")
        socket.disconnected.add_done_callback(self._socket_gone)
        return socket

    def _socket_gone(self, _: object) -> None:
        self._lost = True
        self.server_state.connections.discard(self)

    def _parse(self, head: bytes) -> dict[str, Any]:
        parsed: dict[str, Any] = {"headers": []}

        class Callbacks:
            def on_url(self, url: bytes) -> None:
                parsed["url"] = parsed.get("url", b"") + url

            def on_header(self, name: bytes, value: bytes) -> None:
                parsed["headers"].append((name.lower(), value))

        parser = httptools.HttpRequestParser(Callbacks())
        with contextlib.suppress(httptools.HttpParserUpgrade):
            parser.feed_data(head)
        url = httptools.parse_url(parsed.get("url", b"/"))
        raw_path: bytes = url.path or b"/"
        subprotocols = [
            item.strip()
            for name, value in parsed["headers"]
            if name == b"sec-websocket-protocol"
            for item in value.decode("latin-1").split(",")
            if item.strip()
        ]
        assert self.transport is not None
        server = self.transport.get_extra_info("sockname")
        client = self.transport.get_extra_info("peername")
        root = self.config.root_path
        return {
            "type": "websocket",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "scheme": "wss" if self.transport.get_extra_info("sslcontext") else "ws",
            "server": tuple(server[:2]) if server else None,
            "client": tuple(client[:2]) if client else None,
            "root_path": root,
            "path": root + unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": url.query or b"",
            "headers": parsed["headers"],
            "subprotocols": subprotocols,
            "state": self.app_state.copy(),
            "extensions": {"websocket.http.response": {}, EDGE: Edge(self)},
        }

    # ASGI -----------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._scope is not None
        try:
            await self.app(self._scope, self._receive, self._send)
        except Exception:
            logger.exception("WebSocket application failed")
            if self.socket is None and not self._responded:
                self._answer(500, b"internal server error")
        else:
            if self.socket is None and not self._responded:
                logger.error("the WebSocket application returned without an answer")
                self._answer(500, b"internal server error")
        if self.socket is not None:
            await self.socket.close(1000, "")

    async def _receive(self) -> dict[str, Any]:
        if not self._connected_sent:
            self._connected_sent = True
            return {"type": "websocket.connect"}
        sink = self._asgi
        if sink is None:
            return {"type": "websocket.disconnect", "code": 1006}
        while not sink.messages:
            sink.ready.clear()
            await sink.ready.wait()
        return sink.messages.popleft()

    async def _send(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.accept":
            socket = self.upgrade(
                message.get("subprotocol"),
                list(message.get("headers") or []),
                _ASGI_LIMITS,
            )
            self._asgi = _AsgiSink()
            socket.start(self._asgi)
        elif kind == "websocket.send":
            if self.socket is None or self._asgi is None:
                raise RuntimeError("websocket.send before websocket.accept")
            if self._asgi.closed:
                raise OSError("the client has gone")
            data = message.get("bytes")
            if not self.socket.send(data if data is not None else message.get("text") or ""):
                await self.socket.close(1008, "the client is not reading its messages")
        elif kind == "websocket.close":
            if self.socket is not None:
                await self.socket.close(message.get("code") or 1000, message.get("reason") or "")
            elif not self._responded:
                self._answer(403, b"")
        elif kind == "websocket.http.response.start":
            self._start_response(message["status"], message.get("headers") or [])
        elif kind == "websocket.http.response.body":
            assert self.transport is not None
            if not self._lost:
                self.transport.write(message.get("body") or b"")
                if not message.get("more_body"):
                    self.transport.close()

    def _start_response(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        assert self.transport is not None
        self._responded = True
        if self._lost:
            return
        phrase = (
            HTTPStatus(status).phrase.encode() if status in HTTPStatus._value2member_map_ else b""
        )
        lines = [b"HTTP/1.1 %d %s" % (status, phrase)]
        lines += [name + b": " + value for name, value in headers]
        lines.append(b"connection: close")
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n")

    def _answer(self, status: int, body: bytes) -> None:
        """A complete plain-text HTTP answer, then close."""
        if self._responded or self.transport is None:
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
        ]
        self._start_response(status, headers)
        if not self._lost:
            self.transport.write(body)
            self.transport.close()
