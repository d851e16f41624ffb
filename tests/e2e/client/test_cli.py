"""rt-chat as a subprocess against the fake server: output, files and exit codes."""

from __future__ import annotations

import asyncio
import sys
import wave
from pathlib import Path

import numpy as np

from rt_server.client.wav import rms_dbfs
from tests.support.fake_server import FakeServer, running


async def rt_chat(*args: str, stdin: bytes = b"") -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rt_server.client.cli",
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(stdin), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_text_prints_the_reply_on_stdout_and_latency_on_stderr(tmp_path: Path) -> None:
    out_wav = tmp_path / "reply.wav"
    async with running(FakeServer(token="t")) as fake:
        code, out, err = await rt_chat(
            "--url", fake.url, "--token", "t", "--text", "hi", "--out", str(out_wav)
        )
    assert code == 0, err
    assert out.strip() == "You said: hi."
    assert "Hello from the fake." in err
    assert "first text" in err
    with wave.open(str(out_wav)) as f:
        assert (f.getframerate(), f.getnchannels(), f.getsampwidth()) == (24000, 1, 2)
        assert rms_dbfs(f.readframes(f.getnframes())) > -40


async def test_the_repl_answers_each_line_until_end_of_input() -> None:
    async with running(FakeServer()) as fake:
        code, out, err = await rt_chat("--url", fake.url, stdin=b"one\n\nfail\ntwo\n")
    assert code == 0, err
    assert out.split("\n")[:2] == ["You said: one. ", "You said: two. "]
    assert "[error backend_error: it broke]" in err  # reported, and the session went on
    assert '{"type":"user_message","text":"two"}' in fake.received


async def test_wav_is_streamed_then_the_transcription_and_reply_printed(tmp_path: Path) -> None:
    speech = tmp_path / "in.wav"
    with wave.open(str(speech), "wb") as f:  # 0.1 s at 48 kHz stereo
        f.setnchannels(2)
        f.setsampwidth(2)
        f.setframerate(48000)
        f.writeframes((np.ones(9600, "<i2") * 1000).tobytes())
    async with running(FakeServer()) as fake:
        # The fake has no VAD: --commit ends the turn after the audio and the silence.
        code, out, err = await rt_chat("--url", fake.url, "--wav", str(speech), "--commit")
    assert code == 0, err
    # 0.1 s of speech + 1 s of silence at 24 kHz mono
    assert out.splitlines() == ["you: 52800 bytes", "assistant: I heard you. "]
    assert "[speech started]" in err


async def test_usage_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = await rt_chat("--text", "a", "--wav", "b.wav")
    assert code == 2
    assert "not allowed with" in err
    bad = tmp_path / "float.wav"
    bad.write_bytes(
        b"RIFF\x24\0\0\0WAVEfmt \x10\0\0\0\x03\0\x01\0\xc0\x5d\0\0\0\x77\x01\0\x04\0\x20\0"
    )
    code, _, err = await rt_chat("--wav", str(bad))
    assert code == 2
    assert "IEEE float WAV files are not supported" in err
    code, _, err = await rt_chat("--url", "http://x/realtime", "--text", "hi")
    assert code == 2
    assert "--url must start with ws:// or wss://" in err
    code, _, err = await rt_chat("--wav", str(tmp_path / "missing.wav"))
    assert code == 2
    assert "No such file" in err


async def test_connection_and_server_errors_exit_1() -> None:
    async with running(FakeServer(token="right")) as fake:
        code, _, err = await rt_chat("--url", fake.url, "--token", "wrong", "--text", "hi")
    assert code == 1
    assert "HTTP 401" in err
    async with running(FakeServer()) as fake:
        code, _, err = await rt_chat("--url", fake.url, "--text", "fail")
        assert (code, err.splitlines()[-1]) == (1, "rt-chat: backend_error: it broke")
        code, _, err = await rt_chat("--url", fake.url, "--text", "close")
    assert code == 1
    assert "connection closed (4000): asked to close" in err
