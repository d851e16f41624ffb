"""Fixtures and a tiny raw websocket client for the emulator's own tests."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator

KEY = "sk-emulator-tests"
Event = dict[str, Any]


@pytest.fixture
async def emu() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(EmulatorConfig(api_key=KEY)) as running:
        yield running


class Raw:
    """A raw Realtime client: JSON in, JSON out, and waiting for an event type."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.seen: list[Event] = []

    async def send(self, event: Event | str | bytes) -> None:
        await self.ws.send(
            event if isinstance(event, str | bytes) else orjson.dumps(event).decode()
        )

    async def recv(self, timeout: float = 5.0) -> Event:
        event: Event = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        self.seen.append(event)
        return event

    async def until(self, kind: str | Callable[[Event], bool], timeout: float = 5.0) -> list[Event]:
        """Events up to and including the first matching one."""
        match = kind if callable(kind) else (lambda e: e["type"] == kind)
        events: list[Event] = []
        async with asyncio.timeout(timeout):
            while True:
                events.append(await self.recv())
                if match(events[-1]):
                    return events

    async def append(self, audio: bytes, frame_bytes: int = 960) -> None:
        for start in range(0, len(audio), frame_bytes):
            chunk = base64.b64encode(audio[start : start + frame_bytes]).decode()
            await self.send({"type": "input_audio_buffer.append", "audio": chunk})


@asynccontextmanager
async def raw(url: str, headers: dict[str, str] | None = None) -> AsyncIterator[Raw]:
    auth = {"Authorization": f"Bearer {KEY}"} if headers is None else headers
    async with connect(url, additional_headers=auth, max_size=None) as ws:
        yield Raw(ws)


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def silence(ms: int, rate: int = 24000) -> bytes:
    return b"\x00\x00" * (rate * ms // 1000)
