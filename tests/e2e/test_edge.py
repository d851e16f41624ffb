"""The fast edge's limits, each over a real socket from a client misbehaving on purpose:
request heads that never end, frames bigger than their cap, pings with no reads, clients
that stop reading or never complete a close."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from dataclasses import replace

import httpx
import orjson
from websockets.exceptions import ConnectionClosed

from rt_server.config import Settings
from rt_server.edge import EDGE_PROTOCOL
from rt_server.edge.http import MAX_HEAD_BYTES
from rt_server.edge.sockets import CLOSE_TIMEOUT
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.serving import free_port
from tests.conftest import openai_settings
from tests.e2e.test_hardening import still_answers
from tests.e2e.test_shutdown import wait_until_listening
from tests.support.harness import (
    client,
    connected,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)
from tests.support.raw import (
    BINARY,
    PING,
    TEXT,
    RawConnection,
    frame,
    frame_header,
    open_raw,
    open_websocket,
)

SLACK = 5.0  # what a busy test machine may add to a documented bound


def limited(emulator: RunningEmulator, **limits: float) -> Settings:
    settings = openai_settings(emulator.http_url)
    return replace(settings, limits=replace(settings.limits, **limits))  # type: ignore[arg-type]


async def welcomed(connection: RawConnection) -> None:
    _, payload = await connection.read_frame()
    assert orjson.loads(payload)["action"] == "connected"


async def sessions_active(http_url: str) -> float:
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"{http_url}/metrics")).text
    line = next(row for row in metrics.splitlines() if row.startswith("rt_sessions_active "))
    return float(line.split()[1])


# ------------------------------------------------------------------------- HTTP heads


async def test_a_request_head_that_does_not_arrive_in_time_gets_408(
    emulator: RunningEmulator,
) -> None:
    async with running_server(limited(emulator, head_timeout_seconds=0.3)) as server:
        async with contextlib.AsyncExitStack() as stack:
            silent = await stack.enter_async_context(open_raw(server.http_url))
            trickling = await stack.enter_async_context(open_raw(server.http_url))
            trickling.writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            upgrading = await stack.enter_async_context(open_raw(server.ws_url))
            upgrading.writer.write(b"GET /realtime HTTP/1.1\r\nUpgrade: websocket\r\n")
            for connection in (silent, trickling, upgrading):
                async with asyncio.timeout(SLACK):
                    assert (await connection.read_head()).startswith(b"HTTP/1.1 408")
                    assert await connection.closed_by_server()
            # A head in time is served; on a kept-alive connection the next head is timed too.
            kept = await stack.enter_async_context(open_raw(server.http_url))
            kept.writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await kept.read_head()
            assert head.startswith(b"HTTP/1.1 200")
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            await kept.reader.readexactly(length)
            kept.writer.write(b"GET /health HTTP/1.1\r\n")
            async with asyncio.timeout(SLACK):
                assert (await kept.read_head()).startswith(b"HTTP/1.1 408")
                assert await kept.closed_by_server()


async def test_a_request_head_over_the_cap_gets_431_before_the_rest_is_read(
    emulator: RunningEmulator,
) -> None:
    async with running_server(limited(emulator)) as server:
        for head in (
            b"GET /health HTTP/1.1\r\n",
            b"GET /realtime HTTP/1.1\r\nUpgrade: websocket\r\n",
        ):
            async with open_raw(server.http_url) as connection:
                connection.writer.write(head + b"X-Big: " + b"a" * (MAX_HEAD_BYTES + 1024))
                async with asyncio.timeout(SLACK):
                    assert (await connection.read_head()).startswith(b"HTTP/1.1 431")
                    assert await connection.closed_by_server()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"{server.http_url}/health")).status_code == 200


# ----------------------------------------------------------------------------- frames


async def test_frames_announcing_more_than_the_cap_are_refused_from_their_header(
    emulator: RunningEmulator,
) -> None:
    """Eight clients each announce a 15 MiB frame and send 1 KiB of it: each is closed 1009
    at once, though 15 MiB never arrive; a neighbour's session goes on."""
    async with (
        running_server(limited(emulator, max_message_bytes=262144)) as server,
        client(server.ws_url) as neighbour,
        contextlib.AsyncExitStack() as stack,
    ):
        await connected(neighbour)
        attackers = [
            await stack.enter_async_context(open_websocket(server.ws_url)) for _ in range(8)
        ]
        for attacker in attackers:
            await welcomed(attacker)
            attacker.writer.write(frame_header(TEXT, 15 * 1024 * 1024) + b"x" * 1024)
        for attacker in attackers:
            async with asyncio.timeout(SLACK):
                code, reason = await attacker.read_until_close()
            assert code == 1009
            assert "262144" in reason
            assert await attacker.closed_by_server()
        await send_json(neighbour, {"type": "user_message", "text": "still here"})
        _, frames = await until(neighbour, is_type("control", "text_done"))
        assert "still here" in text_of(frames)


async def test_pings_from_a_client_that_never_reads_back_up_into_its_own_socket(
    emulator: RunningEmulator,
) -> None:
    """Pongs the client leaves unread count against its send budget: past the high-water
    mark the server stops reading it, so its pings stop being taken (instead of queueing
    pongs without bound), and it is closed 1008 once the stall timeout passes."""
    settings = limited(emulator, send_buffer_bytes=65536, stall_timeout_seconds=1.0)
    async with (
        running_server(settings) as server,
        open_websocket(server.ws_url, receive_buffer=4096) as flooder,
    ):
        await welcomed(flooder)
        ping = frame(PING, b"p" * 125)
        burst = ping * 512  # 66 KiB of pings
        sent = 0
        with contextlib.suppress(TimeoutError, ConnectionError):
            while sent < 256 * 1024 * 1024:
                flooder.writer.write(burst)
                async with asyncio.timeout(0.5):  # the server stopped taking them
                    await flooder.writer.drain()
                sent += len(burst)
        assert sent < 64 * 1024 * 1024, f"the server took {sent} bytes of pings unread"
        # Still reading nothing, it is closed (the close it never reads, then aborted).
        async with asyncio.timeout(1.0 + CLOSE_TIMEOUT + SLACK):
            while await sessions_active(server.http_url):
                await asyncio.sleep(0.05)
            assert await flooder.closed_by_server()


async def test_a_client_that_stops_reading_is_closed_within_the_stall_timeout() -> None:
    async with run_emulator(EmulatorConfig(echo_audio=True)) as emulator:
        settings = limited(
            emulator,
            send_buffer_bytes=65536,
            stall_timeout_seconds=1.0,
            max_audio_realtime_factor=1e6,
        )
        async with (
            running_server(settings) as server,
            client(server.ws_url) as neighbour,
            open_websocket(server.ws_url, receive_buffer=4096) as reader,
        ):
            await connected(neighbour)
            await welcomed(reader)
            # 9.6 MB of audio, echoed back: more than the kernel's socket buffers take.
            reader.writer.write(frame(BINARY, bytes(9600)) * 1000)
            # It reads nothing more: the session must end and free its backend and its slot.
            async with asyncio.timeout(1.0 + CLOSE_TIMEOUT + SLACK):
                while emulator.state.active_connections > 1:
                    await asyncio.sleep(0.05)
                assert await reader.closed_by_server()
            assert await sessions_active(server.http_url) == 1
            await send_json(neighbour, {"type": "user_message", "text": "neighbour alive"})
            _, frames = await until(neighbour, is_type("control", "text_done"))
            assert "neighbour alive" in text_of(frames)


async def test_a_reader_keeping_up_is_never_closed_on_the_smallest_send_buffer() -> None:
    """The budget counts what the client left unread, not a burst: 2 MB of audio echoed back
    as fast as it goes, on a 64 KiB budget, to a client reading all the while."""
    async with run_emulator(EmulatorConfig(echo_audio=True)) as emulator:
        settings = limited(emulator, send_buffer_bytes=65536, max_audio_realtime_factor=1e6)
        async with running_server(settings) as server, client(server.ws_url) as ws:
            await connected(ws)
            sent = 200 * 9600

            async def echoes() -> int:
                heard = 0
                while heard < sent:
                    frame = await ws.recv()
                    if isinstance(frame, bytes):
                        heard += len(frame)
                return heard

            reading = asyncio.create_task(echoes())
            for _ in range(200):
                await ws.send(bytes(9600))
            async with asyncio.timeout(30):
                assert await reading >= sent
            await still_answers(ws)


async def test_a_close_the_client_never_completes_is_aborted(
    emulator: RunningEmulator,
) -> None:
    async with (
        running_server(limited(emulator, idle_timeout_seconds=1.0)) as server,
        open_websocket(server.ws_url) as silent,
    ):
        await welcomed(silent)
        async with asyncio.timeout(1.0 + SLACK):
            code, _ = await silent.read_until_close()
        assert code == 1000  # idle: the server closes, and the client never answers
        async with asyncio.timeout(CLOSE_TIMEOUT + SLACK):
            assert await silent.closed_by_server()
            while await sessions_active(server.http_url):
                await asyncio.sleep(0.05)


async def test_the_compat_edge_keeps_the_same_bound_on_a_stalled_reader() -> None:
    """``uvicorn rt_server.main:app`` (uvicorn's own WebSocket): the stall timeout holds."""
    async with run_emulator(EmulatorConfig(echo_audio=True)) as emulator:
        settings = limited(
            emulator,
            send_buffer_bytes=65536,
            stall_timeout_seconds=1.0,
            max_audio_realtime_factor=1e6,
        )
        async with running_server(settings, edge=False) as server:
            async with client(server.ws_url, max_queue=1) as ws:
                await connected(ws)
                for _ in range(1000):
                    await ws.send(bytes(9600))
                with contextlib.suppress(ConnectionClosed):
                    async with asyncio.timeout(1.0 + 2 * CLOSE_TIMEOUT + SLACK):
                        while emulator.state.active_connections:
                            await asyncio.sleep(0.05)
            assert emulator.state.active_connections == 0


async def test_uvicorns_command_line_can_serve_the_fast_edge() -> None:
    """``uvicorn rt_server.main:app --ws rt_server.edge.asgi:EdgeProtocol --http
    rt_server.edge.http:EdgeHttpProtocol`` (docs/performance.md): sessions on picows, whose
    frame cap answers from the header."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    env |= {"BACKEND": "emulator", "SCHED_SLICE_US": "0", "LOG_LEVEL": "WARNING"}
    argv = ["-m", "uvicorn", "rt_server.main:app", "--port", str(port)]
    argv += ["--ws", EDGE_PROTOCOL, "--http", "rt_server.edge.http:EdgeHttpProtocol"]
    process = await asyncio.create_subprocess_exec(sys.executable, *argv, env=env)
    try:
        await wait_until_listening(port, process)
        async with open_websocket(f"ws://127.0.0.1:{port}/realtime") as ws:
            await welcomed(ws)
            ws.writer.write(frame_header(TEXT, 15 * 1024 * 1024))
            async with asyncio.timeout(SLACK):
                code, reason = await ws.read_until_close()
        assert code == 1009
        assert "262144" in reason
    finally:
        process.kill()
        await process.wait()
