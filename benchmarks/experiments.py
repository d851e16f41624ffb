"""EXPERIMENTS: candidate hot-path changes, measured without touching rt_server's sources.

``python -m benchmarks --scenario voice --experiment NAME[,NAME]`` starts rt_server through
:mod:`benchmarks.server`, which calls :func:`apply` before anything runs: the patch lives
in that one benchmark process only. Each experiment is a proposal for rt_server's code,
written as the smallest monkeypatch that shows its effect; the README lists what each
one measured.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson


def sdk_send_bypass() -> None:
    """``SdkConnection.send`` writes the JSON bytes as a text frame on the SDK's websocket.

    The openai SDK's ``send_raw`` goes through its reconnect ``SendQueue``, which looks up
    the current task through anyio (sniffio, a ``TaskInfo``) on every send; rt_server
    reconnects on its own and needs none of it. Sending ``bytes`` with ``text=True`` also
    skips orjson's ``.decode()`` and websockets' re-encoding of the ``str``.
    """
    from websockets.exceptions import ConnectionClosed

    from rt_server.backends import openai as backend

    async def send(self: Any, event: dict[str, Any]) -> None:
        data = orjson.dumps(self._emit(event))
        try:
            await self._connection._connection.send(data, text=True)
        except ConnectionClosed as exc:
            raise backend._closed(exc) from None

    backend.SdkConnection.send = send  # type: ignore[method-assign]


class _Uncounted:
    def inc(self, amount: float = 1.0) -> None:
        pass


def metrics_off() -> None:
    """The per-frame Prometheus counters do nothing (their cost, measured as removed).

    Four ``Counter.inc`` per audio round trip take a lock each; plain ``int`` counters on
    the session, added to Prometheus once per session (or read by a custom collector at
    scrape time), would keep ``/metrics`` and drop the per-frame cost.
    """
    from rt_server import metrics

    original = metrics.Metrics.__init__

    def init(self: Any) -> None:
        original(self)
        for name in (
            "in_text",
            "in_audio",
            "out_text",
            "out_audio",
            "in_text_bytes",
            "in_audio_bytes",
            "out_text_bytes",
            "out_audio_bytes",
        ):
            setattr(self, name, _Uncounted())

    metrics.Metrics.__init__ = init  # type: ignore[method-assign]


def aiohttp_backend() -> None:
    """The OpenAI backend's socket is an aiohttp websocket instead of the SDK's websockets one.

    aiohttp is already a dependency and reads frames with compiled code; websockets parses
    them in Python generators. Only the GA OpenAI path (API key, ``base_url``) is covered:
    enough to measure, not a drop-in implementation.
    """
    import aiohttp

    from rt_server.backends import openai as backend
    from rt_server.backends.base import BackendConnection
    from rt_server.errors import BackendClosed

    class AiohttpConnection(BackendConnection):
        def __init__(self, session: aiohttp.ClientSession, ws: Any) -> None:
            self._session, self._ws = session, ws

        async def send(self, event: dict[str, Any]) -> None:
            try:
                await self._ws.send_str(orjson.dumps(event).decode())
            except (ConnectionError, RuntimeError) as exc:
                raise BackendClosed(f"the backend closed the session ({exc})") from None

        async def recv(self) -> dict[str, Any]:
            message = await self._ws.receive()
            if message.type is not aiohttp.WSMsgType.TEXT:
                raise BackendClosed(f"the backend closed the session ({message.type.name})")
            event: dict[str, Any] = orjson.loads(message.data)
            return event

        async def aclose(self) -> None:
            await self._ws.close()
            await self._session.close()

    async def connect(self: Any) -> BackendConnection:
        base = str(self._client.base_url).rstrip("/").replace("http", "ws", 1)
        headers = {"Authorization": f"Bearer {self._client.api_key}"}
        session = aiohttp.ClientSession()
        with backend.backend_errors():
            ws = await session.ws_connect(
                f"{base}/realtime?model={self._model}",
                headers=headers,
                compress=0,
                max_msg_size=16 * 1024 * 1024,
                timeout=aiohttp.ClientWSTimeout(ws_close=1.0),
            )
        return AiohttpConnection(session, ws)

    backend.OpenAIBackend.connect = connect  # type: ignore[method-assign]


EXPERIMENTS: dict[str, Callable[[], None]] = {
    "sdk_send_bypass": sdk_send_bypass,
    "metrics_off": metrics_off,
    "aiohttp_backend": aiohttp_backend,
}


def apply(name: str) -> None:
    for part in name.split(","):
        if part not in EXPERIMENTS:
            raise SystemExit(f"unknown experiment {part!r}; known: {', '.join(EXPERIMENTS)}")
        print(f"EXPERIMENT applied in this rt_server process only: {part}", flush=True)
        EXPERIMENTS[part]()
