"""The `rt-server` console script: HOST/PORT from the environment, fail fast on bad config."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx

from rt_server.sched import current_slice_us
from rt_server.serving import free_port
from tests.e2e.test_shutdown import wait_until_listening
from tests.unit.test_sched import HONOURED

RUN = "from rt_server.main import run; run()"


def clean_env(**changes: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "AZURE_"))}
    return env | changes


async def test_rt_server_honours_host_and_port() -> None:
    port = free_port()
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUN,
        env=clean_env(BACKEND="emulator", HOST="127.0.0.1", PORT=str(port)),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_until_listening(port, process)
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{port}/health")
        assert response.json() == {"status": "ok"}
        # SCHED_SLICE_US's default, on the event loop's thread (the process's main thread)
        assert current_slice_us(process.pid) == (100 if HONOURED else None)
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(15):
            await process.wait()
    assert process.stderr is not None
    log = (await process.stderr.read()).decode()
    assert "built-in emulator" in log  # the loud warning when no credentials are set
    assert "start-up heap frozen" in log  # full collections skip what start-up built
    assert ("scheduler slice: 0.1 ms" in log) is HONOURED


async def test_a_bad_variable_stops_start_up_naming_it() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        RUN,
        env=clean_env(BACKEND="openai", PORT=str(free_port())),
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    assert stderr.decode().strip() == "rt-server: OPENAI_API_KEY is required when BACKEND=openai"
