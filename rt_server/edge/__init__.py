"""rt_server's client edge: the WebSocket a session reads and writes.

:func:`accept` completes a client's handshake and gives the session its
:class:`~rt_server.edge.sockets.ClientSocket`: on ``rt-server`` (whose uvicorn WebSocket
protocol is :class:`rt_server.edge.asgi.EdgeProtocol`) a picows socket that calls the
session back for every frame; under any other ASGI server, Starlette's WebSocket pumped
by two tasks. Routes, admission and close codes are the same on both.
"""

from __future__ import annotations

from typing import Any

from starlette.websockets import WebSocket

from rt_server.config import Limits
from rt_server.edge.asgi import EDGE, Edge
from rt_server.edge.http import http_protocol
from rt_server.edge.sockets import ClientSocket, StarletteSocket

__all__ = ["EDGE_PROTOCOL", "ClientSocket", "accept", "server_options"]

EDGE_PROTOCOL = "rt_server.edge.asgi:EdgeProtocol"  # uvicorn's ``ws`` option for the fast edge


def server_options(limits: Limits) -> dict[str, Any]:
    """uvicorn's options for the fast edge: rt_server's own HTTP and WebSocket protocols."""
    return {
        "http": http_protocol(limits.head_timeout_seconds),
        "ws": EDGE_PROTOCOL,
        "ws_per_message_deflate": False,
    }


async def accept(websocket: WebSocket, subprotocol: str | None, limits: Limits) -> ClientSocket:
    """Complete the handshake with ``subprotocol``; the socket the session owns from now."""
    edge = websocket.scope.get("extensions", {}).get(EDGE)
    if isinstance(edge, Edge):
        return await edge.accept(subprotocol, limits)
    await websocket.accept(subprotocol)
    return StarletteSocket(
        websocket,
        send_buffer_bytes=limits.send_buffer_bytes,
        stall_seconds=limits.stall_timeout_seconds,
    )
