"""EXPERIMENTS: candidate hot-path changes, measured without touching rt_server's sources.

``python -m benchmarks --scenario voice --experiment NAME[,NAME]`` starts rt_server through
:mod:`benchmarks.server`, which calls :func:`apply` before anything runs: the patch lives
in that one benchmark process only. Each experiment is a proposal for rt_server's code,
written as the smallest monkeypatch that shows its effect; the README lists what each
one measured. (Settings need no experiment: ``--env BACKEND_SOCKET=sdk``.)

Proposals measured and adopted since: the aiohttp backend socket (now the default,
``BACKEND_SOCKET``), plain-integer traffic counters (``rt_server.metrics.Traffic``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


def _around_uvicorn_run(before: Callable[[], None] | None = None, **options: Any) -> None:
    """``uvicorn.run`` as ``rt-server`` calls it, with ``before()`` run first (once the app
    is built) and ``options`` overriding its keyword arguments."""
    import uvicorn

    original = uvicorn.run

    def run(*args: Any, **kwargs: Any) -> None:
        if before is not None:
            before()
        original(*args, **{**kwargs, **options})

    uvicorn.run = run


def _uvicorn_ws(implementation: str) -> Callable[[], None]:
    """uvicorn serves client WebSockets with ``implementation`` instead of its default
    (``websockets-sansio``), which ``rt-server`` leaves as it is."""
    return lambda: _around_uvicorn_run(ws=implementation)


def _ws_fast_send() -> None:
    """Client frames built in one ``struct.pack`` and written with the payload, instead of
    through websockets' ``Frame.serialize`` (dataclass, checks, ``BytesIO``) and
    ``data_to_send``, while the connection is open and no extension is in use."""
    import struct

    from uvicorn.protocols.utils import ClientDisconnected
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.protocol import State

    original = WebSocketsSansIOProtocol.send
    short, medium, long = struct.Struct("!BB"), struct.Struct("!BBH"), struct.Struct("!BBQ")

    async def send(self: Any, message: Any) -> None:
        conn = self.conn
        if (
            message["type"] != "websocket.send"
            or not self.handshake_complete
            or self.close_sent
            or self.initial_response is not None
            or conn.state is not State.OPEN
            or conn.extensions
            or conn.expect_continuation_frame
        ):
            return await original(self, message)
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        data = message.get("bytes")
        if data is not None:
            head = 0x82
        elif (text := message.get("text")) is not None:
            data, head = text.encode(), 0x81
        else:
            return await original(self, message)
        size = len(data)
        if size < 126:
            header = short.pack(head, size)
        elif size < 65536:
            header = medium.pack(head, 126, size)
        else:
            header = long.pack(head, 127, size)
        self.transport.write(header + data)

    WebSocketsSansIOProtocol.send = send  # type: ignore[method-assign]


def _backend_one_write() -> None:
    """The events one client message becomes (``conversation.item.create`` and
    ``response.create`` for a ``user_message``) written to the backend in one system call
    instead of one each, on the aiohttp socket: the backend wakes once for both."""
    from rt_server import session as session_module
    from rt_server.backends.sockets import AiohttpConnection

    class _Corked:
        def __init__(self, transport: Any) -> None:
            self.transport = transport
            self.chunks: list[bytes] = []

        def write(self, data: bytes) -> None:
            self.chunks.append(data)

        def is_closing(self) -> bool:
            return bool(self.transport.is_closing())

    original = session_module.Session._send_backend

    async def send_backend(self: Any, events: list[Any], *, wait: bool = True) -> None:
        conn = self._conn
        if len(events) < 2 or not self._live.is_set() or not isinstance(conn, AiohttpConnection):
            return await original(self, events, wait=wait)
        writer = conn._ws._writer
        corked = _Corked(writer.transport)
        writer.transport = corked  # type: ignore[assignment]
        try:
            for event in events:
                await conn.send(event)
        finally:
            writer.transport = corked.transport
            if corked.chunks:
                corked.transport.write(b"".join(corked.chunks))

    session_module.Session._send_backend = send_backend  # type: ignore[method-assign]


def _gc_tuned() -> None:
    """What is alive at start-up moved out of the collector's sight (``gc.freeze``), and
    the youngest generation collected every 20000 allocations instead of every 700: the
    per-frame objects are freed by reference counting, not by the collector."""
    import gc

    def tune() -> None:
        gc.collect()
        gc.freeze()
        gc.set_threshold(20_000, 20, 20)

    _around_uvicorn_run(before=tune)


def _yield_to_client(when_buffered: bool) -> Callable[[], None]:
    """The backend pump lets the client writer run as soon as an event gave the client a
    frame, instead of going on with the backend events already buffered (a burst of reply
    audio), which would keep the frame waiting until the burst is translated. Wraps
    ``Session._apply`` (yielding only when the backend pump applies, ``wait=False``)
    rather than copying ``Session._from_backend``, so the experiment follows the pump as
    it is. With ``when_buffered`` it yields only when aiohttp's reader already holds the
    backend's next message, so an event that arrived alone costs no extra task step; that
    reads a private attribute (``ClientWebSocketResponse._reader._buffer``): a
    measurement, not a proposal."""
    return lambda: _patch_yield_to_client(when_buffered)


def _patch_yield_to_client(when_buffered: bool) -> None:
    import asyncio

    from rt_server import session as session_module

    original_apply = session_module.Session._apply

    def buffered(session: Any) -> bool:
        reader = getattr(getattr(session._conn, "_ws", None), "_reader", None)
        return bool(getattr(reader, "_buffer", None))

    async def apply(self: Any, out: Any, *, wait: bool = True) -> None:
        await original_apply(self, out, wait=wait)
        if wait or not self._outgoing.frames:
            return
        if not when_buffered or (out.client and buffered(self)):
            await asyncio.sleep(0)

    session_module.Session._apply = apply  # type: ignore[method-assign]


def _inline_send() -> None:
    """Frames for the client sent by the pump that made them, when the client writer is
    not in the middle of a send, instead of handed to the writer task: one task switch
    less per frame. (A proposal would also have to keep the writer's back-pressure rule:
    inline, a client that stops reading stalls the backend pump.)"""
    from rt_server import session as session_module

    busy: set[int] = set()
    original_drain = session_module._Outgoing.drain
    original_apply = session_module.Session._apply

    async def drain(self: Any, websocket: Any) -> None:
        busy.add(id(self))
        try:
            await original_drain(self, websocket)
        finally:
            busy.discard(id(self))

    async def apply(self: Any, out: Any, *, wait: bool = True) -> None:
        await original_apply(self, out, wait=wait)
        outgoing = self._outgoing
        if out.client and outgoing.frames and id(outgoing) not in busy:
            await outgoing.drain(self._ws)

    session_module._Outgoing.drain = drain  # type: ignore[method-assign]
    session_module.Session._apply = apply  # type: ignore[method-assign]


def _batch_writes(first_alone: bool) -> Callable[[], None]:
    """The frames the client writer finds queued go out in one write (one system call,
    one wake-up of the client), instead of one write each: every frame but the last is
    sent with a ``more`` hint, and uvicorn's protocol keeps a hinted frame in its
    output buffer until a frame without the hint flushes them all. With ``first_alone``
    the first frame of each drain is written at once and only the rest are joined, so
    the first ``text_delta`` does not wait for the frames queued behind it."""
    return lambda: _patch_batch_writes(first_alone)


def _patch_batch_writes(first_alone: bool) -> None:
    from uvicorn.protocols.utils import ClientDisconnected
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.exceptions import InvalidState

    from rt_server import session as session_module

    original_send = WebSocketsSansIOProtocol.send

    async def send(self: Any, message: Any) -> None:
        if not (
            message.get("more")
            and message["type"] == "websocket.send"
            and self.handshake_complete
            and not self.close_sent
            and self.initial_response is None
        ):
            await original_send(self, message)
            return
        await self.writable.wait()
        if self.disconnected:
            raise ClientDisconnected()
        try:
            if (data := message.get("bytes")) is not None:
                self.conn.send_binary(data)
            else:
                self.conn.send_text(message["text"].encode())
        except InvalidState:
            raise ClientDisconnected() from None

    async def drain(self: Any, websocket: Any) -> None:
        frames, alone = self.frames, first_alone
        while frames:
            frame = frames.popleft()
            self.size -= len(frame)
            key = "bytes" if isinstance(frame, bytes) else "text"
            more = bool(frames) and not alone
            alone = False
            await websocket.send({"type": "websocket.send", key: frame, "more": more})

    WebSocketsSansIOProtocol.send = send  # type: ignore[method-assign]
    session_module._Outgoing.drain = drain  # type: ignore[method-assign]


def _ws_fast_receive() -> None:
    """Client frames parsed by hand on the common path: a complete, final, masked text or
    binary frame with no reserved bits, on an open connection with no fragmented message
    in progress, is unmasked (websockets' C ``apply_mask``) and queued as the ASGI
    message, without websockets' generator-based parser. Every other frame (control
    frames, fragments, unmasked or oversized frames, invalid UTF-8) is handed to
    websockets whole, so its parser always starts at a frame boundary and answers
    protocol errors as before. Bytes that arrived before the handshake completed keep
    the connection on websockets' parser throughout."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from websockets.frames import apply_mask  # type: ignore[attr-defined]
    from websockets.protocol import State

    fast_max = 256 * 1024  # larger frames go to websockets as they arrive, not buffered here
    original_data_received = WebSocketsSansIOProtocol.data_received
    original_send = WebSocketsSansIOProtocol.send

    async def send(self: Any, message: Any) -> None:
        await original_send(self, message)
        if (
            message["type"] == "websocket.accept"
            and self.handshake_complete
            and not getattr(self, "_rt_spoiled", False)
            and not self.conn.reader.buffer
        ):
            self._rt_fast, self._rt_head, self._rt_through = True, b"", 0

    def data_received(self: Any, data: bytes) -> None:
        if not getattr(self, "_rt_fast", False):
            if self.handshake_initiated or b"\r\n\r\n" in data[:-4]:
                self._rt_spoiled = True  # frame bytes may be inside websockets' parser
            original_data_received(self, data)
            return
        if self._rt_through:
            take = min(self._rt_through, len(data))
            self._rt_through -= take
            original_data_received(self, data[:take])
            data = data[take:]
            if not data:
                return
        buf = self._rt_head + data if self._rt_head else data
        self._rt_head = b""
        n, pos, conn, queue = len(buf), 0, self.conn, self.queue
        while n - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length, head = b1 & 0x7F, 2
            if length == 126:
                if n - pos < 4:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 4]), 4
            elif length == 127:
                if n - pos < 10:
                    break
                length, head = int.from_bytes(buf[pos + 2 : pos + 10]), 10
            head += 4 if b1 & 0x80 else 0
            end = pos + head + length
            simple = (
                (b0 == 0x82 or b0 == 0x81)
                and b1 & 0x80
                and length <= fast_max
                and not self.frames
                and not self.close_sent
                and conn.state is State.OPEN
                and length <= (conn.max_size or length)
            )
            if simple:
                if end > n:
                    break
                payload = apply_mask(buf[pos + head : end], buf[pos + head - 4 : pos + head])
                if b0 == 0x82:
                    queue.put_nowait({"type": "websocket.receive", "bytes": payload})
                else:
                    try:
                        text = payload.decode()
                    except UnicodeDecodeError:
                        original_data_received(self, buf[pos:end])  # websockets fails it: 1007
                        pos = end
                        continue
                    queue.put_nowait({"type": "websocket.receive", "text": text})
                if not self.read_paused:
                    self.read_paused = True
                    self.transport.pause_reading()
                pos = end
                continue
            take = min(end, n)
            self._rt_through = end - take
            original_data_received(self, buf[pos:take])
            pos = take
        if pos < n:
            self._rt_head = buf[pos:]

    WebSocketsSansIOProtocol.send = send  # type: ignore[method-assign]
    WebSocketsSansIOProtocol.data_received = data_received  # type: ignore[method-assign]


def _validate_python() -> None:
    """Client text frames decoded by orjson, then validated by pydantic as Python objects
    (``validate_python``), instead of pydantic's ``validate_json`` doing both. Errors are
    not mapped the same way (a measurement of the common path, not a proposal)."""
    import orjson

    from rt_server.protocol import ClientProtocol

    def parse(self: Any, raw: str | bytes) -> Any:
        message = self._adapter.validate_python(orjson.loads(raw))
        return message, self._handlers[message[self.tag]]

    ClientProtocol.parse = parse  # type: ignore[method-assign]


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "ws_legacy": _uvicorn_ws("websockets"),  # uvicorn's legacy websockets protocol
    "ws_fast_send": _ws_fast_send,
    "backend_one_write": _backend_one_write,
    "gc_tuned": _gc_tuned,
    "yield_to_client": _yield_to_client(when_buffered=False),
    "yield_when_buffered": _yield_to_client(when_buffered=True),
    "inline_send": _inline_send,
    "batch_writes": _batch_writes(first_alone=False),
    "batch_writes_after_first": _batch_writes(first_alone=True),
    "ws_fast_receive": _ws_fast_receive,
    "validate_python": _validate_python,
}


def apply(name: str) -> None:
    for part in name.split(","):
        if part not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {part!r}; known: {', '.join(EXPERIMENTS)}")
        print(f"EXPERIMENT applied in this rt_server process only: {part}", flush=True)
        EXPERIMENTS[part]()
