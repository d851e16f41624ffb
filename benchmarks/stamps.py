"""Stamps inside rt_server for ``--trace``: the points one text turn passes, on the clock
the client stamps with (``CLOCK_MONOTONIC``), so the two can be read as one timeline.

``install(path)`` patches, in the benchmark's own rt_server process only, the places a
turn goes through: the client socket's reads (uvicorn's protocol, as each begins and
ends), the message leaving uvicorn for Starlette, reaching the translator, validated and
leaving it, each backend send, the backend socket's reads (aiohttp's
protocol), each backend event reaching the translator, and each text frame handed to the
client socket (Starlette). Each stamp is ``(monotonic_ns, label)`` appended to a list;
SIGUSR1 writes the list to ``path`` (``ns label`` per line, atomically) and clears it.
A stamp costs well under a microsecond, against the tens each stage takes.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Mapping
from pathlib import Path
from types import FrameType
from typing import Any

CLIENT_READ = "client_read"
CLIENT_PARSED = "client_parsed"  # uvicorn's data_received has returned
ASGI_RECEIVED = "asgi_received"  # uvicorn's receive() hands the message to Starlette
MESSAGE = "message"
VALIDATED = "validated"
TRANSLATED = "translated"
BACKEND_SENT = "backend_sent"
BACKEND_READ = "backend_read"
EVENT = "event:"  # + the backend event's type
WRITE_DELTA = "write:text_delta"
WRITE_TEXT = "write:text"

_TEXT_DELTA = '{"type":"text_delta"'


def install(path: Path) -> None:
    from aiohttp.client_proto import ResponseHandler
    from starlette.websockets import WebSocket
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    from rt_server.backends.base import BackendEvent
    from rt_server.backends.sockets import AiohttpConnection
    from rt_server.protocol import ClientProtocol, Handler
    from rt_server.translate import Outbox, Translator

    stamps: list[tuple[int, str]] = []
    stamp = stamps.append
    clock = time.monotonic_ns

    client_data, backend_data = (
        WebSocketsSansIOProtocol.data_received,
        ResponseHandler.data_received,
    )
    client_text, backend_event = Translator.client_text, Translator.backend_event
    backend_send, send_text = AiohttpConnection.send, WebSocket.send_text
    asgi_receive, validate = WebSocketsSansIOProtocol.receive, ClientProtocol.parse

    def on_client_data(self: Any, data: bytes) -> None:
        stamp((clock(), CLIENT_READ))
        client_data(self, data)
        stamp((clock(), CLIENT_PARSED))

    async def on_asgi_receive(self: Any) -> Any:
        message = await asgi_receive(self)
        stamp((clock(), ASGI_RECEIVED))
        return message

    def on_validate(
        self: ClientProtocol[Outbox], raw: str | bytes
    ) -> tuple[Mapping[str, Any], Handler[Outbox]]:
        parsed = validate(self, raw)
        stamp((clock(), VALIDATED))
        return parsed

    def on_backend_data(self: Any, data: bytes) -> None:
        stamp((clock(), BACKEND_READ))
        backend_data(self, data)

    def on_client_text(self: Translator, raw: str | bytes, now: float) -> Outbox:
        stamp((clock(), MESSAGE))
        out = client_text(self, raw, now)
        stamp((clock(), TRANSLATED))
        return out

    def on_backend_event(self: Translator, event: BackendEvent, now: float) -> Outbox:
        stamp((clock(), EVENT + str(event.get("type"))))
        return backend_event(self, event, now)

    async def on_backend_send(self: Any, event: Any) -> None:
        await backend_send(self, event)
        stamp((clock(), BACKEND_SENT))

    async def on_send_text(self: Any, data: str) -> None:
        stamp((clock(), WRITE_DELTA if data.startswith(_TEXT_DELTA) else WRITE_TEXT))
        await send_text(self, data)

    def dump(signum: int, frame: FrameType | None) -> None:
        lines = "".join(f"{ns} {label}\n" for ns, label in stamps)
        stamps.clear()
        partial = path.with_suffix(".partial")
        partial.write_text(lines)
        os.replace(partial, path)

    WebSocketsSansIOProtocol.data_received = on_client_data  # type: ignore[method-assign]
    WebSocketsSansIOProtocol.receive = on_asgi_receive  # type: ignore[method-assign]
    ClientProtocol.parse = on_validate  # type: ignore[method-assign, assignment]
    ResponseHandler.data_received = on_backend_data  # type: ignore[method-assign]
    Translator.client_text = on_client_text  # type: ignore[method-assign]
    Translator.backend_event = on_backend_event  # type: ignore[method-assign]
    AiohttpConnection.send = on_backend_send  # type: ignore[method-assign]
    WebSocket.send_text = on_send_text  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, dump)


def read(path: Path) -> list[tuple[int, str]]:
    """The stamps a dump wrote, in order."""
    out = []
    for line in path.read_text().splitlines():
        ns, label = line.split(" ", 1)
        out.append((int(ns), label))
    return out
