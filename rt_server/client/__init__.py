"""An async client of the ``/realtime`` protocol, for tests, benchmarks and ``rt-chat``.

    async with RtClient.connect("ws://127.0.0.1:8080/realtime") as client:
        print(client.greeting)
        reply = await client.reply("Hello")
        print(reply.text, reply.first_delta, len(reply.audio))

Iterate over a client for every server message (``ServerMessage`` dicts) and audio frame
(``bytes``, PCM16 mono 24 kHz). Errors are in :mod:`rt_server.client.errors`.
"""

from rt_server.client.connection import FRAME_BYTES, RtClient, is_error, is_text_done
from rt_server.client.errors import Closed, ConnectFailed, RtClientError, ServerError
from rt_server.client.reply import Incoming, Reply, ReplyCollector

__all__ = [
    "FRAME_BYTES",
    "Closed",
    "ConnectFailed",
    "Incoming",
    "Reply",
    "ReplyCollector",
    "RtClient",
    "RtClientError",
    "ServerError",
    "is_error",
    "is_text_done",
]
