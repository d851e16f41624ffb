"""A raw TCP client that speaks just enough HTTP and WebSocket to misbehave on purpose:
a head that never ends, a frame header with no payload, pings and no reads."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit

CLOSE = 0x8
PING = 0x9
TEXT = 0x1
BINARY = 0x2


@dataclass
class RawConnection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def read_head(self) -> bytes:
        """The response head (status line and headers)."""
        return await self.reader.readuntil(b"\r\n\r\n")

    async def read_frame(self) -> tuple[int, bytes]:
        """One server frame: its opcode and payload."""
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return first & 0x0F, await self.reader.readexactly(length)

    async def read_until_close(self) -> tuple[int, str]:
        """Read frames until the server's close frame: its code and reason."""
        while True:
            opcode, payload = await self.read_frame()
            if opcode == CLOSE:
                (code,) = struct.unpack("!H", payload[:2])
                return code, payload[2:].decode()

    async def closed_by_server(self) -> bool:
        """True once the server has closed the TCP connection (whatever was unread)."""
        try:
            while await self.reader.read(65536):
                pass
        except ConnectionError:
            pass
        return True

    def close(self) -> None:
        self.writer.transport.abort()


@asynccontextmanager
async def open_raw(url: str, *, receive_buffer: int | None = None) -> AsyncIterator[RawConnection]:
    """A TCP connection to ``url``'s host and port (optionally with a tiny receive buffer,
    so that what the client leaves unread backs up into the server quickly)."""
    parts = urlsplit(url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if receive_buffer is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, receive_buffer)
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, (parts.hostname, parts.port))
        reader, writer = await asyncio.open_connection(sock=sock, limit=1 << 20)
    except BaseException:
        sock.close()
        raise
    connection = RawConnection(reader, writer)
    try:
        yield connection
    finally:
        connection.close()


@asynccontextmanager
async def open_websocket(
    url: str, *, receive_buffer: int | None = None
) -> AsyncIterator[RawConnection]:
    """A completed WebSocket handshake to ``url`` (ws://host:port/path?query)."""
    parts = urlsplit(url)
    async with open_raw(url, receive_buffer=receive_buffer) as connection:
        await _handshake(connection, parts.netloc, parts.path, parts.query)
        yield connection


async def _handshake(connection: RawConnection, netloc: str, path: str, query: str) -> None:
    target = path + (f"?{query}" if query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    connection.writer.write(
        f"GET {target} HTTP/1.1\r\nHost: {netloc}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = await connection.read_head()
    assert head.startswith(b"HTTP/1.1 101"), head


def frame_header(opcode: int, length: int, *, fin: bool = True) -> bytes:
    """A masked client frame header announcing ``length`` payload bytes (zero mask key, so
    the payload goes as it is)."""
    first = (0x80 if fin else 0) | opcode
    if length < 126:
        sized = struct.pack("!BB", first, 0x80 | length)
    elif length < 1 << 16:
        sized = struct.pack("!BBH", first, 0x80 | 126, length)
    else:
        sized = struct.pack("!BBQ", first, 0x80 | 127, length)
    return sized + b"\x00\x00\x00\x00"


def frame(opcode: int, payload: bytes) -> bytes:
    return frame_header(opcode, len(payload)) + payload
