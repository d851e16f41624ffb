"""The ``/monitor`` feed end to end (before the call console took ``/logs``, it was there):
admin token, every dialect, and a monitor that never reads."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from websockets.exceptions import InvalidStatus

from rt_server.config import Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.emulator.config import Rule
from rt_server.emulator.config import ToolCall as ScriptedCall
from rt_server.main import create_app
from rt_server.monitor import Monitor
from rt_server.runtime import app_runtime
from rt_server.serving import serve
from rt_server.tools import ToolRegistry
from tests.conftest import openai_settings
from tests.e2e.twilio.test_calls import FAST
from tests.support.harness import Frame, client, connected, is_type, send_json, until
from tests.support.media_streams import SILENCE, tone_mulaw, twilio_call

ADMIN = "admin-secret-token"

orders = ToolRegistry()


@orders.tool(description="Look up an order by number.")
async def lookup_order(number: str) -> str:
    return f"order {number} has shipped"


@asynccontextmanager
async def rt_server(settings: Settings, **options: Any) -> AsyncIterator[tuple[str, FastAPI]]:
    """rt_server on a free port; yields its ws:// base URL and the app (for its monitor)."""
    app = create_app(settings, **options)
    async with serve(app) as served:
        yield served.ws_url, app


def monitor_of(app: FastAPI) -> Monitor:
    return app_runtime(app).monitor


def settings_for(emulator: RunningEmulator, **changes: object) -> Settings:
    return openai_settings(emulator.http_url, limits=FAST, admin_token=ADMIN, **changes)


def is_event(kind: str, session: str | None = None) -> Any:
    def match(frame: Frame) -> bool:
        if isinstance(frame, bytes) or frame.get("type") != kind:
            return False
        return session is None or frame.get("session") == session

    return match


async def test_the_feed_needs_the_admin_token(emulator: RunningEmulator) -> None:
    async with rt_server(openai_settings(emulator.http_url)) as (base, _):
        with pytest.raises(InvalidStatus) as off:
            async with client(f"{base}/monitor", additional_headers=_bearer(ADMIN)):
                pass
        assert off.value.response.status_code == 403  # no ADMIN_TOKEN: no monitor at all
    async with rt_server(settings_for(emulator)) as (base, app):
        for wrong in ({}, _bearer("not-the-token")):
            with pytest.raises(InvalidStatus) as refused:
                async with client(f"{base}/monitor", additional_headers=wrong):
                    pass
            assert refused.value.response.status_code == 401
        async with client(f"{base}/monitor", additional_headers=_bearer(ADMIN)) as header:
            hello, _ = await until(header, is_event("monitor"))
        async with client(f"{base}/monitor?token={ADMIN}") as query:
            await until(query, is_event("monitor"))
        assert isinstance(hello, dict) and hello["sessions"] == []
        async with asyncio.timeout(5):
            while monitor_of(app).feeds:  # each feed is let go when its monitor leaves
                await asyncio.sleep(0.01)


async def test_the_monitor_sees_every_dialect_with_transcripts_and_tools() -> None:
    rule = Rule(match=r"\[speech", tool_call=ScriptedCall("lookup_order", {"number": "42"}))
    async with run_emulator(EmulatorConfig(rules=(rule,))) as emulator:
        settings = settings_for(emulator)
        async with (
            rt_server(settings, tools=orders) as (base, _),
            client(f"{base}/monitor?token={ADMIN}") as logs,
        ):
            await until(logs, is_event("monitor"))
            async with client(f"{base}/realtime") as ws:
                await connected(ws)
                await send_json(ws, {"type": "user_message", "text": "typed hello"})
                await until(ws, is_type("control", "text_done"))
            async with client(f"{base}/ws/conversation") as ws:
                await until(ws, lambda f: isinstance(f, dict) and f["type"] == "session_ready")
                await send_json(ws, {"type": "text", "text": "conversation hello"})
                await until(ws, lambda f: isinstance(f, dict) and f["type"] == "response_done")
            async with twilio_call(f"{base}/call") as call:
                await call.say(tone_mulaw(600) + SILENCE * 50)
                await call.wait_for(lambda c: c.audio_ms() > 1000)  # the tool's answer, spoken

            by_dialect: dict[str, list[dict[str, Any]]] = {}
            ended = 0
            while ended < 3:
                frame, _ = await until(logs, lambda f: True)
                assert isinstance(frame, dict)
                by_dialect.setdefault(frame["dialect"], []).append(frame)
                ended += frame["type"] == "session_ended"

    for dialect, frames in by_dialect.items():
        assert len({f["session"] for f in frames}) == 1, dialect
        assert frames[0]["type"] == "session_started"
        assert frames[-1]["type"] == "session_ended"
        assert frames[0]["data"]["backend"] == "openai"
    texts = {
        d: [f["data"]["text"] for f in by_dialect[d] if f["type"] == "assistant_text"]
        for d in by_dialect
    }
    assert texts["realtime"] == ["You said: typed hello."]
    assert texts["conversation"] == ["You said: conversation hello."]
    call_kinds = [f["type"] for f in by_dialect["twilio"]]
    for kind in ("speech_started", "user_transcript", "tool_call", "tool_result", "usage"):
        assert kind in call_kinds
    [tool_call] = [f["data"] for f in by_dialect["twilio"] if f["type"] == "tool_call"]
    [tool_result] = [f["data"] for f in by_dialect["twilio"] if f["type"] == "tool_result"]
    assert tool_call["name"] == "lookup_order"
    assert orjson.loads(tool_call["arguments"]) == {"number": "42"}
    assert "order 42 has shipped" in tool_result["output"]
    assert texts["twilio"][-1].startswith("The lookup_order tool says:")
    [transcript] = [f["data"] for f in by_dialect["twilio"] if f["type"] == "user_transcript"]
    assert transcript["text"].startswith("[speech ")


async def test_a_monitor_that_never_reads_does_not_slow_the_calls(
    emulator: RunningEmulator,
) -> None:
    big = replace(
        FAST,
        max_message_bytes=3_000_000,
        send_buffer_bytes=16_000_000,
        max_text_bytes_per_second=16_000_000,  # 2 MB typed turns, one after another
    )
    settings = replace(settings_for(emulator), monitor_buffer=16, limits=big)
    async with rt_server(settings) as (base, app):
        stalled = await _never_reading_monitor(base, f"/monitor?token={ADMIN}")
        # The reading monitor buffers whatever arrives (no client-side backpressure).
        async with client(f"{base}/monitor?token={ADMIN}", max_queue=None) as logs:
            try:
                await until(logs, is_event("monitor"))
                # Replies with 2 MB of transcript each, until every buffer on the way to the
                # stalled monitor (socket buffers grow to megabytes) is full and its feed drops.
                feeds = monitor_of(app).feeds
                word = "x" * 2_000_000
                async with client(f"{base}/realtime") as ws:
                    await connected(ws)
                    for _ in range(40):
                        if any(feed.dropped_total for feed in feeds):
                            break
                        await send_json(ws, {"type": "user_message", "text": word})
                        await until(ws, is_type("control", "text_done"))
                [slow] = [feed for feed in feeds if feed.dropped_total]
                dropped_before_calls = slow.dropped_total

                async def one(number: int) -> float:
                    async with twilio_call(f"{base}/call") as call:
                        await call.say(tone_mulaw(300 + 40 * number) + SILENCE * 50)
                        await call.wait_for(lambda c: c.audio_ms() > 1000)
                    return call.audio_ms()

                async with asyncio.timeout(15):
                    heard = await asyncio.gather(*(one(n) for n in range(5)))
                assert all(ms > 1000 for ms in heard)

                # The reading monitor saw every call from start to end, nothing dropped.
                ended: set[str] = set()
                seen: list[dict[str, Any]] = []
                while len(ended) < 6:
                    frame, _ = await until(logs, lambda f: True)
                    assert isinstance(frame, dict) and frame["type"] != "dropped"
                    seen.append(frame)
                    if frame["type"] == "session_ended":
                        ended.add(frame["session"])
                calls = {f["session"] for f in seen if f["dialect"] == "twilio"}
                assert len(calls) == 5
                assert len(feeds) == 2
                assert slow.dropped_total > dropped_before_calls  # stalled throughout
                assert len(slow.queue) <= 16
            finally:
                stalled.close()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _never_reading_monitor(base: str, path: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads again."""
    host, port = base.removeprefix("ws://").split(":")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, fixed
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, (host, int(port)))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    response = b""
    while b"\r\n\r\n" not in response:
        response += await loop.sock_recv(sock, 1)  # byte by byte: read nothing past it
    assert response.startswith(b"HTTP/1.1 101"), response
    return sock
