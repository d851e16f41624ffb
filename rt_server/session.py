"""One client session: the client socket, its own backend connection, and the pumps between.

The pumps (client -> backend, backend -> client, the client writer, the tool runner and
a watchdog) run as tasks that end together: whichever ends first cancels the others, and
both sockets are closed on the way out. Errors are caught once, in :meth:`Session.run`,
and become an ``error`` message and a close code.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from loguru import logger
from starlette.websockets import (
    WebSocket,
    WebSocketDisconnect,
    WebSocketDisconnected,
    WebSocketState,
)

from rt_server.audio_recording import AudioRecording
from rt_server.backends import Backend, BackendConnection, BackendEvent
from rt_server.config import Limits
from rt_server.errors import BackendClosed, BackendError, ClientError, ErrorCode
from rt_server.metrics import Metrics, Traffic
from rt_server.observe import Observer, SessionInfo
from rt_server.tools import ToolRegistry
from rt_server.translate import ClientFrame, Outbox, ToolCall, Translator

_AUDIO_BURST_MS = 2000.0  # audio a client may send ahead of real time before the rate applies


@dataclass(frozen=True, slots=True)
class Services:
    """What every session shares: the backend, limits, tools, metrics and observers."""

    backend: Backend
    limits: Limits
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    observers: tuple[Observer, ...] = ()
    record_audio: Path | None = None  # a directory: record both sides' audio there


class CloseSession(Exception):
    """End the session with this close code (the client was already told why)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class Counters:
    """What a session did, for its closing log line (traffic also feeds /metrics)."""

    traffic: Traffic = field(default_factory=Traffic)
    errors: int = 0
    reconnects: int = 0
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0


@dataclass(slots=True)
class _Outgoing:
    """Frames waiting for the client, bounded in bytes so a stalled reader cannot grow it."""

    limit: int
    frames: deque[str | bytes] = field(default_factory=deque)
    size: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def put(self, frame: str | bytes) -> None:
        if self.size + len(frame) > self.limit:
            raise CloseSession(1008, "the client is not reading its messages")
        self.size += len(frame)
        self.frames.append(frame)
        self.ready.set()

    async def drain(self, websocket: WebSocket) -> None:
        """Send every queued frame, in order."""
        while self.frames:
            frame = self.frames.popleft()
            self.size -= len(frame)
            if isinstance(frame, bytes):
                await websocket.send_bytes(frame)
            else:
                await websocket.send_text(frame)


class Session:
    """One client, speaking one dialect, with its own backend connection."""

    def __init__(
        self,
        websocket: WebSocket,
        translator: Translator,
        services: Services,
        *,
        subprotocol: str | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.log = logger.bind(session=self.id)
        self.counters = Counters()
        self.translator = translator
        self._ws = websocket
        self._services = services
        self._limits = services.limits
        self._metrics = services.metrics
        self._subprotocol = subprotocol
        self._outgoing = _Outgoing(services.limits.send_buffer_bytes)
        self._conn: BackendConnection | None = None
        self._live = asyncio.Event()  # set while a configured backend session is up
        self._wake = asyncio.Event()  # wakes the watchdog early (shutdown, reply done)
        self._calls: asyncio.Queue[ToolCall] = asyncio.Queue()
        self._started = time.monotonic()
        self._last_seen = self._last_backend = self._started
        self._drain_until: float | None = None
        self._recording = (
            AudioRecording(services.record_audio, self.id, translator.audio_format)
            if services.record_audio is not None
            else None
        )
        peer = f"{websocket.client.host}:{websocket.client.port}" if websocket.client else "?"
        self.info = SessionInfo(
            self.id,
            translator.name,
            services.backend.name,
            translator.profile.name,
            time.time(),
            peer,
        )

    # ----------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve the session until either side ends it; never raises."""
        await self._ws.accept(self._subprotocol)
        self.log.info("session start: {} from {}", self.info.dialect, self.info.peer)
        self._observe("session_started")
        self._metrics.sessions_active.inc()
        self._metrics.sessions_total.labels(self.info.dialect).inc()
        self._metrics.track(self.counters.traffic)
        close_code, reason = 1000, "session ended"
        try:
            await self._connect()
            await self._welcome()
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

    def shutdown(self, grace: float) -> None:
        """Tell the client the server is stopping; close once the reply ends or grace runs out."""
        if self._drain_until is None:
            self._drain_until = time.monotonic() + grace
            self._deliver(self.translator.render_shutting_down())
            self._wake.set()

    async def _connect(self) -> None:
        """Open and configure a backend session; the client hears ``connected`` after."""
        started = time.monotonic()
        self._conn = await self._services.backend.connect()
        try:
            for event in self.translator.restore():
                await self._conn.send(event)
            await asyncio.wait_for(self._await_configured(), self._limits.backend_connect_timeout)
        except TimeoutError:
            raise BackendError(
                "backend_timeout", "the backend did not confirm the session", retryable=True
            ) from None
        elapsed = time.monotonic() - started
        self._metrics.backend_connect_seconds.observe(elapsed)
        self.log.info("> backend ready in {:.0f} ms", elapsed * 1000)
        self._last_backend = time.monotonic()
        self._live.set()

    async def _await_configured(self) -> None:
        assert self._conn is not None
        while True:
            out = self.translator.setup_event(await self._conn.recv(), time.monotonic())
            self._deliver(out.client)
            if out.configured:
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
        pumps = [
            self._from_client(),
            self._from_backend(),
            self._to_client(),
            self._run_tools(),
            self._watchdog(),
        ]
        if self._recording is not None:
            pumps.append(self._record(self._recording))
        return pumps

    async def _close(self, code: int, reason: str) -> None:
        self._live.clear()
        if self._recording is not None:
            await self._recording.close()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.aclose()
        await self._flush()
        if self._ws.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(Exception):
                await self._ws.close(code, reason[:120])
        self._metrics.sessions_active.dec()
        self._metrics.retire(self.counters.traffic)
        self._observe("session_ended", code, reason)
        c, t = self.counters, self.counters.traffic
        self.log.info(
            "session end after {:.1f} s: close {} ({}); in {} text / {} audio frames ({} B), "
            "out {} text / {} audio frames ({} B), audio {:.1f} s in / {:.1f} s out, "
            "{} errors, {} reconnects",
            time.monotonic() - self._started,
            code,
            reason,
            t.in_text,
            t.in_audio,
            t.in_text_bytes + t.in_audio_bytes,
            t.out_text,
            t.out_audio,
            t.out_text_bytes + t.out_audio_bytes,
            c.audio_in_ms / 1000,
            c.audio_out_ms / 1000,
            c.errors,
            c.reconnects,
        )

    # ------------------------------------------------------------------------------ pumps

    async def _from_client(self) -> None:
        receive, translator, traffic = self._ws.receive, self.translator, self.counters.traffic
        max_bytes = self._limits.max_message_bytes
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                self.log.debug("< client left ({})", message.get("code"))
                return
            now = self._last_seen = time.monotonic()
            data: str | bytes | None = message.get("bytes")
            if data is None:
                data = message.get("text") or ""
                traffic.in_text += 1
                traffic.in_text_bytes += len(data)
            else:
                traffic.in_audio += 1
                traffic.in_audio_bytes += len(data)
            size = len(data)
            if size > max_bytes:
                self._send_error("message_too_large", f"messages are limited to {max_bytes} bytes")
                raise CloseSession(1009, f"message over {max_bytes} bytes")
            try:
                if isinstance(data, bytes):
                    out = translator.client_audio(data, now)
                else:
                    out = translator.client_text(data, now)
            except ClientError as exc:
                self._send_error(exc.code, exc.message)
                continue
            self._account_audio(out.audio_in_ms, now)
            await self._apply(out)

    async def _from_backend(self) -> None:
        """Read and translate the backend's events; reconnect when the connection ends,
        whether a read or one of this pump's own sends finds it gone."""
        translator = self.translator
        while True:
            assert self._conn is not None
            try:
                event = await self._conn.recv()
                now = self._last_backend = time.monotonic()
                await self._apply(translator.backend_event(event, now), wait=False)
            except BackendClosed as exc:
                await self._reconnect(exc)
                continue
            if self._drain_until is not None:
                self._wake.set()

    async def _to_client(self) -> None:
        outgoing, ws = self._outgoing, self._ws
        try:
            while True:
                await outgoing.ready.wait()
                await outgoing.drain(ws)
                outgoing.ready.clear()
        except (WebSocketDisconnect, WebSocketDisconnected):
            self.log.debug("> client left while being sent to")

    async def _run_tools(self) -> None:
        """Run the model's tool calls concurrently with the audio; owned by this pump."""
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                call = await self._calls.get()
                task = asyncio.create_task(self._run_tool(call))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _run_tool(self, call: ToolCall) -> None:
        self.log.info("> tool {} ({} B of arguments)", call.name, len(call.arguments))
        self._metrics.tool_calls.labels(call.name).inc()
        output = await self._services.tools.run(call)
        await self._apply(self.translator.tool_result(call, output))

    async def _record(self, recording: AudioRecording) -> None:
        """Write recorded audio about once a second, off the audio path."""
        while True:
            await asyncio.sleep(1.0)
            await recording.flush()

    async def _watchdog(self) -> None:
        """Enforce session length, idle time, stalled replies and the shutdown drain."""
        while True:
            wait = self._check_deadlines(time.monotonic())
            if wait is None:
                await self._stalled()
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)
            self._wake.clear()

    def _check_deadlines(self, now: float) -> float | None:
        """Act on a passed deadline; the time until the next one, None for a stalled reply."""
        limits = self._limits
        session_end = self._started + limits.max_session_seconds
        idle_end = self._last_seen + limits.idle_timeout_seconds
        if now >= session_end:
            self._send_error(
                "session_expired", f"sessions last at most {limits.max_session_seconds:g} s"
            )
            raise CloseSession(1000, "session length limit")
        if now >= idle_end:
            self._send_error("idle_timeout", f"no message for {limits.idle_timeout_seconds:g} s")
            raise CloseSession(1000, "idle timeout")
        if self._drain_until is not None and (
            now >= self._drain_until or not self.translator.responding
        ):
            raise CloseSession(1001, "server shutting down")
        deadlines = [session_end, idle_end]
        if self.translator.responding and self._live.is_set():
            stall_end = self._last_backend + limits.response_timeout_seconds
            if now >= stall_end:
                return None
            deadlines.append(stall_end)
        else:
            deadlines.append(now + limits.response_timeout_seconds)
        if self._drain_until is not None:
            deadlines.append(self._drain_until)
        return max(0.0, min(deadlines) - now)

    async def _stalled(self) -> None:
        """A reply went quiet: the translator gives it up, the backend is replaced."""
        self._last_backend = time.monotonic()
        await self._apply(self.translator.stalled(self._limits.response_timeout_seconds))

    # ---------------------------------------------------------------------------- helpers

    async def _apply(self, out: Outbox, *, wait: bool = True) -> None:
        """Act on what the translator returned. What someone waits for goes first: the
        client's frames and the backend's events (``wait``: see :meth:`_send_backend`);
        then the bookkeeping (:meth:`_settle`), then a backend replacement or a close."""
        if out.client:
            self._deliver(out.client)
        try:
            if out.backend:
                await self._send_backend(out.backend, wait=wait)
        finally:
            self._settle(out)
        if out.abandoned and self._conn is not None:
            # The backend pump then sees BackendClosed and reconnects, restoring the turns.
            with contextlib.suppress(Exception):
                await self._conn.aclose()
        if out.close is not None:
            raise CloseSession(out.close.code, out.close.reason)

    def _settle(self, out: Outbox) -> None:
        """What follows an outbox's sends: the audio recorded and counted, the notes (an
        error note is counted too) and the tool calls."""
        counters = self.counters
        counters.audio_in_ms += out.audio_in_ms
        counters.audio_out_ms += out.audio_out_ms
        if self._recording is not None:
            for side, audio in out.recorded:
                self._recording.add(side, audio)
        for note in out.notes:
            if note.kind == "error":
                counters.errors += 1
                self._metrics.error(note.data["code"])
                self.log.info("> error {}: {}", note.data["code"], note.data["message"])
            self._observe("session_note", note)
        for call in out.calls:
            self._calls.put_nowait(call)

    async def _welcome(self) -> None:
        """Ask for the welcome turn, if the profile has one, before any client message is
        read; a connection already gone is replaced here (the pumps are not running yet)."""
        try:
            await self._send_backend(self.translator.welcome(), wait=False)
        except BackendClosed as exc:
            await self._reconnect(exc)

    async def _send_backend(self, events: list[BackendEvent], *, wait: bool = True) -> None:
        """Send on the live backend connection; while it is being replaced, wait, and send
        on the new one. With ``wait=False`` (the backend pump, which is what replaces it,
        and the welcome, sent before the pumps run) a closed connection raises
        :class:`BackendClosed` instead."""
        if not wait:
            assert self._conn is not None
            for event in events:
                await self._conn.send(event)
            return
        for event in events:
            while True:
                if not self._live.is_set():
                    await self._live.wait()
                connection = self._conn
                assert connection is not None
                try:
                    await connection.send(event)
                    break
                except BackendClosed:
                    # The backend pump reconnects; send again on the new connection.
                    if self._conn is connection:
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
            await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.aclose()
            try:
                await self._connect()
                # A reply that was due is asked for again; a connection that drops at once
                # here is one more failed attempt.
                await self._apply(self.translator.resume(), wait=False)
            except BackendError as exc:
                self.log.warning("> reconnect {} of {} failed: {}", attempt, attempts, exc.code)
                continue
            self.counters.reconnects += 1
            self._metrics.reconnects.inc()
            self._send_error("backend_reconnected", "the assistant connection is restored")
            return
        raise BackendError(
            "backend_closed", "the assistant connection dropped and could not be restored"
        )

    def _deliver(self, frames: list[ClientFrame]) -> None:
        traffic = self.counters.traffic
        for frame in frames:
            if isinstance(frame, bytes):
                data: str | bytes = frame
                traffic.out_audio += 1
                traffic.out_audio_bytes += len(frame)
            else:
                data = orjson.dumps(frame).decode()
                traffic.out_text += 1
                traffic.out_text_bytes += len(data)
            self._outgoing.put(data)

    def _send_error(
        self, code: ErrorCode, message: str, *, retry_after: float | None = None
    ) -> None:
        out = self.translator.error(code, message, retry_after)
        with contextlib.suppress(CloseSession):  # a client not reading is closed anyway
            self._deliver(out.client)
        self._settle(out)

    def _observe(self, event: str, *args: Any) -> None:
        for observer in self._services.observers:
            try:
                getattr(observer, event)(self.info, *args)
            except Exception:
                self.log.exception("observer {} failed on {}", type(observer).__name__, event)

    def _account_audio(self, ms: float, now: float) -> None:
        """Refuse audio sent far faster than real time (a client flooding the backend)."""
        if not ms:
            return
        sent = self.counters.audio_in_ms + ms
        elapsed_ms = (now - self._started) * 1000.0
        allowed = elapsed_ms * self._limits.max_audio_realtime_factor + _AUDIO_BURST_MS
        if sent > allowed:
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
                await self._outgoing.drain(self._ws)
