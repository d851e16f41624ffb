"""The client and rt-chat end to end, against a real rt_server in front of the emulator."""

from __future__ import annotations

import re
import wave
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from rt_server.client import ConnectFailed, ReplyCollector, RtClient
from rt_server.client.wav import rms_dbfs, silence, write_wav
from rt_server.emulator import RunningEmulator
from tests.conftest import openai_settings
from tests.e2e.client.test_cli import rt_chat
from tests.support.harness import RunningServer, running_server
from tests.support.speech import have_speech_tools, speech_pcm16

needs_speech = pytest.mark.skipif(not have_speech_tools(), reason="needs espeak-ng and sox")


async def test_text_round_trip(server: RunningServer) -> None:
    async with RtClient.connect(server.ws_url) as client:
        assert client.greeting
        first = await client.reply("hello there")
        second = await client.reply("and again")
    assert first.text == "You said: hello there."
    assert second.text == "You said: and again."
    assert first.id != second.id
    assert first.first_delta is not None
    assert 0 < first.first_delta <= first.total
    assert first.audio_seconds > 0.1
    assert rms_dbfs(first.audio) > -40


@pytest.mark.audio
@needs_speech
async def test_spoken_turn_is_transcribed_and_answered(server: RunningServer) -> None:
    speech = speech_pcm16("What is the weather like today?")
    async with RtClient.connect(server.ws_url) as client:
        collector = ReplyCollector(0.0, transcription=True)
        await client.stream_audio(speech + silence(1.0))
        collector.started = 0.0
        reply = await client.collect(collector, timeout=20)
    assert collector.speech_started
    assert reply.transcription
    assert reply.text.startswith("You said:")
    assert rms_dbfs(reply.audio) > -40


async def test_cli_text(server: RunningServer) -> None:
    code, out, err = await rt_chat("--url", server.ws_url, "--text", "hello from the CLI")
    assert code == 0, err
    assert out == "You said: hello from the CLI.\n"
    assert re.search(r"first text \d+ ms", err)


@pytest.mark.audio
@needs_speech
async def test_cli_wav_round_trip_saves_a_non_silent_reply(
    server: RunningServer, tmp_path: Path
) -> None:
    speech, reply = tmp_path / "speech.wav", tmp_path / "reply.wav"
    write_wav(speech, speech_pcm16("Please tell me a short story.", 48000), rate=48000)
    code, out, err = await rt_chat(
        "--url", server.ws_url, "--wav", str(speech), "--out", str(reply)
    )
    assert code == 0, err
    lines = out.splitlines()
    assert any(line.startswith("you: ") for line in lines), out
    assert any(line.startswith("assistant: You said:") for line in lines), out
    with wave.open(str(reply)) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (24000, 1, 2)
        audio = f.readframes(f.getnframes())
    assert len(audio) > 24000  # more than half a second
    assert rms_dbfs(audio) > -40


@pytest.fixture
async def token_server(emulator: RunningEmulator) -> AsyncIterator[RunningServer]:
    settings = openai_settings(emulator.http_url, client_tokens=("letmein",))
    async with running_server(settings) as running:
        yield running


async def test_a_token_protected_server(token_server: RunningServer) -> None:
    with pytest.raises(ConnectFailed) as caught:
        async with RtClient.connect(token_server.ws_url, token="wrong"):
            pass
    assert caught.value.status == 401
    async with RtClient.connect(token_server.ws_url, token="letmein") as client:
        assert (await client.reply("hi")).text == "You said: hi."
    code, out, err = await rt_chat("--url", token_server.ws_url, "--text", "hi")
    assert code == 1
    assert "HTTP 401 (unauthorized: " in err
    code, out, err = await rt_chat(
        "--url", token_server.ws_url, "--token", "letmein", "--text", "hi"
    )
    assert (code, out) == (0, "You said: hi.\n")


async def test_an_unknown_profile_is_refused_with_the_server_message(server: RunningServer) -> None:
    with pytest.raises(ConnectFailed, match="unknown_profile"):
        async with RtClient.connect(server.ws_url, profile="no-such-profile"):
            pass
    code, _, err = await rt_chat(
        "--url", server.ws_url, "--profile", "no-such-profile", "--text", "hi"
    )
    assert code == 1
    assert "unknown_profile" in err
