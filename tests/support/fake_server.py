"""A small fake rt_server for client tests: real websockets on loopback, canned replies.

It speaks the client protocol the way the real server does (``connected`` first, replies as
audio + ``text_delta`` + ``text_done``), records what it was sent, and has failure hooks.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import orjson
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from rt_server.dialects.realtime import ErrorMessage

REPLY_AUDIO = (b"\x00\x10" * 480) * 5  # 100 ms of a non-silent square-ish wave


@dataclass
class FakeServer:
    token: str | None = None
    greeting: str = "Hello from the fake."
    fail_first: ErrorMessage | None = None  # sent instead of ``connected``, then a 1008 close
    silent: bool = False  # never send ``connected``
    received: list[str | bytes] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    url: str = ""

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        self.headers.append({k.lower(): v for k, v in request.headers.raw_items()})
        if (
            self.token is not None
            and request.headers.get("Authorization") != f"Bearer {self.token}"
        ):
            return connection.respond(401, "unauthorized\n")
        return None

    async def _handle(self, ws: ServerConnection) -> None:
        if self.fail_first is not None:
            await ws.send(orjson.dumps(self.fail_first).decode())
            await ws.close(1008, "policy")
            return
        if not self.silent:
            await _send(ws, {"type": "control", "action": "connected", "greeting": self.greeting})
        audio = 0
        async for frame in ws:
            self.received.append(frame)
            if isinstance(frame, bytes):
                if audio == 0:
                    await _send(ws, {"type": "control", "action": "speech_started"})
                audio += len(frame)
                continue
            message = orjson.loads(frame)
            if message["type"] == "user_message":
                if message["text"] == "close":
                    await ws.close(4000, "asked to close")
                    return
                if message["text"] == "fail":
                    error = {"type": "error", "code": "backend_error", "message": "it broke"}
                    await _send(ws, error)
                    continue
                if message["text"] == "bye":
                    await ws.close(1000)
                    return
                await _reply(ws, f"You said: {message['text']}.", "r1")
            elif message == {"type": "control", "action": "commit"}:
                await _send(ws, {"type": "transcription", "id": "u1", "text": f"{audio} bytes"})
                await _reply(ws, "I heard you.", "r2")
                audio = 0


async def _send(ws: ServerConnection, message: object) -> None:
    await ws.send(orjson.dumps(message).decode())


async def _reply(ws: ServerConnection, text: str, item: str) -> None:
    id = f"{item}-0"
    await ws.send(REPLY_AUDIO)
    for word in text.split(" "):
        await _send(ws, {"type": "text_delta", "id": id, "delta": word + " "})
        await ws.send(REPLY_AUDIO)
    await _send(ws, {"type": "control", "action": "text_done", "id": id})


@asynccontextmanager
async def running(fake: FakeServer) -> AsyncIterator[FakeServer]:
    async with serve(
        fake._handle, "127.0.0.1", 0, process_request=fake._check, compression=None
    ) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        fake.url = f"ws://127.0.0.1:{port}/realtime"
        yield fake
