"""Stamps inside rt_server for ``--trace``: the points one text turn passes, on the clock
the client stamps with (``CLOCK_MONOTONIC``), so the two can be read as one timeline.

``install(path)`` patches, in the benchmark's own rt_server process only, the places a
turn goes through on the fast edge: the client frame reaching rt_server's picows listener,
its payload handed to the session, the message reaching the translator, validated and
leaving it, each backend send, the backend socket's frames (picows' listener), each
backend event reaching the translator, and each text frame written to the client socket.
Each stamp is ``(monotonic_ns, label)`` appended to a list; SIGUSR1 writes the list to
``path`` (``ns label`` per line, atomically) and clears it.
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
CLIENT_PARSED = "client_parsed"  # the listener has the message's payload
ASGI_RECEIVED = "asgi_received"  # the message reaches the session
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
    from rt_server.backends.base import BackendEvent
    from rt_server.backends.sockets import PicowsConnection
    from rt_server.edge.sockets import PicowsSocket
    from rt_server.protocol import ClientProtocol, Handler
    from rt_server.session import Session
    from rt_server.translate import Outbox, Translator

    stamps: list[tuple[int, str]] = []
    stamp = stamps.append
    clock = time.monotonic_ns

    client_frame, backend_frame = PicowsSocket.on_ws_frame, PicowsConnection.on_ws_frame
    client_text, backend_event = Translator.client_text, Translator.backend_event
    backend_send, send_client = PicowsConnection.send_nowait, PicowsSocket.send
    to_session, validate = Session.client_frame, ClientProtocol.parse

    def on_client_frame(self: Any, transport: Any, frame: Any) -> None:
        stamp((clock(), CLIENT_READ))
        client_frame(self, transport, frame)

    def on_to_session(self: Session, data: str | bytes) -> None:
        stamp((clock(), CLIENT_PARSED))
        stamp((clock(), ASGI_RECEIVED))
        to_session(self, data)

    def on_validate(
        self: ClientProtocol[Outbox], raw: str | bytes
    ) -> tuple[Mapping[str, Any], Handler[Outbox]]:
        parsed = validate(self, raw)
        stamp((clock(), VALIDATED))
        return parsed

    def on_backend_frame(self: Any, transport: Any, frame: Any) -> None:
        stamp((clock(), BACKEND_READ))
        backend_frame(self, transport, frame)

    def on_client_text(self: Translator, raw: str | bytes, now: float) -> Outbox:
        stamp((clock(), MESSAGE))
        out = client_text(self, raw, now)
        stamp((clock(), TRANSLATED))
        return out

    def on_backend_event(self: Translator, event: BackendEvent, now: float) -> Outbox:
        stamp((clock(), EVENT + str(event.get("type"))))
        return backend_event(self, event, now)

    def on_backend_send(self: Any, event: Any) -> None:
        backend_send(self, event)
        stamp((clock(), BACKEND_SENT))

    def on_send_client(self: Any, frame: str | bytes) -> bool:
        if isinstance(frame, str):
            stamp((clock(), WRITE_DELTA if frame.startswith(_TEXT_DELTA) else WRITE_TEXT))
        return send_client(self, frame)

    def dump(signum: int, frame: FrameType | None) -> None:
        lines = "".join(f"{ns} {label}\n" for ns, label in stamps)
        stamps.clear()
        partial = path.with_suffix(".partial")
        partial.write_text(lines)
        os.replace(partial, path)

    PicowsSocket.on_ws_frame = on_client_frame  # type: ignore[method-assign]
    Session.client_frame = on_to_session  # type: ignore[method-assign]
    ClientProtocol.parse = on_validate  # type: ignore[method-assign, assignment]
    PicowsConnection.on_ws_frame = on_backend_frame  # type: ignore[method-assign]
    Translator.client_text = on_client_text  # type: ignore[method-assign]
    Translator.backend_event = on_backend_event  # type: ignore[method-assign]
    PicowsConnection.send_nowait = on_backend_send  # type: ignore[method-assign]
    PicowsSocket.send = on_send_client  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, dump)


def read(path: Path) -> list[tuple[int, str]]:
    """The stamps a dump wrote, in order."""
    out = []
    for line in path.read_text().splitlines():
        ns, label = line.split(" ", 1)
        out.append((int(ns), label))
    return out
