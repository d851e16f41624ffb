"""``/logs`` as the openai-realtime-twilio-demo web app uses it: the call's Realtime events out
(by the beta names the app knows), ``session.update`` and function-call outputs in; the
configuration is saved for the calls that follow."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import InvalidStatus

from rt_server.backends import create_backend
from rt_server.config import Settings
from rt_server.dialects.logs import BETA_NAMES
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.emulator.config import Rule
from rt_server.emulator.config import ToolCall as ScriptedCall
from tests.conftest import openai_settings
from tests.e2e.twilio.test_calls import FAST
from tests.e2e.twilio.test_calls import until as poll
from tests.support.harness import (
    Frame,
    RunningServer,
    client,
    connected,
    running_server,
    send_json,
    until,
)
from tests.support.media_streams import SILENCE, tone_mulaw, twilio_call
from tests.support.tap import TapBackend, TapConnection

ACCOUNT_TOOL = {
    "type": "function",
    "name": "lookup_account",
    "description": "Look up a caller's account by number.",
    "parameters": {"type": "object", "properties": {"number": {"type": "string"}}},
}
#: The names the demo's frontend handles (handle-realtime-event.ts), beta as it was built.
FRONTEND_NAMES = (
    "session.created",
    "input_audio_buffer.speech_started",
    "conversation.item.created",
    "conversation.item.input_audio_transcription.completed",
    "response.content_part.added",
    "response.audio_transcript.delta",
    "response.output_item.done",
)


def settings_for(emulator: RunningEmulator) -> Settings:
    # The demo's frontend cannot send a token: ADMIN_LOCAL, as its users run it.
    return openai_settings(emulator.http_url, limits=FAST, admin_local=True)


def base_of(server: RunningServer) -> str:
    return server.ws_url.removesuffix("/realtime")


def of_type(kind: str, check: Callable[[dict[str, Any]], bool] = lambda _: True) -> Any:
    def match(frame: Frame) -> bool:
        return isinstance(frame, dict) and frame.get("type") == kind and check(frame)

    return match


async def synced(console: ClientConnection) -> dict[str, Any]:
    """Wait until the server has handled everything the console sent before: a
    ``response.create`` with no call to follow is answered ``no_call``, in order."""
    await send_json(console, {"type": "response.create"})
    error, _ = await until(console, of_type("error"))
    assert isinstance(error, dict)
    assert error["error"]["code"] == "no_call"
    return error


def first_update(conn: TapConnection) -> dict[str, Any]:
    session: dict[str, Any] = conn.of_type("session.update", sent=True)[0]["session"]
    return session


async def test_a_console_configures_the_call_answers_its_tool_and_sees_its_events() -> None:
    rule = Rule(match=r"\[speech", tool_call=ScriptedCall("lookup_account", {"number": "42"}))
    async with run_emulator(EmulatorConfig(rules=(rule,))) as emulator:
        settings = settings_for(emulator)
        backend = TapBackend(create_backend(settings))
        async with (
            running_server(settings, backend) as server,
            client(f"{base_of(server)}/logs", max_queue=None) as console,  # reads all, as a browser
        ):
            update = {
                "instructions": "You are Contoso's phone line.",
                "voice": "ash",
                "tools": [ACCOUNT_TOOL],
            }
            await send_json(console, {"type": "session.update", "session": update})
            await synced(console)  # saved before the call rings
            async with twilio_call(f"{base_of(server)}/call") as call:
                await call.say(tone_mulaw(600) + SILENCE * 50)
                is_call = of_type(
                    "response.output_item.done", lambda f: f["item"]["type"] == "function_call"
                )
                function_call, before = await until(console, is_call)
                assert isinstance(function_call, dict)
                output = {
                    "type": "function_call_output",
                    "call_id": function_call["item"]["call_id"],
                    "output": '{"balance": "12 dollars"}',
                }
                await send_json(console, {"type": "conversation.item.create", "item": output})
                await send_json(console, {"type": "response.create"})
                said = of_type(
                    "response.audio_transcript.done", lambda f: "lookup_account" in f["transcript"]
                )
                reply, after = await until(console, said)
                await call.wait_for(lambda c: c.audio_ms() > 500)  # the caller hears the answer

    seen = [f for f in [*before, function_call, *after, reply] if isinstance(f, dict)]
    names = [f["type"] for f in seen]
    for name in FRONTEND_NAMES:
        assert name in names, name
    assert not set(names) & set(BETA_NAMES)  # no GA-only names
    audio = [f for f in seen if f["type"] == "response.audio.delta"]
    assert audio
    assert all("delta" not in f for f in audio)  # audio payloads are left out
    assert isinstance(reply, dict)
    assert "12 dollars" in reply["transcript"]
    parts = [f["part"]["type"] for f in seen if f["type"] == "response.content_part.added"]
    assert set(parts) <= {"audio", "text"}

    [conn] = backend.connections
    session = first_update(conn)
    assert session["instructions"] == "You are Contoso's phone line."  # the saved configuration
    assert session["audio"]["output"]["voice"] == "ash"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}  # the server's
    assert "lookup_account" in [tool["name"] for tool in session["tools"]]
    # The operator's tool was answered by the operator, once, and not run by the server.
    [given] = [
        e["item"]
        for e in conn.of_type("conversation.item.create", sent=True)
        if e["item"]["type"] == "function_call_output"
    ]
    assert given["output"] == '{"balance": "12 dollars"}'
    assert len(conn.of_type("response.create", sent=True)) == 1  # the console's, not a second


async def test_a_live_update_reaches_the_call_and_is_saved_for_the_next_one(
    emulator: RunningEmulator,
) -> None:
    settings = settings_for(emulator)
    backend = TapBackend(create_backend(settings))
    pirate = {"instructions": "Speak like a pirate.", "input_audio_format": "pcm16"}
    async with (
        running_server(settings, backend) as server,
        client(f"{base_of(server)}/logs", max_queue=None) as console,
    ):
        async with twilio_call(f"{base_of(server)}/call") as call:
            await until(console, of_type("session.created"))  # following this call
            await send_json(console, {"type": "session.update", "session": pirate})
            refused, _ = await until(console, of_type("error"))
            [first] = backend.connections
            await first.wait_for(lambda c: len(c.of_type("session.update", sent=True)) == 2)
            await until(console, of_type("session.updated"))
            await call.hang_up()
        await synced(console)  # the call is over: nothing to follow until the next one
        async with twilio_call(f"{base_of(server)}/call"):
            await until(console, of_type("session.created"))
            await poll(lambda: len(backend.connections) == 2)

    assert isinstance(refused, dict)
    assert refused["error"]["code"] == "unsupported_field"
    assert "session.input_audio_format" in refused["error"]["message"]
    live = first.of_type("session.update", sent=True)[1]["session"]
    assert live["instructions"] == "Speak like a pirate."
    assert live["audio"]["input"]["format"] == {"type": "audio/pcmu"}  # not the console's
    assert first_update(backend.connections[1])["instructions"] == "Speak like a pirate."


async def test_a_console_can_follow_any_session_by_id(emulator: RunningEmulator) -> None:
    settings = settings_for(emulator)
    async with running_server(settings) as server:
        base = base_of(server)
        with pytest.raises(InvalidStatus) as unknown:
            async with client(f"{base}/logs?session=nope"):
                pass
        assert unknown.value.response.status_code == 404
        async with (
            client(server.ws_url, max_queue=None) as ws,
            client(f"{base}/monitor", max_queue=None) as monitor,
        ):
            await connected(ws)
            hello, _ = await until(monitor, of_type("monitor"))
            assert isinstance(hello, dict)
            [live] = hello["sessions"]
            async with client(f"{base}/logs?session={live['session']}", max_queue=None) as logs:
                await send_json(ws, {"type": "user_message", "text": "pinned hello"})
                said = of_type(
                    "response.audio_transcript.done", lambda f: "pinned hello" in f["transcript"]
                )
                _, seen = await until(logs, said)
    assert "conversation.item.created" in [f["type"] for f in seen if isinstance(f, dict)]
    assert unknown.value.response.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("sent", "code"),
    [
        ("not json", "invalid_json"),
        ('{"type": "input_audio_buffer.append", "audio": ""}', "unknown_type"),
        ('{"type": "session.update", "session": {"voice": "bob"}}', "invalid_field"),
        ('{"type": "session.update"}', "missing_field"),
        (
            '{"type": "conversation.item.create", "item": {"type": "message", "role": "user"}}',
            "invalid_field",
        ),
        (
            '{"type": "conversation.item.create",'
            ' "item": {"type": "function_call_output", "call_id": "c1", "output": "{}"}}',
            "no_call",
        ),
        (b"\x00\x01", "invalid_event"),
    ],
)
async def test_what_a_console_sends_wrong_is_answered_with_a_realtime_error(
    emulator: RunningEmulator, sent: str | bytes, code: str
) -> None:
    async with (
        running_server(settings_for(emulator)) as server,
        client(f"{base_of(server)}/logs") as console,
    ):
        await console.send(sent)
        error, _ = await until(console, of_type("error"))
        await synced(console)  # and the console goes on
    assert isinstance(error, dict)
    assert error["error"]["code"] == code, error
    assert error["error"]["type"] == "invalid_request_error"
    assert error["error"]["message"]


async def test_the_console_needs_the_admin_token_without_admin_local(
    emulator: RunningEmulator,
) -> None:
    settings = openai_settings(emulator.http_url, admin_token="console-token")
    async with running_server(settings) as server:
        with pytest.raises(InvalidStatus) as refused:
            async with client(f"{base_of(server)}/logs"):
                pass
        assert refused.value.response.status_code == 401
        async with client(f"{base_of(server)}/logs?token=console-token") as console:
            await synced(console)
