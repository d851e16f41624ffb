"""Phone calls end to end: a Twilio Media Streams client, rt_server, the emulator behind it."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import pytest

from rt_server.backends import create_backend
from rt_server.config import Limits, Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.emulator.config import Rule
from tests.conftest import openai_settings
from tests.support.harness import RunningServer, running_server
from tests.support.media_streams import SILENCE, Call, tone_mulaw, twilio_call
from tests.support.tap import TapBackend, TapConnection

FAST = Limits(max_audio_realtime_factor=1000.0, backend_connect_timeout=5.0)


def call_url(server: RunningServer) -> str:
    return server.ws_url.removesuffix("/realtime") + "/call"


def settings_for(emulator: RunningEmulator, **changes: object) -> Settings:
    return openai_settings(emulator.http_url, limits=FAST, **changes)


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll a condition nothing signals (the emulator's connection count)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def ask(call: Call, question: bytes) -> None:
    """Say ``question``, then a second of silence so the VAD ends the turn."""
    await call.say(question + SILENCE * 50)


def only_twilio_messages(call: Call) -> bool:
    return all(m["event"] in ("media", "mark", "clear") for m in call.messages) and all(
        m["streamSid"] == call.stream_sid for m in call.messages
    )


@pytest.mark.audio
async def test_a_spoken_question_gets_a_spoken_reply_in_mulaw(emulator: RunningEmulator) -> None:
    from tests.support.speech import speech_mulaw

    backend = TapBackend(create_backend(settings_for(emulator)))
    async with (
        running_server(settings_for(emulator), backend) as server,
        twilio_call(call_url(server)) as call,
    ):
        await ask(call, speech_mulaw("What is the weather like today?"))
        conn = await _connection_of(backend, call)
        await conn.wait_for(lambda c: bool(c.of_type("response.done")))
        reply = conn.reply_audio()
        await call.wait_for(lambda c: len(c.audio) == len(reply))
        await call.wait_for(lambda c: len(c.echoed) == len(c.received("mark")))

    # The caller's audio reached the backend untouched, as mu-law; the reply came back as is.
    assert conn.appended() == bytes(call.sent_audio)
    session = conn.sent[0]["session"]["audio"]
    assert session["input"]["format"] == session["output"]["format"] == {"type": "audio/pcmu"}
    assert bytes(call.audio) == reply
    assert call.audio_ms() > 1000 and call.rms() > 3000  # a second of clearly audible tones
    # Every reply chunk is followed by a mark; every mark came back; nothing else was sent.
    events = [m["event"] for m in call.messages]
    assert events == ["media", "mark"] * (len(events) // 2)
    assert only_twilio_messages(call)
    [transcript] = conn.of_type("conversation.item.input_audio_transcription.completed")
    assert transcript["transcript"].startswith("[speech ")


@pytest.mark.audio
async def test_barge_in_clears_twilio_and_truncates_at_what_the_caller_heard() -> None:
    from tests.support.speech import speech_mulaw

    story = "once upon a time " * 20
    config = EmulatorConfig(pace="realtime", rules=(Rule(match="speech", reply=story),))
    async with run_emulator(config) as emulator:
        backend = TapBackend(create_backend(settings_for(emulator)))
        async with (
            running_server(settings_for(emulator), backend) as server,
            twilio_call(call_url(server), instant=False) as call,
        ):
            await ask(call, speech_mulaw("Tell me a story."))
            line = asyncio.create_task(_silence(call))  # the line stays open, as on a phone
            try:
                await call.wait_for(lambda c: c.played_ms >= 800)
            finally:
                line.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await line
            played_before = call.played_ms
            talk = asyncio.create_task(call.say(speech_mulaw("Stop, stop."), realtime=True))
            await call.wait_for(lambda c: c.clears >= 1)
            played_at_clear = call.played_ms
            before_clear = call.messages[: call.messages.index({"event": "clear", **_sid(call)})]
            await talk

    sent_ms = sum(len(m["media"]["payload"]) * 3 / 4 / 8 for m in before_clear if "media" in m)
    [conn] = backend.connections
    [truncate] = conn.of_type("conversation.item.truncate", sent=True)
    [first_item] = {e["item_id"] for e in conn.of_type("response.output_audio.delta")[:1]}
    assert truncate["item_id"] == first_item
    assert 0 < truncate["audio_end_ms"] <= sent_ms  # never past the audio sent
    # Close to what the player had played when the caller spoke (marks every 100 ms).
    assert played_before - 150 <= truncate["audio_end_ms"] <= played_at_clear + 100


async def _silence(call: Call) -> None:
    while True:
        await call.say(SILENCE * 5, realtime=True)


def _sid(call: Call) -> dict[str, str]:
    return {"streamSid": call.stream_sid}


@pytest.mark.audio
async def test_twenty_concurrent_calls_each_hear_only_their_own_replies(
    emulator: RunningEmulator,
) -> None:
    from tests.support.speech import speech_mulaw

    backend = TapBackend(create_backend(settings_for(emulator)))
    hello = speech_mulaw("Hello there.")

    async def one(number: int) -> tuple[Call, TapConnection]:
        async with twilio_call(call_url(server)) as call:
            # A question of its own length: each call gets a different transcript and reply.
            await ask(call, hello + tone_mulaw(200 + 40 * number))
            conn = await _connection_of(backend, call)
            await conn.wait_for(lambda c: bool(c.of_type("response.done")))
            reply = conn.reply_audio()
            await call.wait_for(lambda c: len(c.audio) == len(reply))
            return call, conn

    async with running_server(settings_for(emulator), backend) as server:
        results = await asyncio.gather(*(one(n) for n in range(20)))
        await until(lambda: emulator.state.active_connections == 0)

    assert len(backend.connections) == 20
    replies = set()
    for call, conn in results:
        assert bytes(call.audio) == conn.reply_audio()  # its own reply, nothing else
        assert only_twilio_messages(call)
        replies.add(bytes(call.audio))
    assert len(replies) == 20
    transcripts = {
        e["transcript"]
        for _, conn in results
        for e in conn.of_type("conversation.item.input_audio_transcription.completed")
    }
    assert len(transcripts) == 20


async def _connection_of(backend: TapBackend, call: Call) -> TapConnection:
    """The backend connection that was given this call's audio."""
    async with asyncio.timeout(10):
        while True:
            for conn in backend.connections:
                if conn.appended() and conn.appended() == bytes(call.sent_audio):
                    return conn
            await asyncio.sleep(0.01)


async def test_hanging_up_closes_the_backend_within_a_second(emulator: RunningEmulator) -> None:
    state = emulator.state
    async with running_server(settings_for(emulator)) as server:
        async with twilio_call(call_url(server)) as call:
            await until(lambda: state.active_connections == 1)
            await call.hang_up()
            await until(lambda: state.active_connections == 0, timeout=1.0)
            await call.wait_for(lambda c: c.closed, timeout=1.0)
            assert call.ws.close_code == 1000
        # The socket just closing (no stop event) does the same.
        async with twilio_call(call_url(server)):
            await until(lambda: state.active_connections == 1)
        await until(lambda: state.active_connections == 0, timeout=1.0)


async def test_garbage_and_unknown_events_do_not_end_the_call(emulator: RunningEmulator) -> None:
    async with (
        running_server(settings_for(emulator)) as server,
        twilio_call(call_url(server)) as call,
    ):
        await until(lambda: emulator.state.active_connections == 1)
        await call.ws.send("{not json")
        await call.ws.send(b"\x00\x01")
        await call.send({"event": "someday", "someday": {}})
        await call.send({"event": "dtmf", "dtmf": {"track": "inbound_track", "digit": "1"}})
        await call.say(tone_mulaw(600) + SILENCE * 50)
        await call.wait_for(lambda c: c.audio_ms() > 500)
        assert only_twilio_messages(call)


async def test_a_welcome_spoken_before_the_stream_starts_is_held_for_it(
    emulator: RunningEmulator,
) -> None:
    from rt_server.profile import Profile

    profile = Profile(welcome_instructions="Greet the caller.")
    settings = settings_for(emulator, profile=profile, profiles={"default": profile})
    backend = TapBackend(create_backend(settings))
    async with (
        running_server(settings, backend) as server,
        twilio_call(call_url(server), started=False) as call,
    ):
        await until(lambda: len(backend.connections) == 1)
        [conn] = backend.connections
        await conn.wait_for(lambda c: bool(c.of_type("response.done")))
        assert call.messages == []  # no streamSid yet: nothing could be sent
        await call.start()
        welcome = conn.reply_audio()
        await call.wait_for(lambda c: len(c.audio) == len(welcome))
        await call.wait_for(lambda c: len(c.echoed) == len(c.received("mark")))
    assert bytes(call.audio) == welcome and only_twilio_messages(call)
