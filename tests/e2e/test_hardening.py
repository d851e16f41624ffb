"""Hardening: bad input, backend faults, abusive clients, limits and long sessions, all
over real sockets against the emulator's fault injection."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from loguru import logger
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rt_server.backends import create_backend
from rt_server.config import Limits, Settings
from rt_server.emulator import EmulatorConfig, Faults, RunningEmulator, run_emulator
from rt_server.logs import configure_logging
from rt_server.profile import Profile
from tests.conftest import API_KEY, openai_settings
from tests.support.harness import (
    RunningServer,
    client,
    connected,
    is_type,
    next_frame,
    running_server,
    send_json,
    text_of,
    until,
)
from tests.support.recording import FirstConnectionCloses

CLIENT_TOKEN = "client-token-abcdef-123456"


def limited(emulator: RunningEmulator, **limits: Any) -> Settings:
    return openai_settings(emulator.http_url, limits=Limits(backend_connect_timeout=5.0, **limits))


async def error_code(ws: ClientConnection) -> str:
    error, _ = await until(ws, is_type("error"))
    assert isinstance(error, dict)
    return str(error["code"])


async def still_answers(ws: ClientConnection, text: str = "are you there") -> None:
    await send_json(ws, {"type": "user_message", "text": text})
    _, frames = await until(ws, is_type("control", "text_done"))
    assert text in text_of(frames)


# ------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ("{oops", "invalid_json"),
        ("[1, 2, 3]", "not_an_object"),
        ("42", "not_an_object"),
        ("{}", "missing_type"),
        ('{"type": null}', "missing_type"),
        ('{"type": "launch_rockets"}', "unknown_type"),
        ('{"type": "user_message"}', "missing_field"),
        ('{"type": "user_message", "text": ["a"]}', "invalid_field"),
        ("[" * 100_000, "nesting_too_deep"),
        (b"\x00", "invalid_audio"),
        (b"", "invalid_audio"),
        ('{"type": "audio", "audio": "%%%"}', "invalid_audio"),
    ],
)
async def test_bad_input_gets_a_specific_error_and_the_session_goes_on(
    server: RunningServer, frame: str | bytes, code: str
) -> None:
    async with client(server.ws_url) as ws:
        await connected(ws)
        await ws.send(frame)
        assert await error_code(ws) == code
        await still_answers(ws)


async def test_live_socket_fuzz_never_breaks_a_session_or_its_neighbour(
    server: RunningServer,
) -> None:
    async with client(server.ws_url) as victim, client(server.ws_url) as neighbour:
        await connected(victim)
        await connected(neighbour)
        frames: list[str | bytes] = []

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(
            st.one_of(
                st.binary(max_size=64),
                st.text(max_size=64),
                st.dictionaries(
                    st.sampled_from(["type", "text", "audio", "action", "id"]),
                    st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=8)),
                ).map(lambda d: orjson.dumps(d).decode()),
            )
        )
        def collect(frame: str | bytes) -> None:
            frames.append(frame)

        collect()
        for frame in frames:
            if frame == "" or (isinstance(frame, str) and '"user_message"' in frame):
                continue  # a valid user turn would start a reply; not what is fuzzed here
            await victim.send(frame)
        await still_answers(victim, "victim alive")
        await still_answers(neighbour, "neighbour alive")


async def test_text_over_the_size_limit_closes_with_1009(emulator: RunningEmulator) -> None:
    """On the fast edge the frame's header is enough: refused before its payload is read."""
    async with running_server(limited(emulator, max_message_bytes=2048)) as server:
        async with client(server.ws_url) as ws:
            await connected(ws)
            with contextlib.suppress(ConnectionClosed):
                await send_json(ws, {"type": "user_message", "text": "x" * 5000})
                await until(ws, lambda frame: False)
            await ws.wait_closed()
    assert ws.close_code == 1009
    assert ws.close_reason and "2048" in ws.close_reason


async def test_text_over_the_size_limit_on_uvicorns_websocket(emulator: RunningEmulator) -> None:
    settings_ = limited(emulator, max_message_bytes=2048)
    async with running_server(settings_, edge=False) as server:
        async with client(server.ws_url) as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": "x" * 5000})
            assert await error_code(ws) == "message_too_large"
            await ws.wait_closed()
    assert ws.close_code == 1009
    assert ws.close_reason and "2048" in ws.close_reason


async def test_audio_far_faster_than_real_time_is_refused(emulator: RunningEmulator) -> None:
    async with running_server(limited(emulator, max_audio_realtime_factor=2.0)) as server:
        async with client(server.ws_url) as ws:
            await connected(ws)
            silence = bytes(48 * 1000)  # one second per frame, as fast as the socket goes
            with contextlib.suppress(ConnectionClosed):
                for _ in range(20):
                    await ws.send(silence)
            assert await error_code(ws) == "audio_rate_exceeded"
            await ws.wait_closed()
    assert ws.close_code == 1008


@pytest.mark.parametrize(
    ("limit", "code"),
    [("idle_timeout_seconds", "idle_timeout"), ("max_session_seconds", "session_expired")],
)
async def test_idle_and_overlong_sessions_are_closed(
    emulator: RunningEmulator, limit: str, code: str
) -> None:
    async with running_server(limited(emulator, **{limit: 1.0})) as server:
        async with client(server.ws_url) as ws:
            await connected(ws)
            assert await error_code(ws) == code
            await ws.wait_closed()
    assert ws.close_code == 1000


# --------------------------------------------------------------------------- backend faults


async def test_backend_error_events_reach_the_client_and_the_session_goes_on(
    emulator: RunningEmulator,
) -> None:
    settings_ = openai_settings(emulator.http_url, profile=Profile(turn_detection="none"))
    async with running_server(settings_) as server, client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "control", "action": "commit"})  # nothing to commit
        error, _ = await until(ws, is_type("error"))
        assert isinstance(error, dict)
        assert error["code"] == "backend_error"
        assert "buffer" in error["message"].lower()
        assert API_KEY not in json.dumps(error)
        await still_answers(ws)


async def test_backend_drop_is_told_and_the_conversation_is_restored(
    emulator: RunningEmulator,
) -> None:
    emulator.state.set_faults_once(Faults(close_mid_response=True))
    async with running_server(limited(emulator)) as server, client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": "my name is Ada"})
        assert await error_code(ws) == "backend_closed"
        assert await error_code(ws) == "backend_reconnected"
        await still_answers(ws, "and I like tea")
        await send_json(ws, {"type": "user_message", "text": "recap"})
        _, frames = await until(ws, is_type("control", "text_done"))
    recap = text_of(frames)
    # The new backend session saw the turns from before the drop.
    assert "my name is Ada | and I like tea" in recap
    assert emulator.state.total_connections >= 2


async def test_backend_session_cap_is_survived(emulator: RunningEmulator) -> None:
    emulator.state.set_faults_once(Faults(max_session_seconds=1.0))
    async with running_server(limited(emulator)) as server, client(server.ws_url) as ws:
        await connected(ws)
        await still_answers(ws, "remember the blue door")
        codes = [await error_code(ws) for _ in range(3)]
        assert codes[-2:] == ["backend_closed", "backend_reconnected"]
        await send_json(ws, {"type": "user_message", "text": "recap"})
        _, frames = await until(ws, is_type("control", "text_done"))
    assert "remember the blue door" in text_of(frames)


async def test_spent_reconnects_end_the_session_clearly(emulator: RunningEmulator) -> None:
    emulator.state.set_faults(Faults(handshake_status=503))  # every reconnect is refused
    emulator.state.set_faults_once(Faults(close_after_events=4))  # the first one drops
    settings_ = limited(emulator, reconnect_attempts=2)
    async with running_server(settings_) as server, client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": "hello"})
        codes = [await error_code(ws), await error_code(ws)]
        await ws.wait_closed()
    assert codes == ["backend_closed", "backend_closed"]
    assert ws.close_code == 1011


async def test_a_send_of_the_backend_pump_that_finds_it_gone_reconnects(
    emulator: RunningEmulator,
) -> None:
    """The second question, typed over the first answer, is asked for by the backend pump
    once that answer is done; its send is the first to find the socket closed. The pump
    reconnects (it used to wait for itself to do so, and the session went silent)."""
    settings_ = limited(emulator)
    backend = FirstConnectionCloses(create_backend(settings_), "response.create", nth=2)
    async with running_server(settings_, backend) as server, client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": "one"})
        await send_json(ws, {"type": "user_message", "text": "two"})
        assert await error_code(ws) == "backend_closed"
        assert await error_code(ws) == "backend_reconnected"
        await still_answers(ws, "after the drop")


async def test_a_welcome_the_backend_is_gone_for_reconnects(emulator: RunningEmulator) -> None:
    """The welcome turn's send is the first to find the socket closed: the session
    reconnects, as for any drop, instead of waiting for a reconnect nobody makes."""
    settings_ = replace(limited(emulator), profile=Profile(welcome_instructions="Greet."))
    backend = FirstConnectionCloses(create_backend(settings_), "response.create", nth=1)
    async with running_server(settings_, backend) as server, client(server.ws_url) as ws:
        async with asyncio.timeout(10):  # before the fix, nothing came: not even `connected`
            await connected(ws)
            assert await error_code(ws) == "backend_closed"
            assert await error_code(ws) == "backend_reconnected"
            await still_answers(ws, "after the lost welcome")


async def test_a_stalled_reply_becomes_an_error_not_a_hang(emulator: RunningEmulator) -> None:
    emulator.state.set_faults_once(Faults(stall_responses=True))
    settings_ = limited(emulator, response_timeout_seconds=0.5)
    async with running_server(settings_) as server, client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": "hello?"})
        assert await error_code(ws) == "backend_timeout"
        assert await error_code(ws) == "backend_closed"
        assert await error_code(ws) == "backend_reconnected"
        await still_answers(ws, "after the stall")


# ------------------------------------------------------------------------ abusive clients


@pytest.fixture
async def guarded(emulator: RunningEmulator) -> AsyncIterator[RunningServer]:
    settings_ = openai_settings(
        emulator.http_url,
        client_tokens=(CLIENT_TOKEN, "another-token"),
        allowed_origins=("https://app.example",),
        cors_origins=("https://app.example",),
    )
    async with running_server(settings_) as server:
        yield server


async def test_no_token_is_refused_before_any_backend_connection(
    guarded: RunningServer, emulator: RunningEmulator
) -> None:
    for url in (guarded.ws_url, f"{guarded.ws_url}?token=wrong"):
        with pytest.raises(InvalidStatus) as refused:
            async with client(url):
                pass
        assert refused.value.response.status_code == 401
        assert b"unauthorized" in refused.value.response.body
    assert emulator.state.total_connections == 0


@pytest.mark.parametrize("where", ["header", "query", "subprotocol"])
async def test_a_token_is_accepted_from_each_place(guarded: RunningServer, where: str) -> None:
    options: dict[str, Any] = {}
    url = guarded.ws_url
    if where == "header":
        options["additional_headers"] = {"Authorization": f"Bearer {CLIENT_TOKEN}"}
    elif where == "query":
        url += f"?token={CLIENT_TOKEN}"
    else:
        options["subprotocols"] = ["rt.v1", f"bearer.{CLIENT_TOKEN}"]
    async with client(url, **options) as ws:
        await connected(ws)
        if where == "subprotocol":
            assert ws.subprotocol == "rt.v1"


async def test_origins_outside_the_allowlist_are_refused(guarded: RunningServer) -> None:
    url = f"{guarded.ws_url}?token={CLIENT_TOKEN}"
    with pytest.raises(InvalidStatus) as refused:
        async with client(url, origin="https://evil.example"):
            pass
    assert refused.value.response.status_code == 403
    async with client(url, origin="https://app.example") as ws:
        await connected(ws)


async def test_cors_allows_only_configured_origins(guarded: RunningServer) -> None:
    async with httpx.AsyncClient() as http:
        good = await http.get(
            f"{guarded.http_url}/health", headers={"Origin": "https://app.example"}
        )
        bad = await http.get(
            f"{guarded.http_url}/health", headers={"Origin": "https://evil.example"}
        )
    assert good.headers["access-control-allow-origin"] == "https://app.example"
    assert good.headers["access-control-allow-credentials"] == "true"
    assert "access-control-allow-origin" not in bad.headers


async def test_session_cap_refuses_with_1013_before_the_backend(emulator: RunningEmulator) -> None:
    async with running_server(limited(emulator, max_sessions=1)) as server:
        async with client(server.ws_url) as first:
            await connected(first)
            async with client(server.ws_url) as second:
                assert await error_code(second) == "too_many_sessions"
                await second.wait_closed()
            assert second.close_code == 1013
            assert emulator.state.total_connections == 1
            await still_answers(first)


async def test_a_client_that_stops_reading_is_closed_and_memory_stays_bounded() -> None:
    async with run_emulator(EmulatorConfig(words_per_second=1.0)) as emulator:
        settings_ = limited(emulator, send_buffer_bytes=65536)
        async with running_server(settings_) as server:
            async with client(server.ws_url, max_queue=1) as ws:
                await connected(ws)
                await send_json(ws, {"type": "user_message", "text": "word " * 300})
                # We never read again: the server must give up on us and free the backend.
                async with asyncio.timeout(20):
                    while emulator.state.active_connections:
                        await asyncio.sleep(0.05)
            assert ws.close_code in (1006, 1008, None)  # the close frame may never be read
            async with httpx.AsyncClient() as http:
                metrics = (await http.get(f"{server.http_url}/metrics")).text
    assert "rt_sessions_active 0.0" in metrics


# ----------------------------------------------------------------------------- operations


async def test_metrics_count_sessions_messages_and_errors(server: RunningServer) -> None:
    async with client(server.ws_url) as ws:
        await connected(ws)
        await ws.send("{bad")
        await error_code(ws)
        await still_answers(ws)
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"{server.http_url}/metrics")).text
    assert 'rt_sessions_total{dialect="realtime"} 1.0' in text
    assert 'rt_errors_total{code="invalid_json"} 1.0' in text
    assert 'rt_messages_total{direction="in",type="text"} 2.0' in text
    assert 'rt_messages_total{direction="out",type="audio"}' in text
    assert "rt_backend_connect_seconds_count 1.0" in text


async def test_ready_reports_whether_the_credential_works(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with httpx.AsyncClient() as http:
        ok = await http.get(f"{server.http_url}/ready")
    assert ok.status_code == 200
    assert ok.json()["status"] == "ready"
    for name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER", "MSI_ENDPOINT", "AZURE_CLIENT_ID"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AZURE_CONFIG_DIR", "/nonexistent")  # no az login either
    monkeypatch.setenv("PATH", "/nonexistent")  # no az / azd / pwsh to ask
    azure = Settings(backend="azure", azure_endpoint="http://127.0.0.1:9", azure_deployment="d")
    async with running_server(azure) as server_, httpx.AsyncClient(timeout=60) as http:
        unready = await http.get(f"{server_.http_url}/ready")
    assert unready.status_code == 503
    assert unready.json()["code"] == "backend_auth_failed"


async def test_no_secret_reaches_logs_or_clients(emulator: RunningEmulator) -> None:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level="TRACE")
    received: list[Any] = []
    try:
        settings_ = openai_settings(emulator.http_url, client_tokens=(CLIENT_TOKEN,))
        async with running_server(settings_) as server:
            async with client(f"{server.ws_url}?token={CLIENT_TOKEN}") as ws:
                received.append(await connected(ws))
                await ws.send("{bad")
                received.append(await next_frame(ws))
                await send_json(ws, {"type": "user_message", "text": "hello"})
                done, frames = await until(ws, is_type("control", "text_done"))
                received += [done, *frames]
            emulator.state.set_faults(Faults(handshake_status=401))
            async with client(f"{server.ws_url}?token={CLIENT_TOKEN}") as ws:
                received.append(await next_frame(ws))
    finally:
        logger.remove(sink)
    text = "\n".join(lines) + "\n".join(
        frame.decode("latin-1") if isinstance(frame, bytes) else json.dumps(frame)
        for frame in received
    )
    assert lines
    for secret in (API_KEY, CLIENT_TOKEN):
        assert secret not in text


def test_json_logs_are_one_object_per_line(capfd: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", json=True)
    try:
        logger.bind(session="abc123").info("hello {}", "json")
    finally:
        logger.remove()
        logger.add(lambda message: None)
    record = json.loads(capfd.readouterr().err.strip().splitlines()[-1])
    assert record["record"]["message"] == "hello json"
    assert record["record"]["extra"]["session"] == "abc123"


async def test_soak_connect_disconnect_leaves_no_tasks_fds_or_memory_behind(
    server: RunningServer, emulator: RunningEmulator
) -> None:
    import resource

    async def cycle() -> None:
        async with client(server.ws_url) as ws:
            await connected(ws)

    for _ in range(50):  # warm up caches and pools
        await cycle()
    gc.collect()
    tasks0, fds0 = len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(1000):
        await cycle()
    async with asyncio.timeout(5):
        while emulator.state.active_connections:
            await asyncio.sleep(0.01)
    gc.collect()
    tasks1, fds1 = len(asyncio.all_tasks()), len(os.listdir("/proc/self/fd"))
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"\nsoak 1000 cycles: tasks {tasks0}->{tasks1}, fds {fds0}->{fds1}, max RSS {rss0}->{rss1} KiB"
    )
    assert tasks1 <= tasks0
    assert fds1 <= fds0 + 2
    assert rss1 - rss0 < 20_000  # KiB: no per-session growth (1000 sessions would show)
