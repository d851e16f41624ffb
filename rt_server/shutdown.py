"""Graceful shutdown: drain sessions on SIGTERM/SIGINT before uvicorn closes them."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import FrameType

from loguru import logger

from rt_server.runtime import Runtime


@asynccontextmanager
async def drain_on_signal(runtime: Runtime) -> AsyncIterator[None]:
    """On SIGTERM/SIGINT under uvicorn: tell clients, let replies finish, then stop.

    uvicorn closes every WebSocket with 1012 as soon as it hears the signal; this handler
    runs first, drains the sessions (each closes with 1001 when its reply ends or the
    grace period passes) and only then hands the signal to uvicorn.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if not all(_is_uvicorn_handler(handler) for handler in previous.values()):
        yield  # not running under a uvicorn that owns the signals (tests, embedding)
        return
    loop = asyncio.get_running_loop()
    drain: list[asyncio.Task[None]] = []

    def on_signal(sig: int, frame: FrameType | None) -> None:
        handler = previous[signal.Signals(sig)]
        if runtime.draining or not callable(handler):
            if callable(handler):
                handler(sig, frame)  # a second signal: stop now
            return
        runtime.draining = True
        drain.append(loop.create_task(_drain(runtime, lambda: handler(sig, frame))))

    for sig in previous:
        signal.signal(sig, lambda sig, frame: loop.call_soon_threadsafe(on_signal, sig, frame))
    try:
        yield
    finally:
        for task in drain:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _drain(runtime: Runtime, stop: Callable[[], None]) -> None:
    grace = runtime.settings.shutdown_grace_seconds
    logger.info("shutting down: draining {} sessions (grace {:g} s)", len(runtime.sessions), grace)
    for session in list(runtime.sessions):
        session.shutdown(grace)
    if runtime.sessions:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.drained.wait(), grace + 2.0)
    stop()


def _is_uvicorn_handler(handler: object) -> bool:
    owner = getattr(handler, "__self__", None)
    return type(owner).__module__.startswith("uvicorn") and callable(handler)
