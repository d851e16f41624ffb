"""The reference relay: the best Python design measured here, doing rt_server's voice work.

``python -m benchmarks.reference --port P --upstream U`` serves rt_server's simplified
protocol on P, as far as the voice scenario uses it, in front of the emulator on U:

- a client's binary frame becomes ``input_audio_buffer.append`` with the PCM in base64;
- ``response.output_audio.delta`` becomes a binary frame of the decoded PCM, and
  ``response.output_audio_transcript.delta`` a small ``text_delta`` message;
- the backend session is configured with the ``session.update`` rt_server sends, and the
  client hears ``{"type":"control","action":"connected"}`` once it is.

It is picows on both sides, compiled WebSocket framing, with the work done in the
callback that read the frame: no task, Future or queue per message; a side whose peer's
send buffer passes its high-water mark stops being read until it drains. No limits, no
records, no tools, no reconnects, no observers: what rt_server's hot path could cost at
best in Python.
"""

from __future__ import annotations

import argparse
import asyncio
import base64

import orjson
import uvloop
from picows import (
    WSFrame,
    WSListener,
    WSMsgType,
    WSTransport,
    WSUpgradeRequest,
    ws_connect,
    ws_create_server,
)

from benchmarks.procs import API_KEY, MODEL
from benchmarks.wire import SESSION_UPDATE
from rt_server.sched import request_slice
from rt_server.wsio import PICOWS_LOG, set_reading

_APPEND_HEAD = b'{"type":"input_audio_buffer.append","audio":"'
_CONNECTED = b'{"type":"control","action":"connected"}'
_HIGH_WATER = 256 * 1024


class _Client(WSListener):
    """The client side: its binary frames go to the backend as base64 appends."""

    def __init__(self, upstream: str) -> None:
        self.transport: WSTransport | None = None
        self.backend: _Backend | None = None
        self._upstream = upstream
        self._dialing: asyncio.Task[None] | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=_HIGH_WATER)
        set_reading(transport, False)  # until the backend is configured
        self._dialing = asyncio.get_running_loop().create_task(self._dial())

    async def _dial(self) -> None:
        try:
            _, backend = await ws_connect(
                lambda: _Backend(self),
                self._upstream,
                extra_headers={"Authorization": f"Bearer {API_KEY}"},
                logger_name=PICOWS_LOG,
                use_aiofastnet=False,
            )
        except Exception:
            if self.transport is not None:
                self.transport.disconnect()
            return
        assert isinstance(backend, _Backend)
        self.backend = backend

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        backend = self.backend
        if frame.msg_type is WSMsgType.BINARY and backend is not None:
            pcm = frame.get_payload_as_memoryview()
            assert backend.transport is not None
            backend.transport.send(WSMsgType.TEXT, _APPEND_HEAD + base64.b64encode(pcm) + b'"}')
        elif frame.msg_type is WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.backend is not None and self.backend.transport is not None:
            self.backend.transport.disconnect()

    def pause_writing(self) -> None:
        if self.backend is not None:
            set_reading(self.backend.transport, False)

    def resume_writing(self) -> None:
        if self.backend is not None:
            set_reading(self.backend.transport, True)


class _Backend(WSListener):
    """The backend side: audio deltas go to the client as PCM, transcript deltas as text."""

    def __init__(self, client: _Client) -> None:
        self.transport: WSTransport | None = None
        self._client = client

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        transport.underlying_transport.set_write_buffer_limits(high=_HIGH_WATER)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        client = self._client.transport
        if frame.msg_type is not WSMsgType.TEXT or client is None:
            if frame.msg_type is WSMsgType.CLOSE:
                transport.disconnect()
            return
        event = orjson.loads(frame.get_payload_as_memoryview())
        kind = event.get("type")
        if kind == "response.output_audio.delta":
            client.send(WSMsgType.BINARY, base64.b64decode(event["delta"]))
        elif kind == "response.output_audio_transcript.delta":
            text = orjson.dumps({"type": "text_delta", "text": event["delta"]})
            client.send(WSMsgType.TEXT, text)
        elif kind == "session.created":
            transport.send(WSMsgType.TEXT, SESSION_UPDATE.encode())
        elif kind == "session.updated":
            client.send(WSMsgType.TEXT, _CONNECTED)
            set_reading(client, True)

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        client = self._client.transport
        if client is not None and not client.is_disconnected:
            client.disconnect()

    def pause_writing(self) -> None:
        set_reading(self._client.transport, False)

    def resume_writing(self) -> None:
        set_reading(self._client.transport, True)


async def serve(port: int, upstream: int) -> None:
    url = f"ws://127.0.0.1:{upstream}/v1/realtime?model={MODEL}"

    def listener(request: WSUpgradeRequest) -> _Client:
        return _Client(url)

    server = await ws_create_server(
        listener, "127.0.0.1", port, logger_name=PICOWS_LOG, use_aiofastnet=False
    )
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reference", description=__doc__)
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
