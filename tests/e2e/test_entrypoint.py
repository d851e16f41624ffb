"""The `rt-server` console script: HOST/PORT from the environment, fail fast on bad config."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
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


async def failed_start(**env: str) -> tuple[int | None, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN, env=clean_env(BACKEND="emulator", **env),
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    async with asyncio.timeout(30):
        _, stderr = await process.communicate()
    return process.returncode, stderr.decode()


async def test_a_host_that_is_no_address_stops_start_up_naming_it() -> None:
    code, stderr = await failed_start(HOST="999.1.1.1", PORT=str(free_port()))
    assert code == 2
    assert stderr.strip() == "rt-server: HOST must be an IP address or a host name, got '999.1.1.1'"


async def test_a_port_in_use_stops_start_up_before_it_is_ready() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, stderr = await failed_start(HOST="127.0.0.1", PORT=str(port))
    assert code == 2
    assert f"rt-server: cannot listen on HOST=127.0.0.1 PORT={port}: " in stderr
    assert "in use" in stderr
    assert "rt_server ready" not in stderr  # nothing was started


async def test_a_host_that_does_not_resolve_stops_start_up_naming_it() -> None:
    code, stderr = await failed_start(HOST="no-such-host.invalid", PORT=str(free_port()))
    assert code == 2
    assert "rt-server: cannot listen on HOST=no-such-host.invalid" in stderr
