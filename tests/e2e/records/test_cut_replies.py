"""A reply cut short (interrupt, barge-in, the shutdown grace, the client leaving) is
recorded as what the client was sent of it, marked ``cut`` (issue 19, item 9)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from websockets.exceptions import ConnectionClosed

from rt_server.config import Limits
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.main import create_app
from rt_server.runtime import app_runtime
from rt_server.serving import serve
from tests.conftest import API_KEY, openai_settings
from tests.e2e.records.conftest import Live, with_records
from tests.support.harness import client, connected, is_type, send_json, until

STORY = "please tell me a long story about " + "many green hills " * 30


@pytest.fixture
async def slow_emulator() -> AsyncIterator[RunningEmulator]:
    """Replies at the pace they would play: a reply lasts long enough to be cut."""
    async with run_emulator(EmulatorConfig(api_key=API_KEY, pace="realtime")) as running:
        yield running


@asynccontextmanager
async def recorded(
    emulator: RunningEmulator, tmp_path: Path
) -> AsyncIterator[tuple[Live, FastAPI]]:
    url = f"sqlite+aiosqlite:///{tmp_path}/records.sqlite3"
    limits = Limits(backend_connect_timeout=5.0, max_audio_realtime_factor=1000.0)
    settings = with_records(openai_settings(emulator.http_url, limits=limits), url)
    app = create_app(settings)
    async with serve(app) as served:
        live = Live(served.http_url, f"{served.ws_url}/realtime", app_runtime(app).records)
        yield live, app


async def assistant_turns(live: Live) -> list[dict[str, Any]]:
    await live.settle()
    async with live.api() as api:
        [summary] = (await api.get("/api/conversations")).json()["conversations"]
        talk = (await api.get(f"/api/conversations/{summary['id']}")).json()
        markdown = (await api.get(f"/api/conversations/{summary['id']}/transcript.md")).text
    turns = [t for t in talk["turns"] if t["role"] == "assistant"]
    assert ("(cut)" in markdown) is any(t["cut"] for t in turns)
    return turns


async def part_of_the_story(ws: Any) -> str:
    """Ask for the story; the text the client has once some of it (and its audio) came."""
    await send_json(ws, {"type": "user_message", "text": STORY})
    text = ""
    while len(text.split()) < 4:
        frame, _ = await until(ws, is_type("text_delta"))
        assert isinstance(frame, dict)
        text += frame["delta"]
    return text


def is_cut_story(turn: dict[str, Any], heard: str) -> bool:
    full = f"You said: {STORY.strip()}."
    return turn["cut"] and turn["text"].startswith(heard) and full.startswith(turn["text"])


async def test_an_interrupted_reply_is_recorded_as_cut(
    slow_emulator: RunningEmulator, tmp_path: Path
) -> None:
    async with recorded(slow_emulator, tmp_path) as (live, _):
        async with client(live.ws_url) as ws:
            await connected(ws)
            heard = await part_of_the_story(ws)
            await send_json(ws, {"type": "control", "action": "interrupt"})
            await until(ws, is_type("control", "interrupted"))  # after the cut part's text_done
            await send_json(ws, {"type": "user_message", "text": "next"})
            _, _ = await until(ws, is_type("control", "text_done"), timeout=30)
        cut, answered = await assistant_turns(live)
    assert is_cut_story(cut, heard)
    assert answered == answered | {"text": "You said: next.", "cut": False}


async def test_a_reply_the_shutdown_grace_ends_is_recorded_as_cut(
    slow_emulator: RunningEmulator, tmp_path: Path
) -> None:
    async with recorded(slow_emulator, tmp_path) as (live, app):
        async with client(live.ws_url) as ws:
            await connected(ws)
            heard = await part_of_the_story(ws)
            for session in app_runtime(app).sessions:
                session.shutdown(0.2)  # what SIGTERM does, with a short grace
            with contextlib.suppress(ConnectionClosed):
                async for _ in ws:  # the rest of what was sent, then the close
                    pass
            assert ws.close_code == 1001
        [cut] = await assistant_turns(live)
    assert is_cut_story(cut, heard)


async def test_a_reply_the_client_leaves_is_recorded_as_cut(
    slow_emulator: RunningEmulator, tmp_path: Path
) -> None:
    async with recorded(slow_emulator, tmp_path) as (live, _):
        async with client(live.ws_url) as ws:
            await connected(ws)
            heard = await part_of_the_story(ws)
        [cut] = await assistant_turns(live)
    assert is_cut_story(cut, heard)
