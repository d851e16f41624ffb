"""Scenario 1, text turn: ``user_message`` -> first ``text_delta`` and -> ``text_done``.

One connection each way on one emulator (pace fast); turns rotate between the ways
(through, direct, relay, then direct, relay, through, ...) so all share the machine's
noise. Direct and relay turns are ``conversation.item.create`` + ``response.create``,
timed to the first ``response.output_audio_transcript.delta`` and to its ``.done``, then
read on to ``response.done``; through rt_server nothing follows ``text_done``, and the
other ways' turns in between leave the emulator time to finish the response.

``gateway=True`` (the ``gateway`` scenario) sends the through way's client, the direct
way's own code, to rt_server's Realtime gateway (``/v1/realtime``): what a GA Realtime
client pays for rt_server in its path, beside the same client direct.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson

from benchmarks import procs, turn_trace
from benchmarks.stats import against_direct, percentiles
from benchmarks.wire import WAYS, Socket, Way, open_gateway, open_session, rotated, speaks_realtime

TEXT = "ping"
_USER_MESSAGE = orjson.dumps({"type": "user_message", "text": TEXT}).decode()
_ITEM_CREATE = orjson.dumps(
    {
        "type": "conversation.item.create",
        "item": {
            "type": "message",
            "role": "user",
            "content": [{"type": "input_text", "text": TEXT}],
        },
    }
).decode()
_RESPONSE_CREATE = orjson.dumps({"type": "response.create"}).decode()
_DELTAS = {b"response.output_audio_transcript.delta", b"response.output_text.delta"}
_DONES = {b"response.output_audio_transcript.done", b"response.output_text.done"}


async def _through(ws: Socket) -> tuple[int, int, int]:
    start = time.perf_counter_ns()
    await ws.send(_USER_MESSAGE)
    first = 0
    while True:
        raw = await ws.recv()
        if isinstance(raw, bytes):
            continue  # reply audio
        event = orjson.loads(raw)
        kind, now = event["type"], time.perf_counter_ns()
        if kind == "text_delta" and not first:
            first = now
        elif kind == "control" and event.get("action") == "text_done":
            return start, first, now
        elif kind == "error":
            raise RuntimeError(f"rt_server sent an error: {event}")


async def _direct(ws: Socket) -> tuple[int, int, int]:
    start = time.perf_counter_ns()
    await ws.send(_ITEM_CREATE)
    await ws.send(_RESPONSE_CREATE)
    first = done = 0
    while True:
        event = orjson.loads(await ws.recv())
        kind, now = event["type"].encode(), time.perf_counter_ns()
        if kind in _DELTAS and not first:
            first = now
        elif kind in _DONES:
            done = now
        elif kind == b"response.done":
            return start, first, done
        elif kind == b"error":
            raise RuntimeError(f"the emulator sent an error: {event}")


async def _turn(way: Way, ws: Socket, gateway: bool = False) -> tuple[int, int, int]:
    """(start, first delta, done) on ``time.perf_counter_ns()``, which on Linux is the
    ``CLOCK_MONOTONIC`` that :mod:`benchmarks.stamps` reads inside rt_server."""
    return await (_direct(ws) if gateway or speaks_realtime(way) else _through(ws))


async def run(
    turns: int,
    shared: procs.Pair | None = None,
    root: Path = procs.ROOT,
    warmup: int = 10,
    *,
    trace: Path | None = None,
    gateway: bool = False,
) -> dict[str, Any]:
    """Time ``turns`` turns each way; return percentiles in ms, what rt_server adds and
    what the floor relay adds (``floor``). With ``trace`` (the file rt_server's
    :mod:`benchmarks.stamps` dumps to), also where the through turns' time went."""
    samples: dict[Way, dict[str, list[float]]] = {w: {"first": [], "done": []} for w in WAYS}
    through: list[tuple[int, int]] = []
    traced: dict[str, Any] | None = None
    with procs.using(shared, root) as servers:
        srv, ports = servers.server, servers.ports
        sockets = {
            way: await (
                open_gateway(ports[way])
                if gateway and way == "through"
                else open_session(way, ports[way])
            )
            for way in WAYS
        }
        try:
            for _ in range(warmup):
                for way in WAYS:
                    await _turn(way, sockets[way], gateway)
            cpu_before = srv.cpu_seconds()
            for i in range(turns):
                for way in rotated(i):
                    start, first, done = await _turn(way, sockets[way], gateway)
                    samples[way]["first"].append((first - start) / 1e6)
                    samples[way]["done"].append((done - start) / 1e6)
                    if way == "through":
                        through.append((start, first))
            server_cpu = srv.cpu_seconds() - cpu_before
            if trace is not None:
                traced = turn_trace.stages(procs.dump_stamps(srv, trace), through)
        finally:
            for ws in sockets.values():
                await ws.close()
    result: dict[str, Any] = {"turns": turns, "text": TEXT, "gateway": gateway}
    for metric in ("first", "done"):
        of: dict[str, dict[str, float]] = {way: percentiles(samples[way][metric]) for way in WAYS}
        result[metric] = {**of, **against_direct(of)}
    result["rt_server_cpu_ms_per_turn"] = round(server_cpu * 1000 / turns, 3)
    if traced is not None:
        result["trace"] = traced
    return result
