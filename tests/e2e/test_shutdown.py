"""Graceful shutdown of a real `uvicorn rt_server.main:app` process on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

import pytest

from rt_server.serving import free_port
from tests.support.harness import client, connected, is_type, send_json, until


async def wait_until_listening(port: int, process: asyncio.subprocess.Process) -> None:
    async with asyncio.timeout(30):
        while True:
            assert process.returncode is None, "rt_server exited during start-up"
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)  # nothing to await on another process's start-up
                continue
            writer.close()
            await writer.wait_closed()
            return


@pytest.fixture
async def process() -> asyncio.subprocess.Process:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    env |= {"BACKEND": "emulator", "SHUTDOWN_GRACE_SECONDS": "10", "LOG_LEVEL": "INFO"}
    env["SCHED_SLICE_US"] = "0"  # the kernel's default: no slice asked for
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "uvicorn",
        "rt_server.main:app",
        "--port",
        str(port),
        "--ws-per-message-deflate",
        "false",
        env=env,
        stderr=asyncio.subprocess.PIPE,
    )
    await wait_until_listening(port, proc)
    proc.port = port  # type: ignore[attr-defined]
    return proc


async def test_sigterm_lets_the_reply_finish_then_closes_with_1001(
    process: asyncio.subprocess.Process,
) -> None:
    url = f"ws://127.0.0.1:{process.port}/realtime"  # type: ignore[attr-defined]
    try:
        async with client(url) as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": "please finish this sentence"})
            await until(ws, lambda frame: isinstance(frame, bytes))
            process.send_signal(signal.SIGTERM)
            await until(ws, is_type("control", "shutting_down"))
            _, rest = await until(ws, is_type("control", "text_done"), timeout=15)
            await ws.wait_closed()
            assert ws.close_code == 1001
        assert any(isinstance(frame, bytes) for frame in rest)  # the reply went on
        async with asyncio.timeout(15):
            # uvicorn re-raises the signal it handled once it has stopped cleanly.
            assert await process.wait() in (0, -signal.SIGTERM)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert "shutting down: draining 1 sessions" in log
    assert "start-up heap frozen" in log  # rt_server.main:app, as the console script
    assert "scheduler slice" not in log  # SCHED_SLICE_US=0
    assert "close 1001" in log


async def test_sigterm_on_the_gateway_tells_the_client_then_closes_with_1001(
    process: asyncio.subprocess.Process,
) -> None:
    from openai import AsyncOpenAI
    from websockets.exceptions import ConnectionClosed

    port = process.port  # type: ignore[attr-defined]
    openai = AsyncOpenAI(api_key="unused", websocket_base_url=f"ws://127.0.0.1:{port}/v1")
    after: list[dict[str, object]] = []
    try:
        async with openai.realtime.connect(model="gpt-realtime") as connection:
            await connection.response.create()
            async for event in connection:
                if event.type == "response.output_audio.delta":
                    break
            process.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(_read_to_the_end(connection, after), 15)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1001
        async with asyncio.timeout(15):
            assert await process.wait() in (0, -signal.SIGTERM)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    kinds = [event["type"] for event in after]
    told = kinds.index("error")
    assert after[told]["error"]["code"] == "shutting_down"  # type: ignore[index]
    assert "response.done" in kinds[told:]  # the response went on to its end


async def _read_to_the_end(connection: Any, into: list[dict[str, object]]) -> None:
    while True:
        into.append((await connection.recv()).to_dict())
