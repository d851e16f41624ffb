"""Micro-benchmarks of rt_server's per-frame work, in CPU microseconds per call.

``python -m benchmarks.hotpath`` times, in this process, the pieces one audio frame goes
through in rt_server, with the alternatives measured beside the current code. CPU time (``time.process_time``) of many calls, best of several rounds:
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

from rt_server.config import SocketKind
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


def best_us(calls: int, rounds: int, body: Callable[[], object]) -> float:
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
    """What the sans-I/O core and the JSON encoding cost per frame, both ways: the
    translator's own calls, beside the standard library's base64 they replaced."""
    from rt_server.dialects.realtime import RealtimeTranslator as Translator
    from rt_server.profile import Profile

    translator = Translator(Profile())
    audio = base64.b64encode(FRAME).decode()
    append = {"type": "input_audio_buffer.append", "audio": audio}
    delta = {
        "type": "response.output_audio.delta",
        "response_id": "resp_1",
        "item_id": "item_1",
        "output_index": 0,
        "content_index": 0,
        "delta": audio,
    }
    delta_json = orjson.dumps(delta)

    def to_event_stdlib() -> None:
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(FRAME).decode("ascii")}

    def to_event() -> None:
        translator.client_audio(FRAME, 0.0)

    def dumps_str() -> None:
        orjson.dumps(append).decode()

    def dumps_bytes() -> None:
        orjson.dumps(append)

    def from_event_stdlib() -> None:
        base64.b64decode(orjson.loads(delta_json)["delta"])

    def from_event() -> None:
        translator.backend_event(orjson.loads(delta_json), 0.0)

    return {
        "client audio -> append event (stdlib base64 + dict, before)": best_us(
            calls, rounds, to_event_stdlib
        ),
        "client audio -> append event (Translator.client_audio, current)": best_us(
            calls, rounds, to_event
        ),
        "append event -> JSON str (orjson.dumps().decode(), sdk socket)": best_us(
            calls, rounds, dumps_str
        ),
        "append event -> JSON bytes (orjson.dumps(), aiohttp socket)": best_us(
            calls, rounds, dumps_bytes
        ),
        "audio delta JSON -> PCM (orjson.loads + stdlib b64decode, before)": best_us(
            calls, rounds, from_event_stdlib
        ),
        "audio delta JSON -> PCM frame (orjson.loads + Translator.backend_event, current)": (
            best_us(calls, rounds, from_event)
        ),
    }


def base64_pieces(calls: int, rounds: int) -> dict[str, float]:
    """One 20 ms frame's base64 both ways: the standard library against pybase64."""
    import pybase64

    text = base64.b64encode(FRAME).decode()
    return {
        "base64 encode 960 B: stdlib (before)": best_us(
            calls, rounds, lambda: base64.b64encode(FRAME).decode()
        ),
        "base64 encode 960 B: pybase64 (current)": best_us(
            calls, rounds, lambda: pybase64.b64encode_as_string(FRAME)
        ),
        "base64 decode 1280 chars: stdlib (before)": best_us(
            calls, rounds, lambda: base64.b64decode(text)
        ),
        "base64 decode 1280 chars: pybase64 (current)": best_us(
            calls, rounds, lambda: pybase64.b64decode(text)
        ),
    }


def text_pieces(calls: int, rounds: int) -> dict[str, float]:
    """A text turn's translation: a typed message in, a streamed text delta out."""
    from rt_server.dialects.realtime import RealtimeTranslator as Translator
    from rt_server.profile import Profile

    translator = Translator(Profile())
    message = '{"type":"user_message","text":"ping"}'
    delta = {
        "type": "response.output_audio_transcript.delta",
        "item_id": "item_1",
        "content_index": 0,
        "delta": "ping ",
    }

    def typed() -> None:
        translator.responding = translator.reply_due = False
        translator.client_text(message, 0.0)

    return {
        "user_message -> backend events (Translator.client_text)": best_us(calls, rounds, typed),
        "text delta -> text_delta (Translator.backend_event)": best_us(
            calls, rounds, lambda: translator.backend_event(delta, 0.0)
        ),
    }


class _NullTransport:
    """A transport that accepts every write and reads nothing: the protocol alone is timed."""

    def write(self, data: bytes) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        pass


class _Reading:
    """What aiohttp's data queue asks of a protocol: whether reading is paused."""

    _reading_paused = False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def client_socket_pieces(calls: int, rounds: int) -> dict[str, float]:
    """The client socket's WebSocket work per 20 ms frame, in this process on a transport
    that writes nowhere: uvicorn's ``websockets-sansio`` protocol (what rt_server serves
    clients with) parsing a masked binary frame into an ASGI message and framing one out,
    beside compiled parsing (aiohttp's Cython reader, the same bytes) and a header built
    in one ``struct.pack``: what a compiled client socket could save."""
    import struct

    import uvicorn
    from aiohttp._websocket.reader import WebSocketDataQueue, WebSocketReader
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
    from uvicorn.server import ServerState
    from websockets.frames import Frame, Opcode

    accepted = asyncio.Event()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "websocket.accept"})
        accepted.set()
        await asyncio.Future()  # the benchmark reads the protocol's queue from here on

    config = uvicorn.Config(
        app, ws="websockets-sansio", ws_per_message_deflate=False, lifespan="off"
    )
    config.load()
    protocol = WebSocketsSansIOProtocol(config, ServerState(), {})
    protocol.connection_made(_NullTransport())  # type: ignore[arg-type]
    protocol.data_received(
        b"GET /realtime HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await accepted.wait()
    frame = Frame(Opcode.BINARY, FRAME).serialize(mask=True)
    queue = WebSocketDataQueue(_Reading(), 2**16, loop=asyncio.get_running_loop())  # type: ignore[arg-type]
    reader = WebSocketReader(queue, 2**24, False, True)
    header = struct.Struct("!BBH")
    sink = _NullTransport()

    async def uvicorn_in() -> None:
        protocol.data_received(frame)
        await protocol.receive()

    async def compiled_in() -> None:
        reader.feed_data(frame)
        await queue.read()

    async def uvicorn_out() -> None:
        await protocol.send({"type": "websocket.send", "bytes": FRAME})

    async def packed_out() -> None:
        sink.write(header.pack(0x82, 126, len(FRAME)) + FRAME)

    try:
        return {
            "client frame in -> ASGI message: uvicorn websockets-sansio (current)": (
                await best_us_async(calls, rounds, uvicorn_in)
            ),
            "client frame in -> message: aiohttp's compiled reader": (
                await best_us_async(calls, rounds, compiled_in)
            ),
            "frame out to the client: uvicorn websockets-sansio (current)": (
                await best_us_async(calls, rounds, uvicorn_out)
            ),
            "frame out: header in one struct.pack": await best_us_async(calls, rounds, packed_out),
        }
    finally:
        for task in protocol.tasks:
            task.cancel()


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
        "4 x prometheus Counter.inc (before)": best_us(calls, rounds, prometheus),
        "4 x int += on a slots object (current)": best_us(calls, rounds, ints),
    }


async def records_pieces(rounds: int, batch: int = 150) -> dict[str, float]:
    """One flush of ``batch`` conversation events to a SQLite file by the records writer:
    the CPU of the event loop's thread (the one the audio shares), and of the whole
    process, through SQLAlchemy's async engine and aiosqlite (before) and on the store's
    own writer thread (current)."""
    import tempfile

    from rt_server.records import store as records

    best: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        engine_store = records.RecordStore(records.create_engine(f"sqlite+aiosqlite:///{tmp}/a.db"))
        engine_store.sqlite = None  # every batch through the async engine, as before
        stores = {
            "async engine (before)": engine_store,
            "writer thread (current)": records.RecordStore(
                records.create_engine(f"sqlite+aiosqlite:///{tmp}/b.db")
            ),
        }
        for store in stores.values():
            await store.start()
        data = {"item_id": "item_0123456789", "response_id": "resp_0123456789"}
        try:
            for n in range(rounds + 2):  # two warm-up rounds
                for label, store in stores.items():
                    sid = f"s{n}"
                    store.put(records.Started(sid, records.utcnow(), "realtime", "o", "p", "x"))
                    for seq in range(batch):
                        at = records.utcnow()
                        store.put(
                            records.Event(sid, seq, at, "assistant_text", "assistant", "hi", data)
                        )
                    loop_start, all_start = time.thread_time(), time.process_time()
                    await store.flush()
                    loop_us = (time.thread_time() - loop_start) * 1e6
                    all_us = (time.process_time() - all_start) * 1e6
                    if n >= 2:
                        for key, us in (("loop thread", loop_us), ("all threads", all_us)):
                            name = f"{key}, {label}"
                            best[name] = min(best.get(name, float("inf")), us)
        finally:
            for store in stores.values():
                await store.close()
    return {
        f"records: flush of {batch} events to a SQLite file, {name}": round(us, 2)
        for name, us in best.items()
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
    receive one back), through rt_server's own backend connections on both sockets
    (``BACKEND_SOCKET``): aiohttp and the openai SDK. The sink runs in another process;
    only rt_server's side is timed."""
    from openai import AsyncOpenAI

    from rt_server.backends import BackendConnection
    from rt_server.backends.openai import OpenAIBackend

    event = {"type": "input_audio_buffer.append", "audio": base64.b64encode(FRAME).decode()}
    bodies: dict[str, Callable[[], Awaitable[None]]] = {}
    backends: list[tuple[OpenAIBackend, BackendConnection]] = []
    sockets: tuple[SocketKind, ...] = ("sdk", "aiohttp")
    for socket in sockets:
        for path in ("sink", "echo"):
            client = AsyncOpenAI(api_key="sk-bench", base_url=f"http://127.0.0.1:{port}/{path}")
            backend = OpenAIBackend(client, "m", socket=socket)
            connection = await backend.connect()
            backends.append((backend, connection))
            if path == "sink":

                async def send(c: Any = connection) -> None:
                    await c.send(event)

                bodies[f"backend send: {socket} socket"] = send
            else:

                async def echo(c: Any = connection) -> None:
                    await c.send(event)
                    await c.recv()

                bodies[f"backend round trip: {socket} socket"] = echo
    try:
        return await best_us_interleaved(calls, rounds, bodies)
    finally:
        for backend, connection in backends:
            await connection.aclose()
            await backend.aclose()


def gc_pieces(rounds: int) -> dict[str, float]:
    """A full garbage collection in a process that has built rt_server's app, as the
    collector sees it after start-up, and after ``gc.freeze()`` (what rt_server does once
    its lifespan has started): every session on a worker waits while it runs."""
    import gc

    from rt_server.main import create_app

    app = create_app()

    def full() -> float:
        best = float("inf")
        for _ in range(rounds):
            start = time.perf_counter()
            gc.collect()
            best = min(best, time.perf_counter() - start)
        return round(best * 1e6, 2)

    full()  # what start-up left as garbage
    before = full()
    gc.freeze()
    try:
        after = full()
    finally:
        gc.unfreeze()
    del app
    return {
        "full garbage collection after start-up, everything in sight (before)": before,
        "full garbage collection after start-up, start-up frozen (current)": after,
    }


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
            **base64_pieces(calls, rounds),
            **text_pieces(calls, rounds),
            **metrics_pieces(calls, rounds),
            **uvloop.run(hop_piece(calls, rounds)),
            **uvloop.run(client_socket_pieces(calls, rounds)),
            **uvloop.run(socket_pieces(max(calls // 4, 1), rounds, port)),
            **uvloop.run(records_pieces(max(rounds, 5))),
            **gc_pieces(rounds),
        }
    finally:
        sink.terminate()
        sink.wait()
    return {"calls": calls, "rounds": rounds, "us_per_call": pieces}


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
