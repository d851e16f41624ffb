"""Reconnects restore the whole conversation: messages, spoken turns, function calls and
their outputs, in order, so the backend's context after a drop equals the one before."""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest
from websockets.asyncio.client import ClientConnection

from rt_server.config import Limits
from rt_server.emulator import EmulatorConfig, Faults, RunningEmulator, run_emulator
from tests.conftest import API_KEY, azure_settings, openai_settings
from tests.e2e.test_assistant import RULES, tools
from tests.support.harness import (
    client,
    connected,
    final_transcription,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)


def spoken_turn(ms: int = 600) -> bytes:
    """A loud tone (speech to the emulator's VAD) and the silence that ends the turn."""
    t = np.arange(24 * ms) / 24000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    return tone + bytes(48 * 800)


def context(items: list[dict[str, Any]]) -> list[tuple[str, ...]]:
    """What the model knows of each item, whatever its shape (typed or spoken text, text or
    audio reply): role and words, or the call and its output."""
    known: list[tuple[str, ...]] = []
    for item in items:
        if item["type"] == "message":
            parts = item.get("content") or []
            words = " ".join(str(p.get("text") or p.get("transcript") or "") for p in parts)
            known.append(("message", item["role"], words))
        elif item["type"] == "function_call":
            known.append(("function_call", item["call_id"], item["name"], item["arguments"]))
        else:
            known.append(("function_call_output", item["call_id"], item["output"]))
    return known


async def answered(ws: ClientConnection, text: str | None = None) -> None:
    if text is not None:
        await send_json(ws, {"type": "user_message", "text": text})
    await until(ws, is_type("control", "text_done"))


@pytest.mark.parametrize("path", ["openai", "azure-preview"])
async def test_a_dropped_backend_gets_every_item_back_in_order(path: str) -> None:
    async with run_emulator(EmulatorConfig(api_key=API_KEY, rules=RULES)) as emulator:
        limits = Limits(backend_connect_timeout=5.0, max_audio_realtime_factor=1000.0)
        if path == "openai":
            settings = openai_settings(emulator.http_url, limits=limits)
        else:  # the beta protocol: the same items, in their beta shape
            settings = azure_settings(
                emulator.http_url, azure_api_version="2025-04-01-preview", limits=limits
            )
        async with running_server(settings, tools=tools) as server, client(server.ws_url) as ws:
            await connected(ws)
            await answered(ws, "my name is Ada")
            await answered(ws, "what is the weather?")  # a call, its output, the reply
            audio = spoken_turn()
            for start in range(0, len(audio), 4800):
                await ws.send(audio[start : start + 4800])
            await until(ws, final_transcription)
            await answered(ws)
            [first] = emulator.state.connections
            before = await items_over_http(emulator, first)
            await close_over_http(emulator, first)
            error, _ = await until(ws, is_type("error"))
            assert isinstance(error, dict) and error["code"] == "backend_closed"
            error, _ = await until(ws, is_type("error"))
            assert isinstance(error, dict) and error["code"] == "backend_reconnected"
            [second] = emulator.state.connections
            after = emulator.state.items(second)
    kinds = [entry[:2] for entry in context(before)]
    assert kinds == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
        ("function_call", kinds[3][1]),
        ("function_call_output", kinds[3][1]),
        ("message", "assistant"),
        ("message", "user"),
        ("message", "assistant"),
    ]
    assert second != first
    assert context(after) == context(before)


async def items_over_http(emulator: RunningEmulator, connection: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"{emulator.http_url}/_emulator/connections/{connection}/items")
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()
    return items


async def close_over_http(emulator: RunningEmulator, connection: str) -> None:
    async with httpx.AsyncClient() as http:
        url = f"{emulator.http_url}/_emulator/connections/{connection}/close?code=1011"
        (await http.post(url)).raise_for_status()


async def test_a_reply_the_drop_cut_is_restored_as_far_as_the_client_had_it() -> None:
    async with run_emulator(EmulatorConfig(api_key=API_KEY)) as emulator:
        emulator.state.set_faults_once(Faults(close_mid_response=True))
        settings = openai_settings(emulator.http_url, limits=Limits(backend_connect_timeout=5.0))
        async with running_server(settings) as server, client(server.ws_url) as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": "a b c d e f g h i j k l"})
            error, sent = await until(ws, is_type("error"))
            assert isinstance(error, dict) and error["code"] == "backend_closed"
            await until(ws, is_type("error"))  # backend_reconnected
            [second] = emulator.state.connections
            after = emulator.state.items(second)
    heard = text_of(sent)
    assert heard and "You said: a b c d e f g h i j k l.".startswith(heard)
    assert context(after) == [
        ("message", "user", "a b c d e f g h i j k l"),
        ("message", "assistant", heard),
    ]
