"""The Realtime settings a profile sets, end to end through the emulator: the whole session
arrives (custom voice, truncation, tracing, transcription prompt, turn detection's
create/interrupt_response), the idle timeout reaches the client as a control message,
``tool_choice`` decides the calls, and semantic VAD's eagerness decides when a turn ends
(real rt_server, real sockets; the emulator behind the real SDK socket)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from websockets.asyncio.client import ClientConnection

from rt_server.config import Limits
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.emulator.config import Rule
from rt_server.emulator.config import ToolCall as ScriptedCall
from rt_server.profile import Profile
from rt_server.tools import ToolRegistry
from tests.conftest import API_KEY, openai_settings
from tests.support.harness import (
    Frame,
    client,
    connected,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)

RATE = 24000


def silence(ms: int) -> bytes:
    return bytes(RATE * ms // 1000 * 2)


def tone(ms: int) -> bytes:
    t = np.arange(RATE * ms // 1000) / RATE
    return (np.sin(2 * np.pi * 440 * t) * 0.3 * 32767).astype("<i2").tobytes()


async def stream(ws: ClientConnection, pcm: bytes, frame_ms: int = 20) -> None:
    step = RATE * frame_ms // 1000 * 2
    for start in range(0, len(pcm), step):
        await ws.send(pcm[start : start + step])


async def test_the_whole_session_reaches_the_emulator(emulator: RunningEmulator) -> None:
    profile = Profile(
        voice={"id": "voice_1234"},
        truncation="disabled",
        tracing={"workflow_name": "front desk", "group_id": "g1"},
        transcription_prompt="Contoso, Fabrikam",
        idle_timeout_ms=6000,
        create_response=False,
        interrupt_response=False,
        tool_choice="none",
    )
    settings = openai_settings(emulator.http_url, profile=profile, backend_socket="sdk")
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        [connection] = emulator.state.connections.values()
        session = connection.to_dict()["session"]
    assert session["audio"]["output"]["voice"] == {"id": "voice_1234"}
    assert (session["truncation"], session["tool_choice"]) == ("disabled", "none")
    assert session["tracing"] == {"workflow_name": "front desk", "group_id": "g1"}
    assert session["audio"]["input"]["transcription"]["prompt"] == "Contoso, Fabrikam"
    turn = session["audio"]["input"]["turn_detection"]
    assert (turn["idle_timeout_ms"], turn["create_response"], turn["interrupt_response"]) == (
        6000,
        False,
        False,
    )


async def test_the_idle_timeout_reaches_the_client_and_the_assistant_asks(
    emulator: RunningEmulator,
) -> None:
    fast = Limits(backend_connect_timeout=5.0, max_audio_realtime_factor=1000.0)
    settings = openai_settings(
        emulator.http_url, profile=Profile(idle_timeout_ms=1000), limits=fast
    )
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        await stream(ws, silence(900))
        await send_json(ws, {"type": "user_message", "text": "not yet"})
        _, before = await until(ws, is_type("control", "text_done"))
        assert not [f for f in before if is_type("control", "timeout_triggered")(f)]
        await stream(ws, silence(1500))  # counted from the end of that reply
        _, before = await until(ws, is_type("control", "timeout_triggered"))
        _, reply = await until(ws, is_type("control", "text_done"))
    assert "Are you still there?" in text_of(reply)


def clock_tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(description="The time now.")
    async def now() -> str:
        return "it is noon"

    return registry


async def reply_to(url: str, text: str) -> str:
    async with client(url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": text})
        _, before = await until(ws, is_type("control", "text_done"))
    return text_of(before)


async def test_tool_choice_decides_the_calls() -> None:
    rule = Rule(match="time", tool_call=ScriptedCall("now", {}))
    async with run_emulator(EmulatorConfig(api_key=API_KEY, rules=(rule,))) as emulator:
        base = openai_settings(emulator.http_url)
        for choice, question, expected in [
            ("auto", "what time is it", "The now tool says: it is noon."),
            ("none", "what time is it", "You said: what time is it."),
            ("required", "hello", "The now tool says: it is noon."),
            ("now", "hello", "The now tool says: it is noon."),
        ]:
            settings = replace(base, profile=Profile(tool_choice=choice))
            async with running_server(settings, tools=clock_tools()) as server:
                assert expected in await reply_to(server.ws_url, question), choice


async def test_semantic_vad_eagerness_decides_when_a_turn_ends(
    emulator: RunningEmulator,
) -> None:
    def profile(eagerness: str) -> Profile:
        # No automatic reply: the typed marker's reply is the only one (no race with it).
        return Profile(
            turn_detection="semantic_vad",
            vad_eagerness=eagerness,  # type: ignore[arg-type]
            create_response=False,
        )

    def says_marker(frame: Frame) -> bool:
        return isinstance(frame, dict) and "marker" in str(frame.get("delta"))

    def heard(frames: list[Frame]) -> bool:
        return any(is_type("transcription")(f) for f in frames)

    for eagerness, ended_after_400_ms in [("high", True), ("low", False)]:
        settings = openai_settings(emulator.http_url, profile=profile(eagerness))
        async with running_server(settings) as server, client(server.ws_url) as ws:
            await connected(ws)
            await stream(ws, tone(600) + silence(400))
            # A typed turn after the audio: whatever the audio ended comes before its reply.
            await send_json(ws, {"type": "user_message", "text": "marker"})
            _, before = await until(ws, says_marker)
            assert heard(before) is ended_after_400_ms, eagerness
            if not ended_after_400_ms:
                await until(ws, is_type("control", "text_done"))
                await stream(ws, silence(1000))
                await until(ws, is_type("transcription"))
