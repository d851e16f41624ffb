"""rt_server's client edge: the WebSocket a session reads and writes.

:func:`accept` completes a client's handshake and gives the session its
:class:`~rt_server.edge.sockets.ClientSocket`: on ``rt-server`` (whose uvicorn WebSocket
protocol is :class:`rt_server.edge.asgi.EdgeProtocol`) a picows socket that calls the
session back for every frame; under any other ASGI server, Starlette's WebSocket pumped
by two tasks. Routes, admission and close codes are the same on both.
"""

from __future__ import annotations

from starlette.websockets import WebSocket

from rt_server.config import Limits
from rt_server.edge.asgi import EDGE, Edge
from rt_server.edge.sockets import ClientSocket, StarletteSocket

__all__ = ["EDGE_PROTOCOL", "ClientSocket", "accept"]

EDGE_PROTOCOL = "rt_server.edge.asgi:EdgeProtocol"  # uvicorn's ``ws`` option for the fast edge


async def accept(websocket: WebSocket, subprotocol: str | None, limits: Limits) -> ClientSocket:
    """Complete the handshake with ``subprotocol``; the socket the session owns from now."""
    edge = websocket.scope.get("extensions", {}).get(EDGE)
    if isinstance(edge, Edge):
        return await edge.accept(
            subprotocol,
            max_message_bytes=limits.max_message_bytes,
            send_buffer_bytes=limits.send_buffer_bytes,
        )
    await websocket.accept(subprotocol)
    return StarletteSocket(websocket, send_buffer_bytes=limits.send_buffer_bytes)
