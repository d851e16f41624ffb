"""The floor: a byte relay that does nothing, in the place rt_server takes.

``python -m benchmarks.relay --port P --upstream U`` accepts TCP connections on P and
pipes each, byte for byte, to the emulator on U: no HTTP, no WebSocket framing, no JSON,
no base64. A client speaks the Realtime API through it exactly as it does direct. What
this relay adds over direct is what any extra process on the path costs on this machine
(two more loopback hops, the wake-ups, the scheduler); what rt_server adds over the relay
is rt_server's own work.

It is as cheap as a relay can be in Python: uvloop, asyncio protocols (compiled reads
and writes, no stream objects), and back-pressure (a side whose peer's send buffer is
full stops reading until it drains).
"""

from __future__ import annotations

import argparse
import asyncio
from typing import cast

import uvloop

from rt_server.sched import request_slice


class _Pipe(asyncio.Protocol):
    """One side of a relayed connection; what it reads, its peer writes."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.peer: _Pipe | None = None
        self._early: list[bytes] = []  # read before the peer was connected

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def join(self, peer: _Pipe) -> None:
        self.peer, peer.peer = peer, self
        for data in self._early:
            peer.write(data)
        self._early.clear()

    def data_received(self, data: bytes) -> None:
        if self.peer is None:
            self._early.append(data)
        else:
            self.peer.write(data)

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def pause_writing(self) -> None:  # our send buffer is full: stop reading the other side
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and self.peer.transport is not None:
            self.peer.transport.close()


async def start(port: int, upstream: int, host: str = "127.0.0.1") -> asyncio.Server:
    """Listen on ``port``; every connection is relayed to ``upstream`` while it serves."""
    loop = asyncio.get_running_loop()
    dialing: set[asyncio.Task[None]] = set()

    async def dial(client: _Pipe) -> None:
        try:
            _, server = await loop.create_connection(_Pipe, host, upstream)
        except OSError:
            if client.transport is not None:
                client.transport.close()
            return
        client.join(server)

    def accept() -> _Pipe:
        client = _Pipe()
        task = loop.create_task(dial(client))
        dialing.add(task)
        task.add_done_callback(dialing.discard)
        return client

    return await loop.create_server(accept, host, port)


async def serve(port: int, upstream: int) -> None:
    async with await start(port, upstream) as server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.relay", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", type=int, required=True)
    parser.add_argument(
        "--slice-us", type=int, default=0, help="ask for this scheduler slice, as rt_server does"
    )
    args = parser.parse_args()
    if args.slice_us:
        print(f"scheduler slice: {request_slice(args.slice_us)}", flush=True)
    uvloop.run(serve(args.port, args.upstream))


if __name__ == "__main__":
    main()
