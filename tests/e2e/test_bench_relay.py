"""The benchmarks' floor relay pipes bytes both ways unchanged and passes a close on.

Its figures are only a floor if it relays faithfully; these run it on real loopback
sockets in front of a small echo server.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

import pytest

from benchmarks.procs import slice_of
from benchmarks.relay import start
from rt_server.sched import DEFAULT_US, current_slice_us
from rt_server.serving import free_port
from tests.unit.test_sched import HONOURED


@contextlib.asynccontextmanager
async def relay_to(upstream: int) -> AsyncIterator[int]:
    port = free_port()
    async with await start(port, upstream):
        yield port


@pytest.fixture
async def echo() -> AsyncIterator[tuple[int, asyncio.Queue[bytes]]]:
    """An upstream that echoes and reports what it saw when its client hung up."""
    seen: asyncio.Queue[bytes] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        got = bytearray()
        while data := await reader.read(65536):
            got += data
            writer.write(data)
            await writer.drain()
        writer.close()
        seen.put_nowait(bytes(got))

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1], seen


async def test_bytes_cross_both_ways_unchanged_and_a_close_reaches_upstream(
    echo: tuple[int, asyncio.Queue[bytes]],
) -> None:
    upstream, seen = echo
    payload = bytes(range(256)) * 4096  # 1 MiB: more than one socket buffer, so it is paced
    async with relay_to(upstream) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        await writer.drain()
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 30)
        writer.close()
        received = await asyncio.wait_for(seen.get(), 30)
    assert echoed == payload
    assert received == payload


async def test_an_unreachable_upstream_closes_the_client() -> None:
    async with relay_to(free_port()) as port:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await asyncio.wait_for(reader.read(), 30) == b""  # EOF, not a hang
        writer.close()


async def test_the_relay_asks_for_the_slice_rt_server_would() -> None:
    assert slice_of(None) == DEFAULT_US  # rt_server's default when SCHED_SLICE_US is unset
    assert slice_of({"SCHED_SLICE_US": "0"}) == 0
    argv = ["-m", "benchmarks.relay", "--port", str(free_port()), "--upstream", "1"]
    process = await asyncio.create_subprocess_exec(
        sys.executable, *argv, "--slice-us", "300", stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(30):
            line = (await process.stdout.readline()).decode()
        assert line.startswith("scheduler slice: ")
        assert current_slice_us(process.pid) == (300 if HONOURED else None)
    finally:
        process.terminate()
        await process.wait()
