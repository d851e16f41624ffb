"""Server-side assistant: profiles, the welcome turn, tools, protocol extensions and the
second dialect, over real sockets against the emulator."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from rt_server.backends import create_backend
from rt_server.config import Settings
from rt_server.emulator import EmulatorConfig, Rule, RunningEmulator, run_emulator
from rt_server.emulator.config import ToolCall as RuleToolCall
from rt_server.profile import Profile
from rt_server.tools import ToolRegistry
from tests.conftest import API_KEY, openai_settings
from tests.support.harness import (
    Frame,
    client,
    connected,
    final_transcription,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)
from tests.support.recording import RecordingBackend

tools = ToolRegistry()


@tools.tool(description="Weather for a city.")
async def get_weather(city: str) -> dict[str, Any]:
    return {"city": city, "sky": "clear", "temperature_c": 21}


@tools.tool(description="Always fails.")
async def broken_tool() -> str:
    raise RuntimeError("kaput")


RULES = (
    Rule(match="weather", tool_call=RuleToolCall(name="get_weather", arguments={"city": "Oslo"})),
    Rule(match="break it", tool_call=RuleToolCall(name="broken_tool", arguments={})),
)


@pytest.fixture
async def scripted() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(EmulatorConfig(api_key=API_KEY, rules=RULES)) as emulator:
        yield emulator


async def ask(url: str, text: str) -> tuple[str, list[Frame]]:
    async with client(url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": text})
        _, frames = await until(ws, is_type("control", "text_done"))
        return text_of(frames), frames


async def test_a_tool_runs_on_the_server_and_the_reply_uses_its_output(
    scripted: RunningEmulator,
) -> None:
    async with running_server(openai_settings(scripted.http_url), tools=tools) as server:
        async with httpx.AsyncClient() as http:
            listed = (await http.get(f"{server.http_url}/tools")).json()
        reply, frames = await ask(server.ws_url, "what is the weather?")
    assert [tool["name"] for tool in listed] == ["get_weather", "broken_tool"]
    assert "get_weather tool says" in reply
    assert '"sky":"clear"' in reply or "clear" in reply
    # Tool traffic is hidden from the client by default.
    assert not [f for f in frames if isinstance(f, dict) and "tool" in str(f.get("action"))]


async def test_tool_progress_is_shown_when_configured(scripted: RunningEmulator) -> None:
    settings = openai_settings(scripted.http_url, profile=Profile(show_tool_calls=True))
    async with running_server(settings, tools=tools) as server, client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": "weather please"})
        call, _ = await until(ws, is_type("control", "tool_call"))
        done, _ = await until(ws, is_type("control", "tool_done"))
        _, reply = await until(ws, is_type("control", "text_done"))
    assert isinstance(call, dict) and call["name"] == "get_weather"
    assert isinstance(done, dict) and done["name"] == "get_weather"
    assert "get_weather tool says" in text_of(reply)


async def test_a_failing_tool_is_reported_to_the_model_and_the_session_goes_on(
    scripted: RunningEmulator,
) -> None:
    async with running_server(openai_settings(scripted.http_url), tools=tools) as server:
        async with client(server.ws_url) as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": "break it"})
            _, frames = await until(ws, is_type("control", "text_done"))
            assert "failed: RuntimeError" in text_of(frames)
            assert "kaput" not in text_of(frames)
            await send_json(ws, {"type": "user_message", "text": "still alive?"})
            _, frames = await until(ws, is_type("control", "text_done"))
            assert "still alive" in text_of(frames)


async def test_welcome_turn_speaks_first(emulator: RunningEmulator) -> None:
    profile = Profile(welcome_instructions="Greet the user warmly.")
    settings = openai_settings(emulator.http_url, profile=profile)
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        _, frames = await until(ws, is_type("control", "text_done"))
    assert text_of(frames)
    assert any(isinstance(f, bytes) for f in frames)


def write_profiles(tmp_path: Path) -> str:
    path = tmp_path / "profiles.toml"
    path.write_text(
        """
[default]
instructions = "You are the front desk."
greeting = "Welcome to the front desk."

[profiles.support]
instructions = "You are the support agent."
voice = "marin"
""",
        encoding="utf-8",
    )
    return str(path)


async def test_profiles_are_chosen_by_name_and_enforced_by_the_server(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    env = {
        "BACKEND": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": f"{emulator.http_url}/v1",
        "PROFILE_FILE": write_profiles(tmp_path),
        "RECORDS": "off",
    }
    settings = Settings.from_env(env)
    assert settings.profiles["support"].greeting == "Welcome to the front desk."  # inherited
    async with running_server(settings) as server:
        default, _ = await ask(server.ws_url, "instructions?")
        support, _ = await ask(f"{server.ws_url}?profile=support", "instructions?")
        async with client(server.ws_url) as ws:
            hello = await connected(ws)
    assert "You are the front desk." in default
    assert "You are the support agent." in support
    assert hello["greeting"] == "Welcome to the front desk."


async def test_unknown_profile_is_refused_before_the_backend_is_touched(
    emulator: RunningEmulator,
) -> None:
    async with running_server(openai_settings(emulator.http_url)) as server:
        async with client(f"{server.ws_url}?profile=nope") as ws:
            error, _ = await until(ws, is_type("error"))
            await ws.wait_closed()
    assert isinstance(error, dict) and error["code"] == "unknown_profile"
    assert ws.close_code == 1008
    assert emulator.state.total_connections == 0


async def test_base64_audio_and_push_to_talk_commit(emulator: RunningEmulator) -> None:
    pytest.importorskip("numpy")
    import numpy as np

    tone = (np.sin(np.arange(24000) * 2 * np.pi * 440 / 24000) * 12000).astype("<i2").tobytes()
    settings = openai_settings(emulator.http_url, profile=Profile(turn_detection="none"))
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        for start in range(0, len(tone), 4800):
            chunk = base64.b64encode(tone[start : start + 4800]).decode()
            await send_json(ws, {"type": "audio", "audio": chunk})
        await send_json(ws, {"type": "control", "action": "commit"})
        transcription, _ = await until(ws, final_transcription)
        _, reply = await until(ws, is_type("control", "text_done"))
    assert isinstance(transcription, dict) and "1.00 s" in transcription["text"]
    assert "1.00 s" in text_of(reply)


async def test_interrupt_cancels_the_reply_and_truncates_at_what_was_heard() -> None:
    async with run_emulator(EmulatorConfig(pace="realtime", words_per_second=15)) as emulator:
        settings = openai_settings(emulator.http_url)
        backend = RecordingBackend(create_backend(settings))
        async with running_server(settings, backend) as server, client(server.ws_url) as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": "tell me " + "a long story " * 30})
            first, _ = await until(ws, lambda f: isinstance(f, bytes))
            assert isinstance(first, bytes)
            await send_json(ws, {"type": "control", "action": "interrupt"})
            await send_json(ws, {"type": "user_message", "text": "recap"})
            recap_started, _ = await until(ws, lambda f: "Earlier" in str(f))
            _, recap = await until(ws, is_type("control", "text_done"))
    assert isinstance(recap_started, dict)
    assert text_of(recap).startswith("you said: tell me a long story")
    [cancel] = backend.sent_of_type("response.cancel")
    [truncate] = backend.sent_of_type("conversation.item.truncate")
    received_ms = len(first) / 48
    assert 0 <= truncate["audio_end_ms"] <= received_ms + 1000  # paced: one chunk ahead at most
    assert cancel["type"] == "response.cancel"


async def test_conversation_dialect_over_its_own_path(emulator: RunningEmulator) -> None:
    async with running_server(openai_settings(emulator.http_url)) as server:
        url = server.ws_url.replace("/realtime", "/ws/conversation")
        async with client(url) as ws:
            ready, _ = await until(ws, lambda f: True)
            await send_json(ws, {"type": "text", "text": "hello dialect"})
            done, frames = await until(ws, is_type("response_done"))
            await send_json(ws, {"type": "bogus"})
            error, _ = await until(ws, is_type("error"))
    assert ready == {"type": "session_ready", "message": "Connected to the Realtime API"}
    deltas = [f for f in frames if isinstance(f, dict) and f["type"] == "text_delta"]
    assert "hello dialect" in "".join(d["text"] for d in deltas)
    audio = [f for f in frames if isinstance(f, dict) and f["type"] == "audio_delta"]
    assert audio and base64.b64decode(audio[0]["audio"])
    assert isinstance(done, dict)
    assert done["status"] == "completed"
    assert done["message"] == "AI response completed"
    assert isinstance(error, dict) and error["code"] == "unknown_type"


async def test_protocol_schema_validates_real_traffic(emulator: RunningEmulator) -> None:
    settings = openai_settings(emulator.http_url)
    async with running_server(settings) as server:
        async with httpx.AsyncClient() as http:
            schema = (await http.get(f"{server.http_url}/protocol.json")).json()
        async with client(server.ws_url) as ws:
            hello = await connected(ws)
            sent = [
                {"type": "user_message", "text": "schema check"},
                {"type": "control", "action": "commit"},
            ]
            for message in sent:
                jsonschema.validate(message, schema["realtime"]["client"])
                await send_json(ws, message)
            _, frames = await until(ws, is_type("control", "text_done"))
            await ws.send("{not json")
            error, _ = await until(ws, is_type("error"))
    assert isinstance(error, dict)
    received: list[dict[str, Any]] = [hello, *[f for f in frames if isinstance(f, dict)], error]
    assert {f["type"] for f in received} >= {"control", "text_delta", "error"}
    for message in received:
        jsonschema.validate(message, schema["realtime"]["server"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"type": "user_message", "text": ""}, schema["realtime"]["client"])


def test_typescript_declarations_match_the_schema() -> None:
    from rt_server.typescript import render_declarations

    committed = Path(__file__).parents[2] / "docs" / "protocol.d.ts"
    assert (
        committed.read_text(encoding="utf-8") == render_declarations()
    ), "docs/protocol.d.ts is stale: run python -m rt_server.typescript > docs/protocol.d.ts"
