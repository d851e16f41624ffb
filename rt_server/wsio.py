"""What both picows edges (the client socket and the backend socket) do alike."""

from __future__ import annotations

import logging

from picows import WSTransport

PICOWS_LOG = logging.getLogger("rt_server.picows")
PICOWS_LOG.setLevel(logging.WARNING)  # picows logs every connection at INFO


def set_reading(transport: WSTransport | None, reading: bool) -> None:
    """Pause or resume reading a picows socket's transport, if it is still connected."""
    if transport is None or transport.is_disconnected:
        return
    if reading:
        transport.underlying_transport.resume_reading()
    else:
        transport.underlying_transport.pause_reading()
