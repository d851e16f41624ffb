"""Helpers for end-to-end tests: a running rt_server and a raw WebSocket client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from rt_server.backends import Backend
from rt_server.config import Settings
from rt_server.edge import server_options
from rt_server.main import create_app
from rt_server.serving import serve

Frame = dict[str, Any] | bytes


@dataclass(frozen=True)
class RunningServer:
    """An rt_server on a loopback port."""

    http_url: str
    ws_url: str
    settings: Settings


@asynccontextmanager
async def running_server(
    settings: Settings, backend: Backend | None = None, *, edge: bool = True, **options: Any
) -> AsyncIterator[RunningServer]:
    """rt_server with ``settings`` on a free loopback port (options go to create_app), on
    the fast edge as ``rt-server`` serves it, or (``edge=False``) on uvicorn's own
    WebSocket as ``uvicorn rt_server.main:app`` does."""
    protocol = server_options(settings.limits) if edge else {}
    async with serve(create_app(settings, backend, **options), **protocol) as served:
        yield RunningServer(served.http_url, f"{served.ws_url}/realtime", settings)


@asynccontextmanager
async def client(url: str, **options: Any) -> AsyncIterator[ClientConnection]:
    async with connect(url, compression=None, max_size=None, **options) as ws:
        yield ws


async def next_frame(ws: ClientConnection, timeout: float = 10.0) -> Frame:
    raw = await asyncio.wait_for(ws.recv(), timeout)
    return raw if isinstance(raw, bytes) else orjson.loads(raw)


async def until(
    ws: ClientConnection, predicate: Callable[[Frame], bool], timeout: float = 10.0
) -> tuple[Frame, list[Frame]]:
    """Read frames until one matches; return it and everything read before it."""
    seen: list[Frame] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = await next_frame(ws, timeout)
            if predicate(frame):
                return frame, seen
            seen.append(frame)


def is_type(kind: str, action: str | None = None) -> Callable[[Frame], bool]:
    def match(frame: Frame) -> bool:
        if isinstance(frame, bytes) or frame.get("type") != kind:
            return False
        return action is None or frame.get("action") == action

    return match


async def connected(ws: ClientConnection) -> dict[str, Any]:
    frame = await next_frame(ws)
    assert isinstance(frame, dict) and frame.get("action") == "connected", frame
    return frame


async def send_json(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(orjson.dumps(message).decode())


def text_of(frames: list[Frame]) -> str:
    return "".join(
        str(f["delta"]) for f in frames if isinstance(f, dict) and f.get("type") == "text_delta"
    )


def final_transcription(frame: Frame) -> bool:
    """The final ``transcription`` of a spoken turn (not one of its ``partial`` captions)."""
    return (
        isinstance(frame, dict)
        and frame.get("type") == "transcription"
        and not frame.get("partial")
    )
