"""Scenario 3, connect: a client's time to a ready session.

Through rt_server: WebSocket handshake to ``/realtime`` until ``connected`` (rt_server
opens its own backend session, sends ``session.update`` and waits for ``session.updated``
first). Direct: handshake to the emulator, ``session.created``, ``session.update`` until
``session.updated``; relay: the same as direct, through the floor relay. Connects rotate
between the ways; each socket is closed before the next connect.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from benchmarks import procs
from benchmarks.stats import against_direct, percentiles
from benchmarks.wire import WAYS, Way, open_session, rotated


async def _connect(way: Way, port: int) -> float:
    start = time.perf_counter_ns()
    ws = await open_session(way, port)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    await ws.close()
    return elapsed


async def run(
    connects: int, shared: procs.Pair | None = None, root: Path = procs.ROOT, warmup: int = 5
) -> dict[str, Any]:
    samples: dict[Way, list[float]] = {way: [] for way in WAYS}
    with procs.using(shared, root) as servers:
        ports = servers.ports
        for _ in range(warmup):
            for way in WAYS:
                await _connect(way, ports[way])
        for i in range(connects):
            for way in rotated(i):
                samples[way].append(await _connect(way, ports[way]))
                await asyncio.sleep(0.002)  # let the servers finish the close
    of: dict[str, dict[str, float]] = {way: percentiles(samples[way]) for way in WAYS}
    return {"connects": connects, **of, **against_direct(of)}
