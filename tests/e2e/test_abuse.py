"""What an attacker and a careless client tried (issue 19), over real sockets: every field
of every dialect given non-ASCII and non-string values, and the abuses that broke things."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import json
import os
import signal
import sys
import tracemalloc
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rt_server.config import Limits, Settings
from rt_server.emulator import RunningEmulator
from rt_server.logs import configure_logging
from rt_server.observe import SessionInfo
from rt_server.serving import free_port
from rt_server.translate import Note
from tests.conftest import API_KEY, openai_settings
from tests.e2e.test_shutdown import wait_until_listening
from tests.support.harness import (
    Frame,
    RunningServer,
    client,
    connected,
    is_type,
    next_frame,
    running_server,
    send_json,
    until,
)
from tests.support.media_streams import SILENCE, tone_mulaw, twilio_call

FUZZ_LIMITS = Limits(max_audio_realtime_factor=1000.0, backend_connect_timeout=5.0)
SILENCE_B64 = base64.b64encode(b"\x00" * 960).decode()  # 20 ms of PCM16 24 kHz


@asynccontextmanager
async def errors_logged() -> AsyncIterator[list[str]]:
    """Every log line at ERROR or above while the block runs (tracebacks included)."""
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="ERROR")
    try:
        yield lines
    finally:
        logger.remove(sink)


def conversation_url(server: RunningServer) -> str:
    return server.ws_url.removesuffix("/realtime") + "/ws/conversation"


async def conversation_answers(ws: ClientConnection, text: str = "still there") -> list[Frame]:
    await send_json(ws, {"type": "text", "text": text})
    return await answered(ws, text, is_type("response_done"), "text")


async def realtime_answers(ws: ClientConnection, text: str = "still there") -> list[Frame]:
    await send_json(ws, {"type": "user_message", "text": text})
    return await answered(ws, text, is_type("control", "text_done"), "delta")


async def answered(
    ws: ClientConnection, text: str, done: Callable[[Frame], bool], key: str
) -> list[Frame]:
    """Frames up to the end of the reply that says ``text``."""
    seen: list[Frame] = []
    said = ""
    while True:
        frame, frames = await until(ws, done)
        seen += [*frames, frame]
        said = "".join(str(f[key]) for f in frames if isinstance(f, dict) and is_delta(f))
        if text in said:
            return seen


def is_delta(frame: dict[str, Any]) -> bool:
    return frame.get("type") == "text_delta"


def error_of(frame: Frame) -> str | None:
    return str(frame["code"]) if isinstance(frame, dict) and frame.get("type") == "error" else None


# ---------------------------------------------------------------- item 1: non-ASCII base64


@pytest.mark.parametrize("dialect", ["realtime", "conversation"])
@pytest.mark.parametrize("audio", ["日本", "AAAA日本", "\x00\x80", "é" * 8])
async def test_non_ascii_base64_audio_is_invalid_audio_and_the_session_goes_on(
    server: RunningServer, dialect: str, audio: str
) -> None:
    url = server.ws_url if dialect == "realtime" else conversation_url(server)
    async with client(url) as ws:
        await next_frame(ws)  # connected / session_ready
        await send_json(ws, {"type": "audio", "audio": audio})
        error, _ = await until(ws, is_type("error"))
        assert error_of(error) == "invalid_audio"
        if dialect == "realtime":
            await realtime_answers(ws)
        else:
            await conversation_answers(ws)


async def test_an_empty_text_on_the_conversation_dialect_is_refused_like_on_realtime(
    server: RunningServer,
) -> None:
    async with client(conversation_url(server)) as ws:
        await next_frame(ws)
        await send_json(ws, {"type": "text", "text": ""})
        error, _ = await until(ws, is_type("error"))
        assert error_of(error) == "invalid_field"
        await conversation_answers(ws)
    async with client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": ""})
        error, _ = await until(ws, is_type("error"))
        assert error_of(error) == "invalid_field"


# ---------------------------------------------------------------------- the field fuzzer

#: Values no field expects: non-ASCII text, and every JSON type that is not a string.
ODD = st.one_of(
    st.text(st.characters(min_codepoint=0x80), min_size=1, max_size=6),  # no surrogates
    st.text(st.characters(min_codepoint=0x80), max_size=4).map(lambda s: "QUFB" + s),
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
NON_STRING = ODD.filter(lambda value: not isinstance(value, str))


def mutated(template: Any, keep: Callable[[str], bool], path: str = "") -> st.SearchStrategy[Any]:
    """``template`` with any of its fields (at any depth) replaced by an odd value; a
    field ``keep(path)`` says must not become a turn only gets non-string values."""
    if isinstance(template, dict):
        return st.fixed_dictionaries(
            {key: mutated(value, keep, f"{path}.{key}") for key, value in template.items()}
        )
    odd = ODD if keep(path) else NON_STRING
    return st.one_of(st.just(template), odd)


def fuzzed(templates: list[dict[str, Any]], keep: Callable[[str], bool], n: int) -> list[str]:
    """``n`` frames (a fixed seed: the same frames every run)."""
    frames: list[str] = []

    @settings(
        max_examples=n, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck)
    )
    @given(st.sampled_from(templates).flatmap(lambda t: mutated(t, keep)))
    def collect(message: dict[str, Any]) -> None:
        if message not in templates:  # a message left whole is no fuzz
            frames.append(json.dumps(message, ensure_ascii=False))

    collect()
    return frames


REALTIME = [
    {"type": "user_message", "text": "hi", "id": "m1"},
    {"type": "audio", "audio": SILENCE_B64},
    {"type": "control", "action": "interrupt"},
]
CONVERSATION = [
    {"type": "text", "text": "hi"},
    {"type": "audio", "audio": SILENCE_B64},
    {"type": "control", "action": "interrupt"},
]


def not_a_turn(path: str) -> bool:
    return path not in (".text", ".id")  # strings there make a real turn


@pytest.mark.parametrize("dialect", ["realtime", "conversation"])
async def test_every_field_of_every_message_survives_odd_values(
    emulator: RunningEmulator, dialect: str
) -> None:
    templates = REALTIME if dialect == "realtime" else CONVERSATION
    frames = fuzzed(templates, not_a_turn, 300)
    assert any("日" in f or "\\u" in f or any(ord(c) > 127 for c in f) for f in frames)
    settings_ = openai_settings(emulator.http_url, limits=FUZZ_LIMITS)
    async with errors_logged() as errors, running_server(settings_) as server:
        url = server.ws_url if dialect == "realtime" else conversation_url(server)
        answers = realtime_answers if dialect == "realtime" else conversation_answers
        async with client(url) as ws:
            await next_frame(ws)
            for frame in frames:
                await ws.send(frame)
            seen = await answers(ws)  # every odd frame got its answer, and the session goes on
    codes = [error_of(f) for f in seen if error_of(f)]
    assert len(codes) == len(frames)
    assert set(codes) <= {"invalid_audio", "invalid_field", "missing_type", "unknown_type"}
    assert errors == []


TWILIO: list[dict[str, Any]] = [
    {"event": "connected", "protocol": "Call", "version": "1.0.0"},
    {
        "event": "media",
        "sequenceNumber": "3",
        "streamSid": "MZ1",
        "media": {"track": "inbound", "chunk": "1", "timestamp": "20", "payload": "////"},
    },
    {"event": "mark", "sequenceNumber": "4", "streamSid": "MZ1", "mark": {"name": "m1"}},
    {"event": "dtmf", "streamSid": "MZ1", "dtmf": {"track": "inbound_track", "digit": "1"}},
]


async def test_every_field_of_every_twilio_event_survives_odd_values(
    emulator: RunningEmulator,
) -> None:
    frames = fuzzed(TWILIO, lambda path: True, 300)
    settings_ = openai_settings(emulator.http_url, limits=FUZZ_LIMITS)
    async with (
        errors_logged() as errors,
        running_server(settings_) as server,
        twilio_call(server.ws_url.removesuffix("/realtime") + "/call") as call,
    ):
        for frame in frames:
            await call.ws.send(frame)
        await call.say(tone_mulaw(600) + SILENCE * 50)
        await call.wait_for(lambda c: c.audio_ms() > 500)
        assert not call.closed
    assert errors == []


# ------------------------------------------------------ items 2, 3, 11: secrets in logs

CLIENT_TOKEN = "client-token-19-abcdef"
ADMIN_TOKEN = "admin-token-19-abcdef"
TYPED = "typed-payload-19-text"
AUDIO = base64.b64encode(b"audio-payload-19-bytes!!").decode()  # even length: real audio
RAW = b"\xffraw-payload-19-bytes"  # a text frame that is not UTF-8
COMMANDS = {
    "rt-server": ["-c", "from rt_server.main import run; run()"],
    "uvicorn": ["-m", "uvicorn", "rt_server.main:app", "--log-level", "debug"],
}


@asynccontextmanager
async def server_process(
    emulator: RunningEmulator, command: str, **env: str
) -> AsyncIterator[tuple[str, list[str]]]:
    """rt_server in a process of its own at DEBUG; its base URL, and (once the block
    exits and the process has stopped) its whole log."""
    port = free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    environ |= {
        "BACKEND": "openai",
        "OPENAI_API_KEY": API_KEY,
        "OPENAI_BASE_URL": f"{emulator.http_url}/v1",
        "PORT": str(port),
        "LOG_LEVEL": "DEBUG",
        "SCHED_SLICE_US": "0",
        **env,
    }
    args = COMMANDS[command]
    if command == "uvicorn":
        args = [*args, "--port", str(port), "--ws-per-message-deflate", "false"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *args, env=environ, stderr=asyncio.subprocess.PIPE
    )
    log: list[str] = []
    try:
        await wait_until_listening(port, process)
        yield f"127.0.0.1:{port}", log
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.stderr is not None
        async with asyncio.timeout(30):
            log.append((await process.stderr.read()).decode())
            await process.wait()


@pytest.mark.parametrize("command", list(COMMANDS))
async def test_no_token_query_string_or_payload_reaches_the_log(
    emulator: RunningEmulator, command: str, tmp_path: Path
) -> None:
    env = {
        "CLIENT_TOKENS": CLIENT_TOKEN,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "RECORDS_PATH": str(tmp_path / "records.sqlite3"),
    }
    async with server_process(emulator, command, **env) as (where, log):
        async with httpx.AsyncClient(base_url=f"http://{where}") as http:
            assert (await http.get(f"/api/conversations?token={ADMIN_TOKEN}")).status_code == 200
            bearer = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
            await http.get("/api/conversations", headers=bearer)
        async with client(f"ws://{where}/realtime?token={CLIENT_TOKEN}") as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": TYPED})
            await until(ws, is_type("control", "text_done"))
            await send_json(ws, {"type": "audio", "audio": AUDIO})
            await send_json(ws, {"type": "audio", "audio": "日本"})
            await until(ws, is_type("error"))
        headers = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
        async with client(f"ws://{where}/realtime", additional_headers=headers) as ws:
            await connected(ws)
            await ws.send(RAW, text=True)
            with contextlib.suppress(ConnectionClosed):
                while True:
                    await next_frame(ws)
        assert ws.close_code == 1007
        if command == "rt-server":  # the fast edge says why (uvicorn's WebSocket does not)
            assert ws.close_reason == "a text message is not valid UTF-8"
        alone = [f"bearer.{CLIENT_TOKEN}"]
        async with client(f"ws://{where}/realtime", subprotocols=alone) as ws:
            assert ws.subprotocol is None  # item 11: the credential is not echoed back
            assert ws.response is not None
            assert CLIENT_TOKEN not in str(ws.response.headers)
            await connected(ws)
        async with client(f"ws://{where}/monitor?token={ADMIN_TOKEN}") as ws:
            await next_frame(ws)
    text = "".join(log)
    assert "GET /api/conversations HTTP/1.1" in text  # the access log is kept, queries cut
    assert "session end" in text
    for secret in (CLIENT_TOKEN, ADMIN_TOKEN, API_KEY, TYPED, AUDIO, "raw-payload-19", "日本"):
        assert secret not in text, secret


class FailingObserver:
    """An observer with a bug: it fails on a note while holding the user's text."""

    def session_started(self, info: SessionInfo) -> None:
        pass

    def session_note(self, info: SessionInfo, note: Note) -> None:
        text = note.data.get("text")
        if text is not None:
            raise RuntimeError("observer bug")  # a traceback, with `text` among its locals

    def session_ended(self, info: SessionInfo, close_code: int, reason: str) -> None:
        pass


async def test_a_traceback_prints_no_local_variables(
    emulator: RunningEmulator, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging("INFO")
    try:
        settings_ = openai_settings(emulator.http_url)
        async with running_server(settings_, observers=(FailingObserver(),)) as server:
            async with client(server.ws_url) as ws:
                await connected(ws)
                await realtime_answers(ws, TYPED)
    finally:
        logger.remove()
        logger.add(lambda message: None)
    log = capfd.readouterr().err
    assert "observer FailingObserver failed on session_note" in log
    assert "RuntimeError: observer bug" in log  # the traceback is there ...
    assert TYPED not in log  # ... without the locals that hold the client's text


# ------------------------------------------------------------- item 4: /logs and Origin


@pytest.mark.parametrize("edge", [True, False])
async def test_the_monitor_refuses_origins_outside_the_allowlist(
    emulator: RunningEmulator, edge: bool
) -> None:
    settings_ = openai_settings(
        emulator.http_url, admin_token=ADMIN_TOKEN, allowed_origins=("https://app.example",)
    )
    async with running_server(settings_, edge=edge) as server:
        base = server.ws_url.removesuffix("/realtime")
        for path in ("/logs", "/monitor"):  # the Twilio demo's console, rt_server's feed
            with pytest.raises(InvalidStatus) as refused:
                async with client(
                    f"{base}{path}?token={ADMIN_TOKEN}", origin="https://evil.example"
                ):
                    pass
            assert refused.value.response.status_code == 403
            assert b"forbidden_origin" in refused.value.response.body
        async with client(
            f"{base}/monitor?token={ADMIN_TOKEN}", origin="https://app.example"
        ) as ws:
            hello = await next_frame(ws)
        assert isinstance(hello, dict)
        assert hello["type"] == "monitor"


# ------------------------------------------------ item 8: soak on the built-in emulator


async def test_soak_of_text_turns_on_the_built_in_emulator_keeps_nothing() -> None:
    """Connect, a text turn answered in full, disconnect: rt_server and the built-in
    emulator (both in this process) keep nothing of the sessions that ended."""
    counter = iter(range(1_000_000))

    async def cycle(server: RunningServer) -> None:
        async with client(server.ws_url) as ws:
            await connected(ws)
            await realtime_answers(ws, f"soak {next(counter)}")  # a new word every turn

    async def rounds(server: RunningServer, n: int, width: int = 25) -> None:
        for _ in range(n):
            await asyncio.gather(*(cycle(server) for _ in range(width)))

    async with running_server(Settings(backend="emulator", records_url=None)) as server:
        tracemalloc.start()  # before the warm-up: the caches it fills are counted
        try:
            await rounds(server, 8)  # warm up caches and pools (the word-tone cache fills)
            gc.collect()
            before, _ = tracemalloc.get_traced_memory()
            await rounds(server, 8)  # 200 more sessions
            gc.collect()
            after, _ = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    # Both counts hold the last round's sessions still closing; the difference is what 200
    # sessions left behind (22 KB each before: the emulator's word-tone cache grew to 64 MB).
    assert after - before < 2_000_000, f"{(after - before) / 1e3:.0f} KB kept by 200 sessions"


# ------------------------------------------------------------ item 7: typed-turn rate


async def test_a_flood_of_typed_turns_is_refused_with_retry_after(server: RunningServer) -> None:
    async with client(server.ws_url) as ws:
        await connected(ws)
        for n in range(40):  # at once: 20 are the burst, the rest come too fast
            await send_json(ws, {"type": "user_message", "text": f"turn {n}"})
        await send_json(ws, {"type": "end of the flood"})  # answered in order, after them
        _, frames = await until(ws, lambda f: error_of(f) == "unknown_type", timeout=30)
        refused = [f for f in frames if error_of(f) == "text_rate_exceeded"]
        assert 15 <= len(refused) <= 20  # 20 taken at once, and what the rate refilled
        waits = [f["retry_after"] for f in refused if isinstance(f, dict)]
        assert all(0 < wait <= 0.2 for wait in waits)  # 5 a second: one more in 0.2 s
        await asyncio.sleep(max(waits))  # as a client does: try again after retry_after
        await realtime_answers(ws, "after the flood")


async def test_typed_bytes_are_rate_limited_too(emulator: RunningEmulator) -> None:
    limits = Limits(backend_connect_timeout=5.0, max_text_bytes_per_second=4096)
    async with running_server(openai_settings(emulator.http_url, limits=limits)) as server:
        async with client(server.ws_url) as ws:
            await connected(ws)
            big = "x" * 200_000
            await send_json(ws, {"type": "user_message", "text": big})  # one big message fits
            await send_json(ws, {"type": "user_message", "text": big})
            error, _ = await until(ws, is_type("error"))
    assert error_of(error) == "text_rate_exceeded"
    assert isinstance(error, dict)
    # the burst is one message of MAX_MESSAGE_BYTES (262144): 137856 more at 4096 a second
    assert 30 < error["retry_after"] <= 34


# ------------------------------------------------- item 10: /ready means a session works


async def ready(server: RunningServer) -> httpx.Response:
    async with httpx.AsyncClient(timeout=30) as http:
        return await http.get(f"{server.http_url}/ready")


async def test_ready_probes_a_backend_session_and_caches_the_answer(
    emulator: RunningEmulator,
) -> None:
    async with running_server(openai_settings(emulator.http_url)) as server:
        first, second = await ready(server), await ready(server)
    assert first.status_code == second.status_code == 200
    assert first.json() == {"status": "ready", "backend": "openai", "checked_seconds_ago": 0.0}
    assert second.json()["checked_seconds_ago"] >= 0.0
    assert emulator.state.total_connections == 1  # the second answer was the cached one


@pytest.mark.parametrize(
    ("settings_for", "code"),
    [
        (
            lambda url: openai_settings(url, openai_api_key="sk-wrong-key-0123456789"),
            "backend_auth_failed",
        ),
        (
            lambda url: Settings(
                backend="azure",
                azure_endpoint=f"http://127.0.0.1:{free_port()}",  # nothing listens there
                azure_deployment="d",
                azure_api_key="k",
                limits=Limits(backend_connect_timeout=5.0),
            ),
            "backend_unreachable",
        ),
    ],
    ids=["wrong-openai-key", "azure-refuses-connections"],
)
async def test_ready_is_503_when_no_session_could_be_had(
    emulator: RunningEmulator, settings_for: Callable[[str], Settings], code: str
) -> None:
    async with running_server(settings_for(emulator.http_url)) as server:
        answer = await ready(server)
        async with client(server.ws_url) as ws:
            error, _ = await until(ws, is_type("error"))
    assert answer.status_code == 503
    assert answer.json()["code"] == code
    assert error_of(error) == code  # what a session meets, /ready said first
