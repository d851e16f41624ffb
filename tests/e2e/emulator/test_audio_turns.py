"""Spoken turns over real sockets: server VAD on espeak-ng speech, silence, manual commit,
transcription, G.711 formats, barge-in, and the echo mode."""

from __future__ import annotations

import asyncio
import base64
from typing import Any

import pytest

from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from tests.e2e.emulator.conftest import Raw, raw, silence, types
from tests.support.speech import speech_alaw, speech_mulaw, speech_pcm16

GA = "/v1/realtime?model=gpt-realtime"
TRANSCRIBE = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}


async def update(ws: Raw, session: dict[str, Any]) -> None:
    await ws.send({"type": "session.update", "session": session})
    await ws.until("session.updated")


@pytest.mark.audio
async def test_spoken_turn_is_detected_committed_transcribed_and_answered(
    emu: RunningEmulator,
) -> None:
    async with raw(emu.ws_url + GA) as ws:
        await update(ws, TRANSCRIBE)
        await ws.append(silence(300) + speech_pcm16("What is the weather like?") + silence(800))
        events = await ws.until("response.done")
    kinds = types(events)
    order = ["input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped",
             "input_audio_buffer.committed", "conversation.item.added", "conversation.item.done",
             "conversation.item.input_audio_transcription.completed", "response.created"]  # fmt: skip
    assert [k for k in kinds if k in order][: len(order)] == order
    started = events[kinds.index("input_audio_buffer.speech_started")]
    stopped = events[kinds.index("input_audio_buffer.speech_stopped")]
    assert 300 <= started["audio_start_ms"] < 500
    assert started["item_id"] == stopped["item_id"]
    assert stopped["audio_end_ms"] > started["audio_start_ms"] + 1500
    completed = events[kinds.index("conversation.item.input_audio_transcription.completed")]
    assert completed["item_id"] == started["item_id"] and completed["content_index"] == 0
    assert completed["transcript"].startswith("[speech ")
    transcript = "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert transcript == f"You said: {completed['transcript']}."


@pytest.mark.audio
@pytest.mark.parametrize(
    ("fmt", "speech"), [("audio/pcmu", speech_mulaw), ("audio/pcma", speech_alaw)]
)
async def test_g711_input_and_output(emu: RunningEmulator, fmt: str, speech: object) -> None:
    session = {
        "type": "realtime",
        "audio": {"input": {"format": {"type": fmt}}, "output": {"format": {"type": fmt}}},
    }
    async with raw(emu.ws_url + GA) as ws:
        await update(ws, session)
        audio = speech("Hello there, how are you?")  # type: ignore[operator]
        await ws.append(
            audio + b"\xff" * 8000 if fmt == "audio/pcmu" else audio + b"\xd5" * 8000, 160
        )
        events = await ws.until("response.done")
    assert "input_audio_buffer.speech_started" in types(events)
    out = b"".join(
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    )
    words = 5  # "You said: [speech x.xx s]."
    assert len(out) == words * (8000 * 333 // 1000)


async def test_silence_never_starts_a_turn(emu: RunningEmulator) -> None:
    async with raw(emu.ws_url + GA) as ws:
        await ws.append(silence(2000))
        await ws.send({"type": "conversation.item.retrieve", "item_id": "missing"})
        events = await ws.until("error")
    assert types(events) == ["session.created", "error"]


async def test_manual_commit_with_turn_detection_off(emu: RunningEmulator) -> None:
    async with raw(emu.ws_url + GA) as ws:
        await update(ws, {"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await ws.append(silence(50))
        await ws.send({"type": "input_audio_buffer.commit", "event_id": "c1"})
        [error] = (await ws.until("error"))[-1:]
        assert error["error"]["code"] == "input_audio_buffer_commit_empty"
        assert error["error"]["event_id"] == "c1"
        await ws.append(b"\x10\x00" * 4800)
        await ws.send({"type": "input_audio_buffer.commit"})
        committed = (await ws.until("input_audio_buffer.committed"))[-1]
        added = await ws.recv()
        assert added["type"] == "conversation.item.added"
        assert added["item"]["id"] == committed["item_id"]
        assert added["item"]["content"] == [{"type": "input_audio", "transcript": None}]
        await ws.send({"type": "input_audio_buffer.clear"})
        events = await ws.until("input_audio_buffer.cleared")
        assert "response.created" not in types(events)  # no auto response without VAD


@pytest.mark.audio
async def test_barge_in_cancels_the_response_and_truncate_works() -> None:
    config = EmulatorConfig(pace="realtime", words_per_second=10, audio_chunk_ms=50)
    async with run_emulator(config) as emu, raw(emu.ws_url + GA) as ws:
        item = {
            "type": "message",
            "role": "user",
            "content": [
                {"type": "input_text", "text": "one two three four five six seven eight nine ten"}
            ],
        }
        await ws.send({"type": "conversation.item.create", "item": item})
        await ws.send({"type": "response.create"})
        first = (await ws.until("response.output_audio.delta"))[-1]
        await ws.append(speech_pcm16("Stop, please stop."))
        events = await ws.until("response.done")
        done = events[-1]["response"]
        assert "input_audio_buffer.speech_started" in types(events)
        assert done["status"] == "cancelled"
        assert done["status_details"]["reason"] == "turn_detected"
        played = (
            sum(
                len(base64.b64decode(e["delta"]))
                for e in ws.seen
                if e["type"] == "response.output_audio.delta"
            )
            // 48
        )
        assert 0 < played < 2000  # the reply is 3.6 s long; it was cut early
        truncate = {
            "type": "conversation.item.truncate",
            "item_id": first["item_id"],
            "content_index": 0,
        }
        await ws.send({**truncate, "audio_end_ms": played + 1000})
        assert (await ws.until("error"))[-1]["error"]["param"] == "audio_end_ms"
        await ws.send({**truncate, "audio_end_ms": played // 2})
        truncated = (await ws.until("conversation.item.truncated"))[-1]
        assert truncated["audio_end_ms"] == played // 2


async def test_response_cancel_in_realtime_pace() -> None:
    async with run_emulator(EmulatorConfig(pace="realtime")) as emu, raw(emu.ws_url + GA) as ws:
        await ws.send({"type": "response.create"})
        await ws.until("response.output_audio.delta")
        await ws.send({"type": "response.cancel"})
        events = await ws.until("response.done")
        assert events[-1]["response"]["status_details"]["reason"] == "client_cancelled"
        await ws.send({"type": "response.cancel", "event_id": "again"})
        error = (await ws.until("error"))[-1]["error"]
        assert (error["code"], error["event_id"]) == ("response_cancel_not_active", "again")


async def test_realtime_pace_sends_audio_as_it_would_play() -> None:
    config = EmulatorConfig(pace="realtime", words_per_second=10)
    async with run_emulator(config) as emu, raw(emu.ws_url + GA) as ws:
        loop = asyncio.get_running_loop()
        await ws.send({"type": "response.create"})
        await ws.until("response.created")
        started = loop.time()
        await ws.until("response.done")
        elapsed = loop.time() - started
    assert 0.3 <= elapsed < 3.0  # five words at 100 ms: the last chunk is due at 400 ms


async def test_echo_mode_returns_each_frame_verbatim() -> None:
    async with run_emulator(EmulatorConfig(echo_audio=True)) as emu, raw(emu.ws_url + GA) as ws:
        await ws.until("session.created")
        frame = base64.b64encode(bytes(range(256)) * 3).decode()
        for _ in range(3):
            await ws.send({"type": "input_audio_buffer.append", "audio": frame})
            echo = await ws.recv()
            assert echo["type"] == "response.output_audio.delta"
            assert echo["delta"] == frame
            assert (echo["output_index"], echo["content_index"]) == (0, 0)


async def test_binary_frames_get_an_error_and_the_session_goes_on(emu: RunningEmulator) -> None:
    async with raw(emu.ws_url + GA) as ws:
        await ws.send(b"\x00\x01")
        error = (await ws.until("error"))[-1]
        assert error["error"]["type"] == "invalid_request_error"
        await ws.send("{broken")
        assert (await ws.until("error"))[-1]["error"]["code"] == "invalid_json"
        await ws.send({"type": "response.create"})
        await ws.until("response.done")
