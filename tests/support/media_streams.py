"""A Twilio Media Streams client for tests: what Twilio does on a ``<Connect><Stream>`` call.

It opens the WebSocket, sends ``connected`` and ``start``, streams the caller's audio as
20 ms mu-law frames with Twilio's sequence numbers and media timestamps, and "plays" the
reply: each ``media`` message takes its length in real time (or no time, ``instant``),
each ``mark`` is echoed once everything before it has played, and ``clear`` drops what is
queued and echoes the pending marks at once, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
from websockets.asyncio.client import ClientConnection, connect

from rt_server.emulator.audio import ulaw_decode

FRAME = 160  # bytes of mu-law in 20 ms at 8 kHz
SILENCE = b"\xff" * FRAME  # mu-law zero


@dataclass
class Call:
    """One call in progress: what was sent, and what came back."""

    ws: ClientConnection
    stream_sid: str
    call_sid: str
    instant: bool
    sequence: int = 0
    chunk: int = 0
    sent_audio: bytearray = field(default_factory=bytearray)  # caller audio sent (mu-law)
    audio: bytearray = field(default_factory=bytearray)  # reply audio received (mu-law)
    messages: list[dict[str, Any]] = field(default_factory=list)  # everything received
    echoed: list[str] = field(default_factory=list)  # marks sent back, in order
    clears: int = 0
    played_ms: float = 0.0  # reply audio played so far (updated by the player)
    closed: bool = False
    _cleared: int = 0
    _queue: deque[tuple[float, str | None]] = field(default_factory=deque)  # (ms, mark)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    # ---------------------------------------------------------------- caller -> server

    async def send(self, message: dict[str, Any]) -> None:
        self.sequence += 1
        message = {**message, "sequenceNumber": str(self.sequence), "streamSid": self.stream_sid}
        await self.ws.send(orjson.dumps(message).decode())

    async def say(self, mulaw: bytes, *, realtime: bool = False) -> None:
        """Stream ``mulaw`` as 20 ms frames (paced like a phone line when ``realtime``)."""
        started = time.monotonic()
        for start in range(0, len(mulaw), FRAME):
            frame = mulaw[start : start + FRAME].ljust(FRAME, b"\xff")
            self.sent_audio.extend(frame)
            payload = base64.b64encode(frame).decode()
            media = {
                "track": "inbound",
                "chunk": str(self.chunk + 1),
                "timestamp": str(self.chunk * 20),
                "payload": payload,
            }
            self.chunk += 1
            await self.send({"event": "media", "media": media})
            if realtime:
                # The line's clock: frame n leaves at n * 20 ms, not 20 ms after the last send.
                due = started + (start // FRAME + 1) * 0.020
                await asyncio.sleep(max(0.0, due - time.monotonic()))

    async def start(self, parameters: dict[str, str] | None = None) -> None:
        details = {
            "accountSid": "AC0",
            "streamSid": self.stream_sid,
            "callSid": self.call_sid,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": parameters or {},
        }
        await self.send({"event": "start", "start": details})

    async def hang_up(self) -> None:
        await self.send({"event": "stop", "stop": {"accountSid": "AC0", "callSid": self.call_sid}})

    # ---------------------------------------------------------------- server -> caller

    async def wait_for(self, predicate: Callable[[Call], bool], timeout: float = 10.0) -> None:
        """Until ``predicate(self)`` holds, re-checked whenever a message arrives."""
        async with asyncio.timeout(timeout):
            while not predicate(self):
                self._changed.clear()
                await self._changed.wait()

    def received(self, event: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m.get("event") == event]

    def audio_ms(self) -> float:
        return len(self.audio) / 8

    def rms(self) -> float:
        samples = ulaw_decode(bytes(self.audio)).astype(np.float64)
        return float(np.sqrt(np.mean(samples**2))) if samples.size else 0.0

    async def _read(self) -> None:
        try:
            await self._read_all()
        finally:
            self.closed = True
            self._changed.set()

    async def _read_all(self) -> None:
        async for raw in self.ws:
            message = orjson.loads(raw)
            self.messages.append(message)
            match message["event"]:
                case "media":
                    data = base64.b64decode(message["media"]["payload"])
                    self.audio.extend(data)
                    self._queue.append((len(data) / 8, None))
                case "mark":
                    self._queue.append((0.0, message["mark"]["name"]))
                case "clear":
                    self.clears += 1
                    self._cleared += 1
                    pending = [name for _, name in self._queue if name is not None]
                    self._queue.clear()
                    for name in pending:
                        await self._echo(name)
            self._arrived.set()
            self._changed.set()

    async def _play(self) -> None:
        """Twilio's playback: audio in order, in real time (or at once), marks when reached."""
        while True:
            while not self._queue:
                self._arrived.clear()
                await self._arrived.wait()
            ms, name = self._queue[0]
            if ms and not self.instant:
                cleared = self._cleared
                await asyncio.sleep(ms / 1000)  # the time this audio takes to play
                if cleared != self._cleared:
                    continue  # cleared meanwhile: that audio was cut off
            self._queue.popleft()
            self.played_ms += ms
            if name is not None:
                await self._echo(name)
            self._changed.set()

    async def _echo(self, name: str) -> None:
        self.echoed.append(name)
        await self.send({"event": "mark", "mark": {"name": name}})


@asynccontextmanager
async def twilio_call(
    url: str,
    *,
    instant: bool = True,
    parameters: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    started: bool = True,
) -> AsyncIterator[Call]:
    """A call to ``url`` (``ws://.../call``), started unless told not to (then the test
    calls :meth:`Call.start`); hung up by closing on exit."""
    async with connect(url, compression=None, max_size=None, additional_headers=headers) as ws:
        call = Call(ws, f"MZ{uuid.uuid4().hex}", f"CA{uuid.uuid4().hex}", instant)
        hello = {"event": "connected", "protocol": "Call", "version": "1.0.0"}
        await ws.send(orjson.dumps(hello).decode())
        if started:
            await call.start(parameters)
        tasks = [asyncio.create_task(call._read()), asyncio.create_task(call._play())]
        try:
            yield call
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def tone_mulaw(ms: int, frequency: float = 440.0, level: float = 0.3) -> bytes:
    """A loud tone (voiced for the VAD), as mu-law 8 kHz."""
    from rt_server.emulator.audio import ulaw_encode

    t = np.arange(8 * ms) / 8000
    pcm = (level * 32767 * np.sin(2 * np.pi * frequency * t)).astype(np.int16)
    return ulaw_encode(pcm)
