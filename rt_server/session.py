"""One client session: the client socket, its backend connection, and the pumps between.

The pumps (client -> backend, backend -> client, the client writer and a watchdog) run
as tasks of one group: whichever ends first cancels the others, and both sockets are
closed on the way out. Errors are caught once, in :meth:`Session.run`, and turned into an
``error`` message and a close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any

import orjson
from loguru import logger
from starlette.websockets import WebSocket, WebSocketState

from rt_server.backends import Backend, BackendConnection
from rt_server.config import Limits
from rt_server.errors import BackendClosed, BackendError, ClientError, ErrorCode
from rt_server.profile import Profile
from rt_server.protocol import ErrorMessage
from rt_server.translate import PCM_BYTES_PER_MS, ClientFrame, Outbox, Translator

_AUDIO_BURST_MS = 2000.0  # audio a client may send ahead of real time before the rate applies


class CloseSession(Exception):
    """End the session with this close code; the client already got an ``error``."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class Counters:
    """What a session did, for its closing log line."""

    frames_in: int = 0
    frames_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0
    reconnects: int = 0


@dataclass(slots=True)
class _Outgoing:
    """Frames waiting for the client, bounded in bytes so a stalled reader cannot grow it."""

    limit: int
    frames: deque[str | bytes] = field(default_factory=deque)
    size: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, frame: str | bytes) -> None:
        self.size += len(frame)
        if self.size > self.limit:
            raise CloseSession(1008, "the client is not reading its messages")
        self.frames.append(frame)
        self.ready.set()


class Session:
    """One ``/realtime`` client and its own backend connection."""

    def __init__(
        self, websocket: WebSocket, backend: Backend, profile: Profile, limits: Limits
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.log = logger.bind(session=self.id)
        self.counters = Counters()
        self._ws = websocket
        self._backend = backend
        self._limits = limits
        self._translator = Translator(profile)
        self._outgoing = _Outgoing(limits.send_buffer_bytes)
        self._conn: BackendConnection | None = None
        self._live = asyncio.Event()  # set while a configured backend session is up
        self._started = time.monotonic()
        self._last_seen = self._started
        self._audio_ms = 0.0

    # ----------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve the session until either side ends it; never raises."""
        await self._ws.accept()
        self.log.info("session start from {}", _peer(self._ws))
        close_code, reason = 1000, "session ended"
        try:
            await self._connect()
            await self._pump()
        except CloseSession as exc:
            close_code, reason = exc.code, exc.reason
        except BackendError as exc:
            self._send_error(exc.code, exc.message, retry_after=exc.retry_after)
            close_code = 1013 if exc.retryable else 1011
            reason = exc.code
        except Exception:
            self.log.exception("session failed")
            self._send_error("internal_error", "the server failed; please reconnect")
            close_code, reason = 1011, "internal_error"
        finally:
            await self._close(close_code, reason)

    async def _connect(self) -> None:
        """Open and configure a backend session; the client hears ``connected`` after."""
        started = time.monotonic()
        self._conn = await self._backend.connect()
        try:
            for event in self._translator.restore():
                await self._conn.send(event)
            await asyncio.wait_for(self._await_configured(), self._limits.backend_connect_timeout)
        except TimeoutError:
            raise BackendError(
                "backend_timeout", "the backend did not confirm the session", retryable=True
            ) from None
        self.log.info("> backend ready in {:.0f} ms", (time.monotonic() - started) * 1000)
        self._live.set()

    async def _await_configured(self) -> None:
        assert self._conn is not None
        while True:
            event = await self._conn.recv()
            kind = event.get("type")
            if kind == "error":
                raise BackendError(
                    "backend_error", str((event.get("error") or {}).get("message", "refused"))
                )
            self._deliver(self._translator.backend_event(event, time.monotonic()))
            if kind == "session.updated":
                return

    async def _pump(self) -> None:
        tasks = [asyncio.create_task(coro) for coro in self._pumps()]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # re-raise the first failure, if any
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _pumps(self) -> list[Coroutine[Any, Any, None]]:
        return [self._from_client(), self._from_backend(), self._to_client(), self._watchdog()]

    async def _close(self, code: int, reason: str) -> None:
        self._live.clear()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.aclose()
        await self._flush()
        if self._ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason[:120])
        c = self.counters
        self.log.info(
            "session end after {:.1f} s: close {} ({}); {} frames in ({} B), {} out ({} B), "
            "{} errors, {} reconnects",
            time.monotonic() - self._started,
            code,
            reason,
            c.frames_in,
            c.bytes_in,
            c.frames_out,
            c.bytes_out,
            c.errors,
            c.reconnects,
        )

    # ------------------------------------------------------------------------------ pumps

    async def _from_client(self) -> None:
        receive = self._ws.receive
        max_bytes = self._limits.max_message_bytes
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.log.debug("< client left ({})", message.get("code"))
                return
            self._last_seen = time.monotonic()
            data: str | bytes | None = message.get("bytes")
            if data is None:
                data = message.get("text") or ""
            self.counters.frames_in += 1
            self.counters.bytes_in += len(data)
            if len(data) > max_bytes:
                self._send_error("message_too_large", f"messages are limited to {max_bytes} bytes")
                raise CloseSession(1009, f"message over {max_bytes} bytes")
            try:
                if isinstance(data, bytes):
                    out = self._translator.client_audio(data)
                    self._meter_audio(len(data))
                else:
                    out = self._translator.client_text(data, self._last_seen)
            except ClientError as exc:
                self._send_error(exc.code, exc.message)
                continue
            await self._to_backend(out)

    async def _from_backend(self) -> None:
        while True:
            assert self._conn is not None
            try:
                event = await self._conn.recv()
            except BackendClosed as exc:
                await self._reconnect(exc)
                continue
            out = self._translator.backend_event(event, time.monotonic())
            if out.client:
                self._deliver(out)
            if out.backend:
                await self._to_backend(Outbox(backend=out.backend))

    async def _to_client(self) -> None:
        outgoing, ws = self._outgoing, self._ws
        while True:
            await outgoing.ready.wait()
            while outgoing.frames:
                frame = outgoing.frames.popleft()
                outgoing.size -= len(frame)
                if isinstance(frame, bytes):
                    await ws.send_bytes(frame)
                else:
                    await ws.send_text(frame)
            outgoing.ready.clear()

    async def _watchdog(self) -> None:
        """End the session at its length limit, or when the client has gone quiet."""
        limits = self._limits
        while True:
            now = time.monotonic()
            session_end = self._started + limits.max_session_seconds
            idle_end = self._last_seen + limits.idle_timeout_seconds
            if now >= session_end:
                self._send_error(
                    "session_expired", f"sessions last at most {limits.max_session_seconds:g} s"
                )
                raise CloseSession(1000, "session length limit")
            if now >= idle_end:
                self._send_error(
                    "idle_timeout", f"no message for {limits.idle_timeout_seconds:g} s"
                )
                raise CloseSession(1000, "idle timeout")
            await asyncio.sleep(min(session_end, idle_end) - now)

    # ---------------------------------------------------------------------------- helpers

    async def _to_backend(self, out: Outbox) -> None:
        if out.client:
            self._deliver(out)
        for event in out.backend:
            while True:
                await self._live.wait()
                assert self._conn is not None
                try:
                    await self._conn.send(event)
                    break
                except BackendClosed:
                    # The backend pump reconnects; send again on the new connection.
                    self._live.clear()

    async def _reconnect(self, closed: BackendClosed) -> None:
        """Open a new backend session and replay the conversation, with backoff."""
        self._live.clear()
        attempts = self._limits.reconnect_attempts
        self.log.warning("< backend closed: {}", closed.message)
        if attempts == 0:
            raise closed
        self._send_error("backend_closed", "the assistant connection dropped; reconnecting")
        for attempt in range(1, attempts + 1):
            await asyncio.sleep(min(0.25 * 2 ** (attempt - 1), 4.0))
            with contextlib.suppress(Exception):
                assert self._conn is not None
                await self._conn.aclose()
            try:
                await self._connect()
            except BackendError as exc:
                self.log.warning("> reconnect {} of {} failed: {}", attempt, attempts, exc.code)
                continue
            self.counters.reconnects += 1
            self._send_error("backend_reconnected", "the assistant connection is restored")
            return
        raise BackendError(
            "backend_closed", "the assistant connection dropped and could not be restored"
        )

    def _deliver(self, out: Outbox) -> None:
        for frame in out.client:
            self._put(frame)

    def _put(self, frame: ClientFrame) -> None:
        data = frame if isinstance(frame, bytes) else orjson.dumps(frame).decode()
        self.counters.frames_out += 1
        self.counters.bytes_out += len(data)
        self._outgoing.put(data)

    def _send_error(
        self, code: ErrorCode, message: str, *, retry_after: float | None = None
    ) -> None:
        self.counters.errors += 1
        self.log.info("> error {}: {}", code, message)
        error = ErrorMessage(type="error", code=code, message=message)
        if retry_after is not None:
            error["retry_after"] = retry_after
        with contextlib.suppress(CloseSession):
            self._put(error)

    def _meter_audio(self, size: int) -> None:
        """Refuse audio sent far faster than real time (a client flooding the backend)."""
        self._audio_ms += size / PCM_BYTES_PER_MS
        elapsed_ms = (time.monotonic() - self._started) * 1000.0
        allowed = elapsed_ms * self._limits.max_audio_realtime_factor + _AUDIO_BURST_MS
        if self._audio_ms > allowed:
            self._send_error(
                "audio_rate_exceeded",
                f"audio arrives faster than {self._limits.max_audio_realtime_factor:g}x real time",
            )
            raise CloseSession(1008, "audio rate exceeded")

    async def _flush(self) -> None:
        """Send what is still queued (errors above all) before closing; never blocks long."""
        if self._ws.application_state != WebSocketState.CONNECTED:
            return
        with contextlib.suppress(Exception):
            async with asyncio.timeout(1.0):
                while self._outgoing.frames:
                    frame = self._outgoing.frames.popleft()
                    if isinstance(frame, bytes):
                        await self._ws.send_bytes(frame)
                    else:
                        await self._ws.send_text(frame)


def _peer(websocket: WebSocket) -> str:
    client = websocket.client
    return f"{client.host}:{client.port}" if client else "unknown"
