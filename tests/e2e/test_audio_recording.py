"""Optional audio recording: both sides of a session in WAV files, off unless configured."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from rt_server.config import Settings
from rt_server.emulator import RunningEmulator
from tests.conftest import API_KEY, openai_settings
from tests.support.harness import client, connected, is_type, running_server, send_json, until


async def test_both_sides_are_recorded_to_wav_files(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    settings = openai_settings(emulator.http_url, record_audio_dir=str(tmp_path))
    sent = bytes(range(256)) * 15  # 80 ms, recorded byte-exact
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        await ws.send(sent)
        await send_json(ws, {"type": "user_message", "text": "record this"})
        _, frames = await until(ws, is_type("control", "text_done"))
    received = b"".join(frame for frame in frames if isinstance(frame, bytes))
    [user] = tmp_path.glob("*-user.wav")
    [assistant] = tmp_path.glob("*-assistant.wav")
    with wave.open(str(user)) as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (24000, 2, 1)
        assert wav.readframes(wav.getnframes()) == sent
    with wave.open(str(assistant)) as wav:
        assert wav.getframerate() == 24000
        assert wav.readframes(wav.getnframes()) == received
    assert received


async def test_nothing_is_recorded_by_default(
    emulator: RunningEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = Settings.from_env(
        {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": f"{emulator.http_url}/v1", "RECORDS": "off"}
    )
    assert settings.record_audio_dir is None
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        await ws.send(bytes(960))
        await send_json(ws, {"type": "user_message", "text": "not recorded"})
        await until(ws, is_type("control", "text_done"))
    assert not list(tmp_path.rglob("*.wav"))


async def test_an_unwritable_directory_does_not_break_the_session(
    emulator: RunningEmulator, tmp_path: Path
) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("x")
    settings = openai_settings(emulator.http_url, record_audio_dir=str(blocker / "audio"))
    async with running_server(settings) as server, client(server.ws_url) as ws:
        await connected(ws)
        await ws.send(bytes(960))
        await send_json(ws, {"type": "user_message", "text": "still fine"})
        _, frames = await until(ws, is_type("control", "text_done"))
    assert any(isinstance(frame, bytes) for frame in frames)
