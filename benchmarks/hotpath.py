"""Micro-benchmarks of rt_server's per-frame work, in CPU microseconds per call.

``python -m benchmarks.hotpath`` times, in this process, the pieces one audio frame goes
through in rt_server, with the candidate changes of :mod:`benchmarks.experiments` beside
the current code. CPU time (``time.process_time``) of many calls, best of several rounds:
unlike the end-to-end latency it hardly moves when other work shares the machine.
The websocket pieces send to a sink in another process, which reads and discards, so
only the sending side is timed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import subprocess
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import uvloop
from websockets.asyncio.client import connect

from rt_server.serving import free_port

FRAME = bytes(960)
_SINK = """
import asyncio, sys
from websockets.asyncio.server import serve
async def handle(ws):
    if ws.request.path.startswith("/echo"):
        async for message in ws:
            await ws.send(message)
    async for _ in ws:
        pass
async def main():
    async with serve(handle, "127.0.0.1", int(sys.argv[1]), compression=None, max_size=None):
        print("ready", flush=True)
        await asyncio.Future()
asyncio.run(main())
"""


def best_us(calls: int, rounds: int, body: Callable[[], None]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            body()
        best = min(best, time.process_time() - start)
    return round(best / calls * 1e6, 2)


async def best_us_async(calls: int, rounds: int, body: Callable[[], Awaitable[None]]) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(calls):
            await body()
        best = min(best, time.process_time() - start)
        await asyncio.sleep(0.05)  # let the sink catch up
    return round(best / calls * 1e6, 2)


def translate_pieces(calls: int, rounds: int) -> dict[str, float]:
    """What the sans-I/O core and the JSON encoding cost per frame, both ways."""
    audio = base64.b64encode(FRAME).decode()
    append = {"type": "input_audio_buffer.append", "audio": audio}
    delta_event = orjson.dumps(
        {
            "type": "response.output_audio.delta",
            "response_id": "resp_1",
            "item_id": "item_1",
            "output_index": 0,
            "content_index": 0,
            "delta": audio,
        }
    )

    def to_event() -> None:
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(FRAME).decode("ascii")}

    def dumps_str() -> None:
        orjson.dumps(append).decode()

    def dumps_bytes() -> None:
        orjson.dumps(append)

    def from_event() -> None:
        base64.b64decode(orjson.loads(delta_event)["delta"])

    return {
        "client audio -> append event (b64 + dict)": best_us(calls, rounds, to_event),
        "append event -> JSON str (orjson.dumps().decode(), current)": best_us(
            calls, rounds, dumps_str
        ),
        "append event -> JSON bytes (orjson.dumps())": best_us(calls, rounds, dumps_bytes),
        "audio delta JSON -> PCM (orjson.loads + b64decode)": best_us(calls, rounds, from_event),
    }


async def hop_piece(calls: int, rounds: int) -> dict[str, float]:
    """Handing a frame to another task (deque + ``asyncio.Event``), as ``_to_client`` does."""
    frames: deque[bytes] = deque()
    ready, taken = asyncio.Event(), asyncio.Event()

    async def consumer() -> None:
        while True:
            await ready.wait()
            ready.clear()
            while frames:
                frames.popleft()
            taken.set()

    task = asyncio.create_task(consumer())

    async def hand_over() -> None:
        frames.append(FRAME)
        ready.set()
        await taken.wait()
        taken.clear()

    try:
        # One hand-over is two task switches (there and back); a frame costs one.
        round_trip = await best_us_async(calls, rounds, hand_over)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return {"hand a frame to another task (one switch, _to_client's hop)": round(round_trip / 2, 2)}


def metrics_pieces(calls: int, rounds: int) -> dict[str, float]:
    """Four Prometheus counter increments (what a round trip does) against plain ints."""
    from prometheus_client import CollectorRegistry, Counter

    registry = CollectorRegistry()
    counter = Counter("m", "m", ["direction", "type"], registry=registry)
    a, b = counter.labels("in", "audio"), counter.labels("out", "audio")
    c, d = counter.labels("in", "bytes"), counter.labels("out", "bytes")

    def prometheus() -> None:
        a.inc()
        c.inc(960)
        b.inc()
        d.inc(960)

    class Plain:
        __slots__ = ("a", "b", "c", "d")

        def __init__(self) -> None:
            self.a = self.b = self.c = self.d = 0

    plain = Plain()

    def ints() -> None:
        plain.a += 1
        plain.c += 960
        plain.b += 1
        plain.d += 960

    return {
        "4 x prometheus Counter.inc": best_us(calls, rounds, prometheus),
        "4 x int += on a slots object": best_us(calls, rounds, ints),
    }


async def best_us_interleaved(
    calls: int, rounds: int, bodies: dict[str, Callable[[], Awaitable[None]]]
) -> dict[str, float]:
    """Like :func:`best_us_async` for several bodies, their rounds interleaved, so a busy
    moment on the machine (or a backlog in the sink) does not land on one of them only."""
    best = dict.fromkeys(bodies, float("inf"))
    for _ in range(rounds):
        for name, body in bodies.items():
            start = time.process_time()
            for _ in range(calls):
                await body()
            best[name] = min(best[name], time.process_time() - start)
            await asyncio.sleep(0.05)  # let the sink catch up
    return {name: round(value / calls * 1e6, 2) for name, value in best.items()}


async def socket_pieces(calls: int, rounds: int, port: int) -> dict[str, float]:
    """Sending one append event to the backend, and a backend round trip (send an event,
    receive one back), on the websocket client stacks rt_server could use towards the
    backend: the openai SDK (websockets underneath, what rt_server uses), websockets alone,
    and aiohttp (already a dependency; its frame reader is compiled). The sink runs in
    another process; only the client side is timed."""
    import aiohttp
    from openai import AsyncOpenAI

    text = orjson.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(FRAME).decode()}
    )
    as_str = text.decode()
    options: Any = {"compression": None, "max_size": None}
    client = AsyncOpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/v1")
    echo_client = AsyncOpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/echo")
    async with (
        client.realtime.connect(model="m", websocket_connection_options=options) as sdk,
        echo_client.realtime.connect(model="m", websocket_connection_options=options) as e_sdk,
        connect(f"ws://127.0.0.1:{port}/", compression=None) as ws,
        connect(f"ws://127.0.0.1:{port}/echo", compression=None) as e_ws,
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/echo", compress=0) as e_aio,
    ):

        async def sdk_send() -> None:
            await sdk.send_raw(as_str)

        async def bypass_send() -> None:
            await sdk._connection.send(text, text=True)

        async def ws_send() -> None:
            await ws.send(text, text=True)

        async def sdk_echo() -> None:
            await e_sdk.send_raw(as_str)
            orjson.loads(await e_sdk.recv_bytes())

        async def ws_echo() -> None:
            await e_ws.send(text, text=True)
            orjson.loads(await e_ws.recv(decode=False))

        async def aio_echo() -> None:
            await e_aio.send_str(as_str)
            orjson.loads((await e_aio.receive()).data)

        out = await best_us_interleaved(
            calls,
            rounds,
            {
                "backend send: SDK send_raw(str) (current)": sdk_send,
                "backend send: SDK's websocket send(bytes, text=True) (sdk_send_bypass)": (
                    bypass_send
                ),
                "backend send: plain websockets connection, same send": ws_send,
                "backend round trip: SDK send_raw + recv_bytes (current)": sdk_echo,
                "backend round trip: websockets send + recv": ws_echo,
                "backend round trip: aiohttp send_str + receive": aio_echo,
            },
        )
    await client.close()
    await echo_client.close()
    return out


def run(calls: int = 20000, rounds: int = 5) -> dict[str, Any]:
    """Every piece, in CPU microseconds per call."""
    port = free_port()
    sink = subprocess.Popen(
        [sys.executable, "-c", _SINK, str(port)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert sink.stdout is not None
        assert sink.stdout.readline().strip() == "ready"
        pieces = {
            **translate_pieces(calls, rounds),
            **metrics_pieces(calls, rounds),
            **uvloop.run(hop_piece(calls, rounds)),
            **uvloop.run(socket_pieces(max(calls // 4, 1), rounds, port)),
        }
    finally:
        sink.terminate()
        sink.wait()
    return {"calls": calls, "rounds": rounds, "us_per_call": pieces}


async def echo_pieces(calls: int, rounds: int, port: int) -> dict[str, float]:
    """A backend round trip (send an event, receive one back) on three client stacks.

    The websocket client rt_server uses towards the backend: the openai SDK (websockets
    underneath), websockets alone, and aiohttp (already a dependency; its frame reader is
    compiled). The echo server runs in another process; only the client side is timed.
    """
    import aiohttp
    from openai import AsyncOpenAI

    text = orjson.dumps(
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(FRAME).decode()}
    )
    out: dict[str, float] = {}
    client = AsyncOpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/echo")
    options: Any = {"compression": None, "max_size": None}
    async with client.realtime.connect(
        model="gpt-realtime", websocket_connection_options=options
    ) as sdk:

        async def via_sdk() -> None:
            await sdk.send_raw(text.decode())
            orjson.loads(await sdk.recv_bytes())

        out["backend round trip: SDK send_raw + recv_bytes (current)"] = await best_us_async(
            calls, rounds, via_sdk
        )
    await client.close()
    async with connect(f"ws://127.0.0.1:{port}/echo", compression=None) as ws:

        async def via_websockets() -> None:
            await ws.send(text, text=True)
            orjson.loads(await ws.recv(decode=False))

        out["backend round trip: websockets send + recv"] = await best_us_async(
            calls, rounds, via_websockets
        )
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"ws://127.0.0.1:{port}/echo", compress=0) as aws,
    ):
        as_str = text.decode()

        async def via_aiohttp() -> None:
            await aws.send_str(as_str)
            orjson.loads((await aws.receive()).data)

        out["backend round trip: aiohttp send_str + receive"] = await best_us_async(
            calls, rounds, via_aiohttp
        )
    return out


def main() -> None:
    p = argparse.ArgumentParser(prog="python -m benchmarks.hotpath", description=__doc__)
    p.add_argument("--calls", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    result = run(args.calls, args.rounds)
    pieces = result["us_per_call"]
    width = max(len(k) for k in pieces)
    print(f"CPU per call, best of {args.rounds} rounds (us):")
    for name, value in pieces.items():
        print(f"  {name.ljust(width)}  {value:8.2f}")


if __name__ == "__main__":
    main()
