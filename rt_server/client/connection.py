"""The async client: one websocket to ``/realtime``, messages in and out.

Server messages are parsed with orjson and not validated: the server is trusted and
benchmarks run many clients, so a frame costs one ``loads``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, Self, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus, InvalidURI

from rt_server.client.errors import Closed, ConnectFailed, ServerError
from rt_server.client.reply import Incoming, Reply, ReplyCollector
from rt_server.dialects.realtime import ErrorMessage, ServerMessage

FRAME_BYTES = 960  # 20 ms of PCM16 mono at 24 kHz
_NORMAL_CLOSE = frozenset({1000, 1001})
#: Closes after which a session is taken up again (``resume``): the connection was lost
#: (None), the server went away or restarts (a drain: 1001, 1012), it failed (1011), or
#: is overloaded for now (1013).
_RESUMABLE = frozenset({None, 1001, 1006, 1011, 1012, 1013, 1014})
_RESUME_ATTEMPTS = 5
_REFUSED = frozenset({400, 401, 403, 404})  # a reconnect refused for good


class RtClient:
    """A connected session; use :meth:`connect` to make one.

    Iterating yields every server message (a ``ServerMessage`` dict) or audio frame
    (``bytes``) until the server closes normally; an abnormal close raises :class:`Closed`.

    With ``resume`` (the default), a connection that is lost or that the server closes
    going away (a drain, an instance killed behind a load balancer) is reopened with the
    ``resume`` token the server gave: the conversation goes on, and the next message is
    ``{"type": "control", "action": "resumed"}``. A frame whose send found the connection
    gone is sent again on the new one.
    """

    def __init__(
        self, ws: ClientConnection, reopen: Callable[[str], _Opener] | None = None
    ) -> None:
        self.ws = ws
        self.greeting = ""
        self.resume_token: str | None = None  # from ``connected``
        self._reopen = reopen
        self.resumes = 0  # how many times the session was taken up again

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        *,
        token: str | None = None,
        profile: str | None = None,
        open_timeout: float = 10.0,
        max_size: int | None = 2**22,
        resume: bool = True,
    ) -> AsyncIterator[Self]:
        """Open a session and wait for ``connected``, each within ``open_timeout`` seconds.

        The token goes in an ``Authorization: Bearer`` header; ``profile`` picks one of the
        server's assistant profiles (the ``?profile=`` query parameter).

        Raises :class:`ConnectFailed` if the socket cannot be opened, the server refuses it,
        or the session ends (``error`` message or close) before it is ready.
        """
        headers = {"Authorization": f"Bearer {token}"} if token else None
        if profile is not None:
            url = _with_query(url, profile=profile)

        def opener(resume_token: str | None) -> _Opener:
            target = url if resume_token is None else _with_query(url, resume=resume_token)
            return _open(target, headers, open_timeout, max_size)

        ws = await opener(None)
        client = cls(ws, (lambda token: opener(token)) if resume else None)
        try:
            await client._wait_connected(open_timeout)
            yield client
        finally:
            await client.ws.close()

    async def _wait_connected(self, seconds: float) -> None:
        try:
            async with asyncio.timeout(seconds):
                async for message in self:
                    if isinstance(message, bytes):
                        continue
                    if message["type"] == "error":
                        error = ServerError(message)
                        raise ConnectFailed(str(error), code=error.code)
                    if message["type"] == "control" and message["action"] == "connected":
                        self.greeting = message.get("greeting", "")
                        self.resume_token = message.get("resume")
                        return
        except TimeoutError:
            raise ConnectFailed(f"no 'connected' from the server within {seconds:g} s") from None
        except Closed as exc:
            raise ConnectFailed(str(exc)) from None
        raise ConnectFailed("the server closed the connection before the session was ready")

    # ------------------------------------------------------------------------------ sending

    async def send_text(self, text: str, id: str | None = None) -> None:
        """Send a typed user turn; the assistant answers it."""
        message = {"type": "user_message", "text": text}
        if id is not None:
            message["id"] = id
        await self._send_json(message)

    async def send_audio(self, pcm: bytes) -> None:
        """Send PCM16 little-endian mono 24 kHz audio as one binary frame."""
        if len(pcm) % 2:
            raise ValueError(f"PCM16 audio must have an even length, got {len(pcm)} bytes")
        await self._send(pcm)

    async def stream_audio(
        self, pcm: bytes, *, frame_bytes: int = FRAME_BYTES, realtime: bool = True
    ) -> None:
        """Send ``pcm`` in frames, paced at real time unless ``realtime`` is false.

        Pacing follows a clock from the first frame, so slow sends do not add up to drift.
        """
        start = time.perf_counter()
        for offset in range(0, len(pcm), frame_bytes):
            if realtime:
                due = start + offset / (2 * 24_000)
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            await self.send_audio(pcm[offset : offset + frame_bytes])

    async def interrupt(self) -> None:
        """Stop the assistant's reply."""
        await self._send_json({"type": "control", "action": "interrupt"})

    async def commit(self) -> None:
        """End a push-to-talk turn: the audio sent so far is the user's message."""
        await self._send_json({"type": "control", "action": "commit"})

    async def _send_json(self, message: dict[str, str]) -> None:
        await self._send(orjson.dumps(message).decode())

    async def _send(self, frame: str | bytes) -> None:
        try:
            await self.ws.send(frame)
        except ConnectionClosed as exc:
            closed = _closed(exc)
            if not await self._resumed(closed):
                raise closed from None
            await self.ws.send(frame)

    # ---------------------------------------------------------------------------- receiving

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Incoming:
        try:
            frame = await self.ws.recv()
        except ConnectionClosed as exc:
            closed = _closed(exc)
            if await self._resumed(closed):
                return await self.__anext__()
            if closed.code in _NORMAL_CLOSE:
                raise StopAsyncIteration from None
            raise closed from None
        if isinstance(frame, bytes):
            return frame
        return cast(ServerMessage, orjson.loads(frame))

    async def receive(self) -> Incoming:
        """The next message or audio frame; :class:`Closed` if the connection ends."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            raise Closed(1000, "the server closed the session") from None

    # The conveniences below take a timeout because tests and benchmarks always want one.

    async def receive_until(
        self, predicate: Callable[[Incoming], bool], timeout: float = 10.0  # noqa: ASYNC109
    ) -> list[Incoming]:
        """Everything received up to and including the first frame ``predicate`` accepts.

        Raises :class:`TimeoutError` after ``timeout`` seconds, :class:`Closed` if the
        connection ends first.
        """
        received: list[Incoming] = []
        async with asyncio.timeout(timeout):
            while True:
                received.append(await self.receive())
                if predicate(received[-1]):
                    return received

    async def reply(self, text: str, timeout: float = 30.0) -> Reply:  # noqa: ASYNC109
        """Send ``text`` and collect the reply until its ``text_done``.

        Raises :class:`ServerError` if the server answers with an ``error``.
        """
        collector = ReplyCollector(time.perf_counter())
        await self.send_text(text)
        return await self.collect(collector, timeout)

    async def collect(
        self, collector: ReplyCollector, timeout: float = 30.0  # noqa: ASYNC109
    ) -> Reply:
        """Feed ``collector`` until its turn is complete and return the turn."""
        async with asyncio.timeout(timeout):
            while not collector.feed(await self.receive(), time.perf_counter()):
                pass
        return collector.reply(time.perf_counter())

    async def aclose(self) -> None:
        self._reopen = None  # closed on purpose: nothing to resume
        await self.ws.close()

    async def _resumed(self, closed: Closed) -> bool:
        """Take the session up again after ``closed``, if it can be; whether it was."""
        token, reopen = self.resume_token, self._reopen
        if reopen is None or token is None or closed.code not in _RESUMABLE:
            return False
        self._reopen = None  # a loss while reopening is that attempt's failure
        try:
            for attempt in range(_RESUME_ATTEMPTS):
                try:
                    self.ws = await reopen(token)
                    await self._wait_connected(10.0)
                except ConnectFailed as exc:
                    if exc.code == "resume_expired" or exc.status in _REFUSED:
                        return False
                    await asyncio.sleep(min(0.2 * 2**attempt, 2.0))
                    continue
                self.resumes += 1
                return True
            return False
        finally:
            self._reopen = reopen


_Opener = Coroutine[Any, Any, ClientConnection]


async def _open(
    url: str, headers: dict[str, str] | None, open_timeout: float, max_size: int | None
) -> ClientConnection:
    try:
        return await connect(
            url,
            additional_headers=headers,
            compression=None,
            open_timeout=open_timeout,
            max_size=max_size,
            proxy=None,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        message = f"the server refused the connection: HTTP {status}"
        raise ConnectFailed(message + _why(exc.response.body), status=status) from None
    except (OSError, InvalidURI, InvalidHandshake, TimeoutError) as exc:
        where = urlsplit(url)._replace(query="").geturl()  # a query may hold a token
        raise ConnectFailed(f"cannot connect to {where}: {exc or type(exc).__name__}") from exc


def _why(body: bytes | None) -> str:
    """The reason in a refusal's JSON body (``{"error": {"code", "message"}}``), if any."""
    try:
        error = orjson.loads(body or b"null")["error"]
        return f" ({error['code']}: {error['message']})"
    except (orjson.JSONDecodeError, TypeError, KeyError):
        return ""


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), *params.items()])
    return urlunsplit(parts._replace(query=query))


def _closed(exc: ConnectionClosed) -> Closed:
    if exc.rcvd is None:
        return Closed(None, "the connection was lost")
    return Closed(exc.rcvd.code, exc.rcvd.reason)


def is_text_done(message: Incoming) -> bool:
    """A ``receive_until`` predicate: the end of a piece of assistant text."""
    return not isinstance(message, bytes) and message.get("action") == "text_done"


def is_error(message: Incoming) -> ErrorMessage | None:
    """The message as an ``ErrorMessage`` if it is one."""
    if isinstance(message, bytes) or message["type"] != "error":
        return None
    return message
