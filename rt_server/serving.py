"""Run an ASGI app on a loopback port inside the current event loop.

Used for the embedded emulator and by the tests and benchmarks: the socket is bound
before the server starts, so port 0 gives a free port and nothing races for it. The
server leaves signal handling to whoever owns the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Generator
from dataclasses import dataclass
from typing import Any

import uvicorn
from starlette.types import ASGIApp


@dataclass(frozen=True, slots=True)
class Served:
    """Where a served app listens."""

    host: str
    port: int

    @property
    def http_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, for a server started by another process."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


class _QuietServer(uvicorn.Server):
    """A uvicorn server that does not take over SIGINT/SIGTERM from its host process."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


@contextlib.asynccontextmanager
async def serve(
    app: ASGIApp, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> AsyncIterator[Served]:
    """Serve ``app`` until the block exits; raise if it fails to start."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    options = {"ws_per_message_deflate": False, "log_config": None, **options}
    server = _QuietServer(uvicorn.Config(app, **options))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the server stopped during start-up")
            await asyncio.sleep(0.005)  # uvicorn offers no start-up event to wait on
        yield Served(host, sock.getsockname()[1])
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()
