"""The two ways a client reaches the emulator: through rt_server, or straight to it.

*Through* speaks rt_server's simplified protocol on ``/realtime``; *direct* speaks the
Realtime API itself (GA events), configuring the session with the same ``session.update``
rt_server sends, so both ways ask the emulator for exactly the same work.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal, TypeAlias

import orjson
from websockets.asyncio.client import ClientConnection, connect

from benchmarks.procs import API_KEY, MODEL

Way: TypeAlias = Literal["through", "direct"]
WAYS: tuple[Way, Way] = ("through", "direct")

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
_OPTIONS: dict[str, Any] = {
    "compression": None,
    "max_size": None,
    "ping_interval": None,
    "open_timeout": 30.0,
    "close_timeout": 2.0,
}


def url_of(way: Way, port: int) -> str:
    if way == "through":
        return f"ws://127.0.0.1:{port}/realtime"
    return f"ws://127.0.0.1:{port}/v1/realtime?model={MODEL}"


async def open_session(way: Way, port: int) -> ClientConnection:
    """A ready session: ``connected`` through rt_server, ``session.updated`` direct."""
    if way == "through":
        ws = await connect(url_of(way, port), **_OPTIONS)
        await until(ws, lambda e: e.get("action") == "connected")
        return ws
    headers = {"Authorization": f"Bearer {API_KEY}"}
    ws = await connect(url_of(way, port), additional_headers=headers, **_OPTIONS)
    await until(ws, lambda e: e.get("type") == "session.created")
    await ws.send(SESSION_UPDATE)
    await until(ws, lambda e: e.get("type") == "session.updated")
    return ws


async def until(ws: ClientConnection, done: Any, within: float = 30.0) -> dict[str, Any]:
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
