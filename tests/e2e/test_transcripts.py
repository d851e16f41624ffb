"""Live captions: the user's transcript streams as ``partial`` transcriptions before the
final one, on ``/realtime`` and ``/ws/conversation``; a failed one is its own error."""

from __future__ import annotations

import base64
from typing import Any

from rt_server.config import Limits
from rt_server.emulator import EmulatorConfig, Faults, run_emulator
from tests.conftest import API_KEY, openai_settings
from tests.e2e.test_restore import spoken_turn
from tests.support.harness import (
    Frame,
    client,
    connected,
    final_transcription,
    is_type,
    running_server,
    send_json,
    until,
)

FAST_AUDIO = Limits(backend_connect_timeout=5.0, max_audio_realtime_factor=1000.0)


def partials(frames: list[Frame]) -> list[dict[str, Any]]:
    return [f for f in frames if isinstance(f, dict) and f.get("partial") is True]


async def test_realtime_clients_get_the_transcript_as_it_comes_then_whole() -> None:
    async with run_emulator(EmulatorConfig(api_key=API_KEY)) as emulator:
        settings = openai_settings(emulator.http_url, limits=FAST_AUDIO)
        async with running_server(settings) as server, client(server.ws_url) as ws:
            await connected(ws)
            await ws.send(spoken_turn())
            final, before = await until(ws, final_transcription)
            await until(ws, is_type("control", "text_done"))  # and the reply goes on
    assert isinstance(final, dict) and final["text"].startswith("[speech ")
    shown = partials(before)
    assert [p["text"] for p in shown] == ["[speech", final["text"].rsplit(" ", 1)[0], final["text"]]
    assert all(p["id"] == final["id"] and p["type"] == "transcription" for p in shown)


async def test_conversation_clients_get_partial_transcriptions_too() -> None:
    async with run_emulator(EmulatorConfig(api_key=API_KEY)) as emulator:
        settings = openai_settings(emulator.http_url, limits=FAST_AUDIO)
        async with running_server(settings) as server:
            async with client(server.ws_url.replace("/realtime", "/ws/conversation")) as ws:
                await until(ws, is_type("session_ready"))
                audio = base64.b64encode(spoken_turn()).decode()
                await send_json(ws, {"type": "audio", "audio": audio})
                final, before = await until(ws, final_transcription)
    assert isinstance(final, dict) and set(final) == {"type", "text"}
    shown = partials(before)
    assert shown and shown[-1] == {
        "type": "transcription",
        "text": final["text"],
        "partial": True,
    }


async def test_a_failed_transcription_is_an_error_of_its_own_and_the_session_goes_on() -> None:
    async with run_emulator(EmulatorConfig(api_key=API_KEY)) as emulator:
        emulator.state.set_faults(Faults(fail_transcription=True))
        settings = openai_settings(emulator.http_url, limits=FAST_AUDIO)
        async with running_server(settings) as server, client(server.ws_url) as ws:
            await connected(ws)
            await ws.send(spoken_turn())
            error, before = await until(ws, is_type("error"))
            await send_json(ws, {"type": "user_message", "text": "still there?"})
            await until(ws, is_type("control", "text_done"))
    assert isinstance(error, dict) and error["code"] == "transcription_failed"
    assert "could not be transcribed" in error["message"]
    assert not [f for f in before if is_type("transcription")(f)]
