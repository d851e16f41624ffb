"""Phone audio end to end: reply deltas of varied lengths (as the service sends them) reach
Twilio joined into frames of at least ``PHONE_FRAME_MS``, the first at once, with exact marks
and truncation; DTMF keys reach the model, the records and the monitor."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from pathlib import Path
from typing import Any

from rt_server.backends import create_backend
from rt_server.emulator import EmulatorConfig, run_emulator
from rt_server.emulator.config import Rule
from tests.e2e.records.conftest import ADMIN, records_server, with_records
from tests.e2e.twilio.test_calls import _connection_of, _silence, call_url, settings_for
from tests.e2e.twilio.test_calls import until as poll
from tests.support.harness import client, until
from tests.support.media_streams import SILENCE, Call, tone_mulaw, twilio_call
from tests.support.tap import TapBackend

#: Delta lengths the emulator cycles through: most shorter than 40 ms, as the service's are.
VARIED = (10, 20, 5, 60, 30, 10, 15)
STORY = "once upon a time " * 10


def media_ms(call: Call) -> list[float]:
    return [len(base64.b64decode(m["media"]["payload"])) / 8 for m in call.received("media")]


async def test_short_deltas_reach_twilio_joined_into_40_ms_frames_the_first_at_once() -> None:
    config = EmulatorConfig(audio_chunks_ms=VARIED, rules=(Rule(match="speech", reply=STORY),))
    async with run_emulator(config) as emulator:
        backend = TapBackend(create_backend(settings_for(emulator)))
        async with (
            running(emulator, backend) as server,
            twilio_call(call_url(server)) as call,
        ):
            await call.say(tone_mulaw(600) + SILENCE * 50)
            conn = await _connection_of(backend, call)
            await conn.wait_for(lambda c: bool(c.of_type("response.done")))
            reply = conn.reply_audio()
            await call.wait_for(lambda c: len(c.audio) == len(reply))
            await call.wait_for(lambda c: len(c.echoed) == len(c.received("mark")))
    deltas = [
        len(base64.b64decode(e["delta"])) / 8 for e in conn.of_type("response.output_audio.delta")
    ]
    frames = media_ms(call)
    assert bytes(call.audio) == reply  # every byte, in order
    assert frames[0] == deltas[0] == 10  # the first is never held back
    assert all(ms >= 40 for ms in frames[1:-1])  # the last may be the short rest
    assert len(frames) < len(deltas) / 2
    events = [m["event"] for m in call.messages]
    assert events == ["media", "mark"] * len(frames)  # a mark per frame, all echoed
    assert call.echoed == [m["mark"]["name"] for m in call.received("mark")]


async def test_barge_in_truncates_within_the_joined_audio_the_caller_heard() -> None:
    story = "once upon a time " * 20
    config = EmulatorConfig(
        pace="realtime", audio_chunks_ms=VARIED, rules=(Rule(match="speech", reply=story),)
    )
    async with run_emulator(config) as emulator:
        backend = TapBackend(create_backend(settings_for(emulator)))
        async with (
            running(emulator, backend) as server,
            twilio_call(call_url(server), instant=False) as call,
        ):
            await call.say(tone_mulaw(600) + SILENCE * 50)
            line = asyncio.create_task(_silence(call))
            try:
                await call.wait_for(lambda c: c.played_ms >= 600)
            finally:
                line.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await line
            played_before = call.played_ms
            talk = asyncio.create_task(call.say(tone_mulaw(600), realtime=True))
            await call.wait_for(lambda c: c.clears >= 1)
            played_at_clear = call.played_ms
            cleared_at = next(i for i, m in enumerate(call.messages) if m["event"] == "clear")
            await talk
    sent_ms = sum(media_ms_of(m) for m in call.messages[:cleared_at] if m["event"] == "media")
    [conn] = backend.connections
    [truncate] = conn.of_type("conversation.item.truncate", sent=True)
    assert 0 < truncate["audio_end_ms"] <= sent_ms  # never past what Twilio was sent
    assert played_before - 100 <= truncate["audio_end_ms"] <= played_at_clear + 100
    assert all(ms >= 40 for ms in media_ms(call)[1:-1])


def media_ms_of(message: dict[str, Any]) -> float:
    return len(base64.b64decode(message["media"]["payload"])) / 8


async def test_a_key_reaches_the_model_the_records_and_the_monitor(tmp_path: Path) -> None:
    async with run_emulator(EmulatorConfig()) as emulator:
        settings = with_records(settings_for(emulator), f"sqlite+aiosqlite:///{tmp_path}/r.db")
        backend = TapBackend(create_backend(settings))
        async with records_server(settings, backend) as live:
            base = live.ws_url.removesuffix("/realtime")
            async with client(f"{base}/monitor?token={ADMIN}") as monitor:
                await until(monitor, lambda f: isinstance(f, dict) and f["type"] == "monitor")
                async with twilio_call(f"{base}/call") as call:
                    await call.send(
                        {"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "1"}}
                    )
                    await call.wait_for(lambda c: c.audio_ms() > 500)  # the model answered
                    await poll(lambda: len(backend.connections) == 1)
                    [conn] = backend.connections
                    await conn.wait_for(lambda c: bool(c.of_type("response.done")))
                seen, _ = await until(
                    monitor, lambda f: isinstance(f, dict) and f["type"] == "user_text"
                )
            await live.settle()
            async with live.api() as api:
                [summary] = (await api.get("/api/conversations")).json()["conversations"]
                talk = (await api.get(f"/api/conversations/{summary['id']}")).json()
    [created] = conn.of_type("conversation.item.create", sent=True)
    assert created["item"]["content"] == [{"type": "input_text", "text": "The caller pressed 1"}]
    [reply] = [e for e in conn.of_type("response.done")]
    assert "The caller pressed 1" in str(reply["response"]["output"])
    assert isinstance(seen, dict) and seen["data"] == {"text": "The caller pressed 1", "dtmf": "1"}
    assert talk["turns"][0]["role"] == "user" and talk["turns"][0]["text"] == "The caller pressed 1"


async def test_keys_are_ignored_with_dtmf_ignore() -> None:
    async with run_emulator(EmulatorConfig()) as emulator:
        settings = settings_for(emulator, dtmf="ignore")
        backend = TapBackend(create_backend(settings))
        async with (
            running(emulator, backend, settings) as server,
            twilio_call(call_url(server)) as call,
        ):
            await call.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "1"}})
            await call.say(tone_mulaw(600) + SILENCE * 50)  # a spoken turn, answered
            await call.wait_for(lambda c: c.audio_ms() > 500)
            conn = await _connection_of(backend, call)
    assert conn.of_type("conversation.item.create", sent=True) == []


def running(emulator: Any, backend: TapBackend, settings: Any = None) -> Any:
    from tests.support.harness import running_server

    return running_server(settings or settings_for(emulator), backend)
