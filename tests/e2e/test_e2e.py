"""End to end: a real rt_server on loopback, a real WebSocket client, the emulator behind
it (OpenAI, Azure GA with a key, Azure preview, Azure managed identity), on both backend
sockets: aiohttp and the real openai SDK's ``client.realtime.connect()``."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from rt_server.backends import create_backend
from rt_server.config import Limits, Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.serving import serve
from tests.conftest import API_KEY, azure_settings, openai_settings
from tests.support.harness import (
    RunningServer,
    client,
    connected,
    final_transcription,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)
from tests.support.identity import IdentityEndpoint
from tests.support.recording import RecordingBackend


async def text_turn(url: str, text: str, emulator: RunningEmulator | None = None) -> Turn:
    """Connect, say ``text``, return the reply and what the emulator saw meanwhile."""
    async with client(url) as ws:
        hello = await connected(ws)
        assert hello["greeting"]
        seen = [c.to_dict() for c in emulator.state.connections.values()] if emulator else []
        await send_json(ws, {"type": "user_message", "text": text})
        done, before = await until(ws, is_type("control", "text_done"))
        audio = sum(len(f) for f in before if isinstance(f, bytes))
        deltas = [f for f in before if isinstance(f, dict) and f["type"] == "text_delta"]
        assert isinstance(done, dict)
        assert {d["id"] for d in deltas} == {done["id"]}
        return Turn(text_of(before), audio, seen)


@dataclass
class Turn:
    text: str
    audio: int
    connections: list[dict[str, Any]]


#: The user agent each backend socket announces: proof of which one connected.
AGENTS = {"aiohttp": "rt-server", "sdk": "AsyncOpenAI/Python"}


@pytest.fixture(params=sorted(AGENTS))
def socket(request: pytest.FixtureRequest) -> str:
    """Each test that takes it runs on both backend sockets."""
    name: str = request.param
    return name


def assert_socket(connection: dict[str, Any], socket: str) -> None:
    assert connection["user_agent"].startswith(AGENTS[socket]), connection["user_agent"]


async def test_openai_text_turn_streams_text_and_audio(
    emulator: RunningEmulator, socket: str
) -> None:
    settings = openai_settings(emulator.http_url, backend_socket=socket)
    async with running_server(settings) as server:
        turn = await text_turn(server.ws_url, "hello there", emulator)
    assert "hello there" in turn.text
    assert turn.audio > 0 and turn.audio % 2 == 0
    [connection] = turn.connections
    assert (connection["path"], connection["model"]) == ("/v1/realtime", "gpt-realtime")
    assert_socket(connection, socket)


async def test_health(server: RunningServer) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        response = await http.get(f"{server.http_url}/health")
    assert response.json() == {"status": "ok"}


async def test_azure_ga_with_key(emulator: RunningEmulator, socket: str) -> None:
    settings = azure_settings(emulator.http_url, backend_socket=socket)
    async with running_server(settings) as server:
        turn = await text_turn(server.ws_url, "azure ga", emulator)
    assert "azure ga" in turn.text
    [connection] = turn.connections
    assert (connection["path"], connection["dialect"]) == ("/openai/v1/realtime", "ga")
    assert connection["model"] == "my-realtime"
    assert_socket(connection, socket)


async def test_azure_preview_speaks_beta_names_normalised(
    emulator: RunningEmulator, socket: str
) -> None:
    settings = azure_settings(
        emulator.http_url, azure_api_version="2025-04-01-preview", backend_socket=socket
    )
    async with running_server(settings) as server:
        turn = await text_turn(server.ws_url, "azure preview", emulator)
    assert "azure preview" in turn.text
    assert turn.audio > 0
    [connection] = turn.connections
    assert (connection["path"], connection["dialect"]) == ("/openai/realtime", "beta")
    assert_socket(connection, socket)
    # The flat beta session shape arrived and was understood.
    assert connection["session"]["input_audio_transcription"]["model"] == "whisper-1"


async def test_azure_managed_identity_through_app_service_endpoint(
    monkeypatch: pytest.MonkeyPatch, socket: str
) -> None:
    identity = IdentityEndpoint(secret="identity-header-secret")
    async with (
        serve(identity.app()) as endpoint,
        run_emulator(EmulatorConfig()) as emulator,
    ):
        monkeypatch.setenv("IDENTITY_ENDPOINT", f"{endpoint.http_url}/msi/token")
        monkeypatch.setenv("IDENTITY_HEADER", identity.secret)
        for name in ("AZURE_CLIENT_ID", "AZURE_TENANT_ID", "AZURE_CLIENT_SECRET"):
            monkeypatch.delenv(name, raising=False)
        settings = Settings(
            backend="azure",
            backend_socket=socket,  # type: ignore[arg-type]
            azure_endpoint=emulator.http_url,
            azure_deployment="dep",
        )
        async with running_server(settings) as server:
            first = await text_turn(server.ws_url, "first")
            second = await text_turn(server.ws_url, "second")
        assert "first" in first.text and "second" in second.text
        assert identity.requests, "the credential never asked the identity endpoint"
        assert identity.requests[0]["resource"] == "https://cognitiveservices.azure.com"
        assert identity.requests[0]["api-version"] == "2019-08-01"
        # Tokens are cached and reused: one identity request served both sessions.
        assert len(identity.requests) == 1
        assert (emulator.state.last_authorization or "").endswith("mi-token-1")


@pytest.mark.audio
async def test_spoken_turn_gets_speech_started_transcription_and_reply(
    emulator: RunningEmulator,
) -> None:
    from tests.support.speech import speech_pcm16

    settings = openai_settings(
        emulator.http_url,
        limits=Limits(max_audio_realtime_factor=1000.0),
    )
    speech = speech_pcm16("What is the weather like today?")
    silence = bytes(48 * 1500)
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        for start in range(0, len(speech + silence), 960):
            await ws.send((speech + silence)[start : start + 960])
        _, _ = await until(ws, is_type("control", "speech_started"))
        transcription, _ = await until(ws, final_transcription)
        assert isinstance(transcription, dict) and transcription["text"]
        _, reply = await until(ws, is_type("control", "text_done"))
        assert text_of(reply)
        assert any(isinstance(f, bytes) for f in reply)


@pytest.mark.audio
async def test_barge_in_truncates_inside_the_audio_sent() -> None:
    from tests.support.speech import speech_pcm16

    async with run_emulator(EmulatorConfig(pace="realtime")) as emulator:
        settings = openai_settings(
            emulator.http_url, limits=Limits(max_audio_realtime_factor=1000.0)
        )
        backend = RecordingBackend(create_backend(settings))
        async with running_server(settings, backend) as server, client(server.ws_url) as ws:
            await connected(ws)
            long_text = "please tell me a long story about " + "many green hills " * 20
            await send_json(ws, {"type": "user_message", "text": long_text})
            received = 0
            while received < 48 * 400:  # at least 400 ms of reply audio
                frame, _ = await until(ws, lambda f: isinstance(f, bytes))
                assert isinstance(frame, bytes)
                received += len(frame)
            for start in range(0, len(speech := speech_pcm16("Stop, stop.")), 960):
                await ws.send(speech[start : start + 960])
            _, meanwhile = await until(ws, is_type("control", "speech_started"))
            # The reply went on until speech was detected: what was sent by then counts.
            received += sum(len(f) for f in meanwhile if isinstance(f, bytes))
        [truncate] = backend.sent_of_type("conversation.item.truncate")
        assert 0 < truncate["audio_end_ms"] <= received / 48 + 1


async def test_fifty_concurrent_sessions_get_only_their_own_replies(
    server: RunningServer,
) -> None:
    async def one(number: int) -> str:
        return (await text_turn(server.ws_url, f"session number {number}")).text

    replies = await asyncio.gather(*(one(n) for n in range(50)))
    for number, reply in enumerate(replies):
        assert f"session number {number}." in reply or f"session number {number}" in reply
        others = [n for n in range(50) if n != number and f"number {n}." in reply]
        assert not others


async def test_client_disconnect_closes_the_backend_within_a_second(
    emulator: RunningEmulator, socket: str
) -> None:
    state = emulator.state
    settings = openai_settings(emulator.http_url, backend_socket=socket)
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        assert state.active_connections == 1
    async with asyncio.timeout(1.0):
        while state.active_connections:
            await asyncio.sleep(0.01)


async def test_malformed_message_gets_an_error_and_the_session_goes_on(
    server: RunningServer,
) -> None:
    async with client(server.ws_url) as ws:
        await connected(ws)
        await ws.send("{not json")
        error, _ = await until(ws, is_type("error"))
        assert isinstance(error, dict) and error["code"] == "invalid_json"
        await ws.send(b"\x01\x02\x03")
        error, _ = await until(ws, is_type("error"))
        assert isinstance(error, dict) and error["code"] == "invalid_audio"
        await send_json(ws, {"type": "user_message", "text": "still here"})
        _, reply = await until(ws, is_type("control", "text_done"))
        assert "still here" in text_of(reply)


@pytest.fixture
async def faulty() -> AsyncIterator[RunningEmulator]:
    async with run_emulator(EmulatorConfig(api_key=API_KEY)) as emulator:
        yield emulator


@pytest.mark.parametrize(
    ("status", "code", "close"),
    [
        (401, "backend_auth_failed", 1011),
        (403, "backend_auth_failed", 1011),
        (429, "backend_rate_limited", 1013),
        (500, "backend_unavailable", 1013),
    ],
)
async def test_refused_handshake_is_told_to_the_client(
    faulty: RunningEmulator, status: int, code: str, close: int, socket: str
) -> None:
    from rt_server.emulator import Faults

    faulty.state.set_faults(
        Faults(handshake_status=status, retry_after=7 if status == 429 else None)
    )
    settings = openai_settings(faulty.http_url, backend_socket=socket)
    async with running_server(settings) as server, client(server.ws_url) as ws:
        error, before = await until(ws, is_type("error"))
        assert before == []  # never "connected" first
        assert isinstance(error, dict) and error["code"] == code
        if status == 429:
            assert error["retry_after"] == 7
        await ws.wait_closed()
        assert ws.close_code == close


async def test_unreachable_backend_is_told_to_the_client(socket: str) -> None:
    # The discard port: nothing listens.
    settings = openai_settings("http://127.0.0.1:9", backend_socket=socket)
    async with running_server(settings) as server, client(server.ws_url) as ws:
        error, _ = await until(ws, is_type("error"))
        assert isinstance(error, dict) and error["code"] == "backend_unreachable"
        await ws.wait_closed()
        assert ws.close_code == 1013


async def test_wrong_api_key_is_an_auth_failure(emulator: RunningEmulator, socket: str) -> None:
    settings = openai_settings(emulator.http_url, openai_api_key="sk-wrong", backend_socket=socket)
    async with running_server(settings) as server, client(server.ws_url) as ws:
        error, _ = await until(ws, is_type("error"))
        assert isinstance(error, dict) and error["code"] == "backend_auth_failed"
        assert "sk-wrong" not in error["message"]


async def test_a_question_sent_during_an_answer_is_answered_after_it(
    server: RunningServer,
) -> None:
    async with client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": "first question"})
        await send_json(ws, {"type": "user_message", "text": "second question"})
        _, first = await until(ws, is_type("control", "text_done"))
        _, second = await until(ws, is_type("control", "text_done"))
    errors = [f for f in first + second if isinstance(f, dict) and f["type"] == "error"]
    assert errors == []
    assert "first question" in text_of(first)
    assert "second question" in text_of(second)


@pytest.mark.parametrize(("coalesce_ms", "appends"), [(20, [960, 960]), (0, [480] * 4)])
async def test_tiny_audio_frames_reach_the_backend_joined(
    emulator: RunningEmulator, coalesce_ms: int, appends: list[int]
) -> None:
    settings = openai_settings(emulator.http_url, audio_coalesce_ms=coalesce_ms)
    backend = RecordingBackend(create_backend(settings))
    async with running_server(settings, backend) as server, client(server.ws_url) as ws:
        await connected(ws)
        for number in range(4):  # 10 ms frames
            await ws.send(bytes([number]) * 480)
        await send_json(ws, {"type": "user_message", "text": "after the audio"})
        await until(ws, is_type("control", "text_done"))
    [sent] = backend.connections
    audio = [base64.b64decode(e["audio"]) for e in sent if e["type"].endswith(".append")]
    assert [len(a) for a in audio] == appends
    assert b"".join(audio) == b"".join(bytes([n]) * 480 for n in range(4))
