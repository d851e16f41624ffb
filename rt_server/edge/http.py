"""rt_server's own uvicorn HTTP protocol: uvicorn's, with a deadline and a cap on each head.

uvicorn waits for a request head as long as the client likes and buffers its headers
without bound, so a client that opens connections and trickles a byte now and then
(slowloris) holds them forever. :class:`EdgeHttpProtocol` answers such a client:

- a request head (request line and headers) not complete within the head timeout
  (``HEAD_TIMEOUT_SECONDS``, from the connection's first byte, or from the connection
  itself while it is silent) gets ``408`` and the connection is closed;
- a head over :data:`MAX_HEAD_BYTES` gets ``431``, before more of it is read.

Between requests on a keep-alive connection uvicorn's own keep-alive timeout applies.
``rt-server`` passes the class that :func:`http_protocol` makes as uvicorn's ``http``
option, together with :data:`~rt_server.edge.EDGE_PROTOCOL` as ``ws``.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

__all__ = ["MAX_HEAD_BYTES", "EdgeHttpProtocol", "http_protocol"]

MAX_HEAD_BYTES = 32 * 1024  # request line and headers, on HTTP routes and upgrades alike


class EdgeHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with a timeout and a size cap on every request head."""

    head_timeout: float = 10.0

    _head_timer: asyncio.TimerHandle | None = None
    _head_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_done()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._head_timer is not None:  # the head is still incomplete
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD_BYTES:
                self._refuse(431, "Request Header Fields Too Large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._head_timer is None:  # the next request on a keep-alive connection
            self._await_head()

    def on_headers_complete(self) -> None:
        self._head_done()
        super().on_headers_complete()

    def _await_head(self) -> None:
        self._head_bytes = 0
        self._head_timer = self.loop.call_later(
            self.head_timeout, self._refuse, 408, "Request Timeout"
        )

    def _head_done(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _refuse(self, status: int, reason: str) -> None:
        self._head_done()
        if self.transport.is_closing():
            return
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode()
        )
        self.transport.close()


def http_protocol(head_timeout: float) -> type[EdgeHttpProtocol]:
    """The protocol class to give uvicorn, with this head timeout."""
    return type("EdgeHttpProtocol", (EdgeHttpProtocol,), {"head_timeout": head_timeout})
