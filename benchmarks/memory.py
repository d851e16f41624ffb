"""Scenario 4, memory: rt_server's resident memory per idle session.

A fresh rt_server is warmed with one session (imports and caches that the first session
loads are not per-session), then its RSS is read with 0 sessions open (the baseline) and
again with 1, 100 and 1000 idle sessions open at once (cumulative: each level opens the
sessions it lacks). Per session = (RSS - baseline) / sessions. Every session holds a
client WebSocket and its own backend WebSocket to the emulator.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

from benchmarks import procs
from benchmarks.wire import Socket, open_session

TARGET_KB = 100.0
_SETTLE_S = 1.0
_CONCURRENCY = 32


async def _open(port: int, count: int) -> list[Socket]:
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one() -> Socket:
        async with gate:
            return await open_session("through", port)

    return list(await asyncio.gather(*(one() for _ in range(count))))


async def _rss_settled(server: procs.Child, settle: float) -> int:
    await asyncio.sleep(settle)
    return server.rss()


async def run(
    levels: tuple[int, ...], root: Path = procs.ROOT, settle: float = _SETTLE_S
) -> dict[str, Any]:
    procs.raise_fd_limit()
    rows: list[dict[str, Any]] = []
    with procs.emulator(root) as emu, procs.rt_server(emu.port, root) as srv:
        for ws in await _open(srv.port, 1):
            await ws.close()
        baseline = await _rss_settled(srv, settle)
        sockets: list[Socket] = []
        try:
            for level in levels:
                sockets += await _open(srv.port, level - len(sockets))
                gc.collect()
                rss = await _rss_settled(srv, settle)
                per_session = (rss - baseline) / level
                rows.append(
                    {
                        "sessions": level,
                        "rss_mb": round(rss / 2**20, 2),
                        "delta_mb": round((rss - baseline) / 2**20, 2),
                        "kb_per_session": round(per_session / 1024, 1),
                    }
                )
                print(f"  memory {level:5d} sessions: {per_session / 1024:.1f} KB each", flush=True)
        finally:
            await asyncio.gather(*(ws.close() for ws in sockets), return_exceptions=True)
    return {
        "levels": list(levels),
        "baseline_rss_mb": round(baseline / 2**20, 2),
        "rows": rows,
        "target_kb_per_session": TARGET_KB,
    }
