"""The ways a client reaches the emulator: through rt_server, straight to it, through the
floor relay, and (voice) through the reference relay or HAProxy.

*Through* speaks rt_server's simplified protocol on ``/realtime``; *direct* speaks the
Realtime API itself (GA events), configuring the session with the same ``session.update``
rt_server sends, so both ways ask the emulator for exactly the same work. *Relay* speaks
it as direct does, through :mod:`benchmarks.relay`.

Clients are aiohttp WebSockets: their frames are parsed in compiled code, so the load
generator takes as little as it can of the CPU it shares with what it measures.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import orjson

from benchmarks.procs import API_KEY, MODEL, Way

__all__ = [
    "VOICE_WAYS",
    "WAYS",
    "Socket",
    "Way",
    "open_gateway",
    "open_session",
    "rotated",
    "speaks_realtime",
    "until",
    "url_of",
]

WAYS: tuple[Way, ...] = ("through", "direct", "relay")
# Voice also runs the reference relay (rt_server's voice work at best, in Python) and
# HAProxy (a compiled TCP proxy: the physical floor).
VOICE_WAYS: tuple[Way, ...] = ("through", "reference", "direct", "relay", "haproxy")

# What rt_server's default profile sends (rt_server.profile), spelled out so the direct way
# does not move when the profile's code does.
_PCM = {"type": "audio/pcm", "rate": 24000}
_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "create_response": True,
    "interrupt_response": True,
}
_SESSION = {
    "type": "realtime",
    "instructions": "You are a helpful, concise voice assistant.",
    "output_modalities": ["audio"],
    "audio": {
        "input": {"format": _PCM, "transcription": {"model": "whisper-1"}, "turn_detection": _VAD},
        "output": {"format": _PCM, "voice": "alloy"},
    },
}
SESSION_UPDATE = orjson.dumps({"type": "session.update", "session": _SESSION}).decode()
_OPEN_TIMEOUT = 30.0


class Socket:
    """One client WebSocket: text frames arrive as ``str``, binary ones as ``bytes``."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._http = http
        self._ws = ws

    @classmethod
    async def open(cls, url: str, headers: dict[str, str] | None = None) -> Socket:
        http = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
        try:
            async with asyncio.timeout(_OPEN_TIMEOUT):
                ws = await http.ws_connect(url, headers=headers, compress=0, max_msg_size=0)
        except BaseException:
            await http.close()
            raise
        return cls(http, ws)

    async def send(self, data: str | bytes) -> None:
        if isinstance(data, bytes):
            await self._ws.send_bytes(data)
        else:
            await self._ws.send_str(data)

    async def recv(self) -> str | bytes:
        message = await self._ws.receive()
        if message.type is aiohttp.WSMsgType.TEXT or message.type is aiohttp.WSMsgType.BINARY:
            data: str | bytes = message.data
            return data
        raise ConnectionError(f"the server closed the socket ({self._ws.close_code})")

    async def __aiter__(self) -> AsyncIterator[str | bytes]:
        with contextlib.suppress(ConnectionError):
            while True:
                yield await self.recv()

    async def close(self) -> None:
        try:
            await self._ws.close()
        finally:
            await self._http.close()


def speaks_realtime(way: Way) -> bool:
    """Whether the client speaks the Realtime API itself (direct, or through a byte relay)
    rather than rt_server's protocol (through rt_server or the reference relay)."""
    return way not in ("through", "reference")


def rotated(i: int, ways: tuple[Way, ...] = WAYS) -> tuple[Way, ...]:
    """The ways in the order of the ``i``-th round: each way goes first, second and last
    equally often, so they share the machine's noise."""
    k = i % len(ways)
    return ways[k:] + ways[:k]


def url_of(way: Way, port: int) -> str:
    if not speaks_realtime(way):
        return f"ws://127.0.0.1:{port}/realtime"
    return f"ws://127.0.0.1:{port}/v1/realtime?model={MODEL}"


async def open_session(way: Way, port: int) -> Socket:
    """A ready session: ``connected`` through rt_server, ``session.updated`` otherwise."""
    if not speaks_realtime(way):
        ws = await Socket.open(url_of(way, port))
        await until(ws, lambda e: e.get("action") == "connected")
        return ws
    ws = await Socket.open(url_of(way, port), {"Authorization": f"Bearer {API_KEY}"})
    await until(ws, lambda e: e.get("type") == "session.created")
    await ws.send(SESSION_UPDATE)
    await until(ws, lambda e: e.get("type") == "session.updated")
    return ws


async def open_gateway(port: int) -> Socket:
    """A Realtime API client's session through rt_server's gateway, set up as direct's is."""
    ws = await Socket.open(f"ws://127.0.0.1:{port}/v1/realtime?model={MODEL}")
    await until(ws, lambda e: e.get("type") == "session.created")
    await ws.send(SESSION_UPDATE)
    await until(ws, lambda e: e.get("type") == "session.updated")
    return ws


async def until(ws: Socket, done: Any, within: float = 30.0) -> dict[str, Any]:
    """Read text frames (skipping binary ones) until ``done(event)``; fail on an error."""
    async with asyncio.timeout(within):
        while True:
            raw = await ws.recv()
            if isinstance(raw, bytes):
                continue
            event: dict[str, Any] = orjson.loads(raw)
            if event.get("type") == "error":
                raise RuntimeError(f"error while waiting: {event}")
            if done(event):
                return event
