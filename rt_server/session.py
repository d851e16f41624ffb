"""One client session: the client socket, its own backend connection, and the callbacks between.

The hot path has no task, Future or queue per message: the client socket calls
:meth:`Session.client_frame` with each frame it read, the translator turns it into backend
events, and those are written to the backend's transport in the same callback; the
backend's events come back the same way (:meth:`Session.backend_event`). Back-pressure
comes from the transports: a side whose send buffer is full pauses reading the other.

What is not per message stays in tasks: connecting and configuring the backend, the
reconnect, the tool calls, the watchdog, the audio recording. Every way a session ends
(a close the translator asked for, a limit, a backend that cannot be restored, a bug)
is one exception handed to :meth:`Session._end`; :meth:`Session.run` turns the first into
an ``error`` message and a close code, and closes both sockets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from loguru import logger

from rt_server.audio_recording import AudioRecording
from rt_server.backends import Backend, BackendConnection, BackendEvent
from rt_server.config import Limits
from rt_server.edge.sockets import ClientSocket
from rt_server.errors import BackendClosed, BackendError, ClientError, ErrorCode
from rt_server.metrics import Metrics, Traffic
from rt_server.observe import Observer, SessionInfo
from rt_server.resume import ResumeState, snapshot
from rt_server.shared import Shared, SharedUnavailable
from rt_server.tools import ToolRegistry
from rt_server.tracing import SessionTrace, Tracer
from rt_server.translate import ClientFrame, NoteKind, Outbox, ToolCall, Translator

_AUDIO_BURST_MS = 2000.0  # audio a client may send ahead of real time before the rate applies
_REFUSALS: dict[int, ErrorCode] = {1009: "message_too_large", 1007: "invalid_utf8"}
_AUDIO_EVENTS = frozenset({"input_audio_buffer.append", "response.output_audio.delta"})
#: Notes after which the resume state is saved again: the conversation has grown.
_GROWN: frozenset[NoteKind] = frozenset(
    {"user_text", "user_transcript", "assistant_text", "tool_call", "tool_result"}
)
_LAST_SAVE_SECONDS = 1.0  # the closing save of the resume state waits no longer


@dataclass(frozen=True, slots=True)
class Services:
    """What every session shares: the backend, limits, tools, metrics and observers."""

    backend: Backend
    limits: Limits
    tools: ToolRegistry = field(default_factory=ToolRegistry)
    metrics: Metrics = field(default_factory=Metrics)
    observers: tuple[Observer, ...] = ()
    record_audio: Path | None = None  # a directory: record both sides' audio there
    #: ``LOG_EVENTS`` categories whose per-message DEBUG lines are wanted (client, backend,
    #: audio); empty: no per-message logging at all.
    message_logs: frozenset[str] = frozenset()
    tracer: Tracer | None = None  # OTEL_EXPORTER_OTLP_ENDPOINT (rt_server.tracing)


@dataclass(slots=True)
class Resumable:
    """A session a client may take up again (:mod:`rt_server.resume`): where its state is
    kept, under which token, and what it resumed (None: a new conversation)."""

    shared: Shared
    token: str
    operator: dict[str, Any]  # the named profile's operator fields, as configured
    resumed: ResumeState | None = None


class CloseSession(Exception):
    """End the session with this close code (the client was already told why)."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class _ClientLeft(Exception):
    """The client closed its socket or the connection dropped."""


@dataclass(slots=True)
class Counters:
    """What a session did, for its closing log line (traffic also feeds /metrics)."""

    traffic: Traffic = field(default_factory=Traffic)
    errors: int = 0
    reconnects: int = 0
    audio_in_ms: float = 0.0
    audio_out_ms: float = 0.0


class _Backend:
    """The sink one backend connection reports to; a replaced connection's late news is
    dropped here, so the session only hears from the live one."""

    __slots__ = ("_session", "connection")

    def __init__(self, session: Session, connection: BackendConnection) -> None:
        self._session = session
        self.connection = connection

    def backend_event(self, event: BackendEvent) -> None:
        if self._session._conn is self.connection:
            self._session._guard(self._session._backend_event, event)

    def backend_closed(self, closed: BackendClosed) -> None:
        if self._session._conn is self.connection:
            self._session._backend_lost(self.connection, closed)

    def backend_writable(self, writable: bool) -> None:
        if self._session._conn is self.connection:
            socket = self._session._socket
            socket.resume_reading() if writable else socket.pause_reading()


class Session:
    """One client, speaking one dialect, with its own backend connection."""

    def __init__(
        self,
        socket: ClientSocket,
        translator: Translator,
        services: Services,
        *,
        discussion: str | None = None,
        id: str | None = None,
        part: int = 0,
        resumable: Resumable | None = None,
    ) -> None:
        self.id = id or uuid.uuid4().hex[:12]
        self.resumable = resumable
        self._spans: SessionTrace | None = None  # started by run() when tracing is on
        self._grown = asyncio.Event()  # a turn completed: save the resume state
        self.log = logger.bind(session=self.id)
        self.counters = Counters()
        self.translator = translator
        self._socket = socket
        self._services = services
        self._limits = services.limits
        self._metrics = services.metrics
        self._conn: BackendConnection | None = None
        self._pending: list[BackendEvent] | None = []  # held while no live backend; None: live
        self._configured: asyncio.Future[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._lost_while_reconnecting = False
        self._ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._wake = asyncio.Event()  # wakes the watchdog early (shutdown, reply done)
        self._calls: asyncio.Queue[ToolCall] = asyncio.Queue()
        self._started = time.monotonic()
        self._last_seen = self._last_backend = self._started
        self._drain_until: float | None = None
        logs = services.message_logs
        self._traced = bool(logs)  # one test per message when no per-message line is wanted
        self._log_client = self.log.bind(category="client") if "client" in logs else None
        self._log_backend = self.log.bind(category="backend") if "backend" in logs else None
        self._log_audio = self.log.bind(category="audio") if "audio" in logs else None
        #: Called with every backend event before it is translated (a ``/logs`` follower);
        #: it must return at once.
        self.tap: Callable[[BackendEvent], None] | None = None
        self._recording = (
            AudioRecording(services.record_audio, self.id, translator.audio_format)
            if services.record_audio is not None
            else None
        )
        self.info = SessionInfo(
            self.id,
            translator.name,
            services.backend.name,
            translator.profile.name,
            time.time(),
            socket.peer,
            discussion,
            part,
        )

    # ----------------------------------------------------------------------------- lifecycle

    async def run(self) -> None:
        """Serve the session until either side ends it; never raises."""
        self.log.info("session start: {} from {}", self.info.dialect, self.info.peer)
        if (tracer := self._services.tracer) is not None:
            attributes = {
                "rt.session": self.id,
                "rt.dialect": self.info.dialect,
                "rt.profile": self.info.profile,
                "rt.part": self.info.part,
            }
            self._spans = SessionTrace(tracer, attributes)
        self._observe("session_started")
        self._metrics.sessions_active.inc()
        self._metrics.sessions_total.labels(self.info.dialect).inc()
        self._metrics.track(self.counters.traffic)
        close_code, reason = 1000, "session ended"
        try:
            await self._until_ended(self._connect())
            self._socket.start(self)
            resumed = self.resumable.resumed if self.resumable is not None else None
            if resumed is None:
                self._guard(self._send_backend, self.translator.welcome())
            else:
                self._guard(self._deliver, self.translator.render_resumed(resumed.interrupted))
            await self._serve()
        except _ClientLeft:
            pass
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
            self._guard(self._deliver, self.translator.render_shutting_down())
            self._wake.set()

    async def _until_ended(self, step: Coroutine[Any, Any, None]) -> None:
        """Run ``step`` unless the session ends first (the client leaves mid-connect)."""
        task = asyncio.create_task(step)
        try:
            await asyncio.wait([task, self._ended], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._ended.done():
            self._ended.result()
        task.result()

    async def _serve(self) -> None:
        tasks = [asyncio.create_task(coro) for coro in self._tasks()]
        for task in tasks:
            task.add_done_callback(self._task_done)
        try:
            await self._ended
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _tasks(self) -> list[Coroutine[Any, Any, None]]:
        tasks = [self._run_tools(), self._watchdog()]
        if self._recording is not None:
            tasks.append(self._record(self._recording))
        if self.resumable is not None:
            tasks.append(self._keep_resume(self.resumable))
        return tasks

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._end(exc)

    def _end(self, exc: BaseException) -> None:
        """End the session with ``exc``; the first reason wins."""
        if not self._ended.done():
            self._ended.set_exception(exc)
            self._ended.exception()  # retrieved: run() re-raises it
            self._socket.pause_reading()
            self._grown.set()  # the resume saver sees the end

    def _guard(self, step: Any, *args: Any) -> None:
        """Run a callback step; whatever it raises ends the session (once, in run())."""
        try:
            step(*args)
        except Exception as exc:
            self._end(exc)

    async def _close(self, code: int, reason: str) -> None:
        self._pending = []
        if self._reconnecting is not None:
            self._reconnecting.cancel()
            with contextlib.suppress(BaseException):
                await self._reconnecting
        if self._recording is not None:
            await self._recording.close()
        if self._conn is not None:
            connection, self._conn = self._conn, None
            with contextlib.suppress(Exception):
                await connection.aclose()
        if self.resumable is not None:  # saved before the client may resume elsewhere
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._save_resume(self.resumable), _LAST_SAVE_SECONDS)
        await self._socket.close(code, reason)
        self._settle(self.translator.cut_short())  # a reply the close ended is recorded
        if self.resumable is not None:
            self.resumable.shared.drop_resume(self.resumable.token)
        self._metrics.sessions_active.dec()
        self._metrics.retire(self.counters.traffic)
        self._observe("session_ended", code, reason)
        if self._spans is not None:
            self._spans.end(code, reason)
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

    # ------------------------------------------------------------------ the backend session

    async def _connect(self) -> None:
        """Open and configure a backend session; the client hears ``connected`` after.
        Events the client sent meanwhile are held and follow the restored conversation."""
        span = self._spans.child("backend.connect") if self._spans is not None else None
        try:
            await self._open_backend()
        except BackendError as exc:
            if span is not None:
                span.set_attribute("rt.error", exc.code)
            raise
        finally:
            if span is not None:
                span.end()

    async def _open_backend(self) -> None:
        started = time.monotonic()
        configured = self._configured = asyncio.get_running_loop().create_future()
        connection = await self._services.backend.connect()
        self._conn = connection
        connection.listen(_Backend(self, connection))
        try:
            for event in self.translator.restore():
                connection.send_nowait(event)
            await asyncio.wait_for(asyncio.shield(configured), self._limits.backend_connect_timeout)
        except TimeoutError:
            raise BackendError(
                "backend_timeout", "the backend did not confirm the session", retryable=True
            ) from None
        elapsed = time.monotonic() - started
        self._metrics.backend_connect_seconds.observe(elapsed)
        self.log.info("> backend ready in {:.0f} ms", elapsed * 1000)
        self._last_backend = time.monotonic()

    def _go_live(self) -> None:
        """The backend session is configured: send what was held, read the client again."""
        held, self._pending = self._pending or [], None
        self._send_backend(held)
        self._socket.resume_reading()

    def _backend_event(self, event: BackendEvent) -> None:
        now = self._last_backend = time.monotonic()
        if self.tap is not None:
            self.tap(event)
        if self._spans is not None:
            self._spans.backend_event(event.get("type"))
        if self._traced:
            self._trace("<", event)
        configured = self._configured
        if configured is not None and not configured.done():
            try:
                out = self.translator.setup_event(event, now)
            except BackendError as exc:
                configured.set_exception(exc)
                return
            self._deliver(out.client)
            if out.configured:
                configured.set_result(None)
                if self._reconnecting is None:
                    self._go_live()
            return
        self._apply(self.translator.backend_event(event, now))
        if self._drain_until is not None:
            self._wake.set()

    def _backend_lost(self, connection: BackendConnection, closed: BackendClosed) -> None:
        """The live connection ended: hold what the client sends, replace it."""
        configured = self._configured
        if configured is not None and not configured.done():
            configured.set_exception(closed)
            configured.exception()
            return
        if self._reconnecting is not None:
            self._lost_while_reconnecting = True
            return
        if self._ended.done():
            return
        # A reply asked for and not sent is asked for again by the translator's resume().
        held = _resendable(connection.unsent())
        if self._pending is None:
            self._pending = held
        else:
            self._pending[:0] = held
        self._socket.pause_reading()
        self._reconnecting = asyncio.create_task(self._reconnect(closed))
        self._reconnecting.add_done_callback(self._task_done)

    async def _reconnect(self, closed: BackendClosed) -> None:
        """Open a new backend session and replay the conversation, with backoff."""
        attempts = self._limits.reconnect_attempts if self.translator.restores else 0
        self.log.warning("< backend closed: {}", closed.message)
        if attempts == 0:
            raise closed
        # The lost connection's reply ended where the client has it: part of the restore.
        self._settle(self.translator.cut_short())
        self._send_error("backend_closed", "the assistant connection dropped; reconnecting")
        for attempt in range(1, attempts + 1):
            await asyncio.sleep(min(0.2 * 2 ** (attempt - 1), 5.0))
            if self._conn is not None:
                old, self._conn = self._conn, None
                with contextlib.suppress(Exception):
                    await old.aclose()
            self._lost_while_reconnecting = False
            try:
                await self._connect()
                if self._lost_while_reconnecting:
                    raise BackendClosed("the new connection dropped at once")
            except BackendError as exc:
                self.log.warning("> reconnect {} of {} failed: {}", attempt, attempts, exc.code)
                continue
            self._reconnecting = None
            # A reply that was due is asked for again, before what the client sent since.
            resume = self.translator.resume()
            self._deliver(resume.client)
            self._send_backend(resume.backend)
            self._settle(resume)
            self._go_live()
            self.counters.reconnects += 1
            self._metrics.reconnects.inc()
            self._send_error("backend_reconnected", "the assistant connection is restored")
            return
        raise BackendError(
            "backend_closed", "the assistant connection dropped and could not be restored"
        )

    def _send_backend(self, events: list[BackendEvent]) -> None:
        """Write on the live connection now; while it is being replaced, hold the events
        for the new one, in order."""
        if self._pending is not None:
            self._pending.extend(events)
            return
        connection = self._conn
        assert connection is not None
        for index, event in enumerate(events):
            if self._traced:
                self._trace(">", event)
            try:
                connection.send_nowait(event)
            except BackendClosed as exc:
                self._pending = _resendable(events[index:])
                self._backend_lost(connection, exc)
                return

    def _replace_backend(self) -> None:
        """The translator gave the reply up: close the connection; its loss reconnects."""
        connection = self._conn
        if connection is not None:
            asyncio.get_running_loop().create_task(connection.aclose())
            self._backend_lost(connection, BackendClosed("the reply was abandoned"))

    def operate(self, out: Outbox) -> bool:
        """Act on what the translator returned for an operator (a ``/logs`` client): the
        same as for the session's own client; ignored (False) once the session is ending."""
        if self._ended.done():
            return False
        self._guard(self._apply, out)
        return True

    # ------------------------------------------------------------------- the client socket

    def client_frame(self, data: str | bytes) -> None:
        """One message from the client (the client socket's callback)."""
        if self._ended.done():
            return  # the session is closing: what was already read is not acted on
        try:
            self._client_frame(data)
        except Exception as exc:
            self._end(exc)

    def _client_frame(self, data: str | bytes) -> None:
        now = self._last_seen = time.monotonic()
        traffic, size = self.counters.traffic, len(data)
        if isinstance(data, bytes):
            traffic.in_audio += 1
            traffic.in_audio_bytes += size
        else:
            traffic.in_text += 1
            traffic.in_text_bytes += size
        if self._traced:
            self._trace_client("<", data)
        max_bytes = self._limits.max_message_bytes
        if size > max_bytes:  # the fast edge refuses it before reading; this is the other
            self._send_error("message_too_large", f"messages are limited to {max_bytes} bytes")
            raise CloseSession(1009, f"message over {max_bytes} bytes")
        try:
            if isinstance(data, bytes):
                out = self.translator.client_audio(data, now)
            else:
                out = self.translator.client_text(data, now)
        except ClientError as exc:
            self._send_error(exc.code, exc.message, retry_after=exc.retry_after)
            return
        self._account_audio(out.audio_in_ms, now)
        self._apply(out)

    def client_refused(self, code: int, reason: str) -> None:
        code_name: ErrorCode = _REFUSALS.get(code, "protocol_error")
        self._send_error(code_name, reason)
        self._end(CloseSession(code, reason))

    def client_gone(self, code: int | None) -> None:
        self.log.debug("< client left ({})", code)
        self._end(_ClientLeft())

    def client_stalled(self) -> None:
        self._end(CloseSession(1008, "the client is not reading its messages"))

    def client_writable(self, writable: bool) -> None:
        if self._conn is not None:
            self._conn.resume_reading() if writable else self._conn.pause_reading()

    # ----------------------------------------------------------------------------- tasks

    async def _run_tools(self) -> None:
        """Run the model's tool calls concurrently with the audio; owned by this task."""
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                call = await self._calls.get()
                task = asyncio.create_task(self._run_tool(call))
                running.add(task)
                task.add_done_callback(running.discard)
                task.add_done_callback(self._task_done)
        finally:
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)

    async def _run_tool(self, call: ToolCall) -> None:
        self.log.info("> tool {} ({} B of arguments)", call.name, len(call.arguments))
        self._metrics.tool_calls.labels(call.name).inc()
        tools = self._services.tools
        span = self._spans.child("tool", **{"rt.tool": call.name}) if self._spans else None
        try:
            output = await tools.run(call)
        finally:
            if span is not None:
                span.end()
        self._apply(self.translator.tool_result(call, output, tools.reply_instructions(call.name)))

    async def _keep_resume(self, resumable: Resumable) -> None:
        """Save the resume state now, then again each time a turn completes; ends with the
        session even if a store's client swallowed the cancellation (redis-py can)."""
        resumable.shared.hold_resume(resumable.token)
        while not self._ended.done():
            await self._save_resume(resumable)
            await self._grown.wait()
            self._grown.clear()

    async def _save_resume(self, resumable: Resumable) -> None:
        state = snapshot(self.translator, self.id, self.info.discussion, resumable.operator)
        try:
            await resumable.shared.save_resume(resumable.token, state)
        except SharedUnavailable as exc:  # saved with the next turn, once it is back
            self.log.warning("resume state not saved: {}", exc)

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
                self._stalled()
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
        if self.translator.responding and self._pending is None:
            stall_end = self._last_backend + limits.response_timeout_seconds
            if now >= stall_end:
                return None
            deadlines.append(stall_end)
        else:
            deadlines.append(now + limits.response_timeout_seconds)
        if self._drain_until is not None:
            deadlines.append(self._drain_until)
        return max(0.0, min(deadlines) - now)

    def _stalled(self) -> None:
        """A reply went quiet: the translator gives it up, the backend is replaced."""
        self._last_backend = time.monotonic()
        self._apply(self.translator.stalled(self._limits.response_timeout_seconds))

    # ---------------------------------------------------------------------------- helpers

    def _apply(self, out: Outbox) -> None:
        """Act on what the translator returned: the client's frames and the backend's
        events first, then the bookkeeping (:meth:`_settle`), then a backend replacement
        or a close."""
        if out.client:
            self._deliver(out.client)
        try:
            if out.backend:
                self._send_backend(out.backend)
        finally:
            self._settle(out)
        if out.abandoned:
            self._replace_backend()
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
            elif note.kind == "usage":
                self._metrics.usage(self.info.profile, note.data)
            elif note.kind == "rate_limits":
                self._metrics.rate_limits(note.data["rate_limits"])
            self._observe("session_note", note)
            if note.kind in _GROWN:
                self._grown.set()
        for call in out.calls:
            self._calls.put_nowait(call)

    def _deliver(self, frames: list[ClientFrame]) -> None:
        traffic, send = self.counters.traffic, self._socket.send
        for frame in frames:
            if isinstance(frame, bytes):
                data: str | bytes = frame
                traffic.out_audio += 1
                traffic.out_audio_bytes += len(frame)
            else:
                data = frame if isinstance(frame, str) else orjson.dumps(frame).decode()
                traffic.out_text += 1
                traffic.out_text_bytes += len(data)
            if self._traced:
                self._trace_client(">", data, frame)
            if not send(data):
                raise CloseSession(1008, "the client is not reading its messages")

    def _send_error(
        self, code: ErrorCode, message: str, *, retry_after: float | None = None
    ) -> None:
        out = self.translator.error(code, message, retry_after)
        with contextlib.suppress(CloseSession):  # a client not reading is closed anyway
            self._deliver(out.client)
        self._settle(out)

    def _trace(self, direction: str, event: BackendEvent) -> None:
        """A per-message line for a backend event (``LOG_EVENTS``): its type, or an audio
        event's size; never its content."""
        kind = event.get("type")
        if kind in _AUDIO_EVENTS:
            if self._log_audio is not None:
                size = len(event.get("audio") or event.get("delta") or "") * 3 // 4
                self._log_audio.debug("{} backend {} ({} B of audio)", direction, kind, size)
        elif self._log_backend is not None:
            self._log_backend.debug("{} backend {}", direction, kind)

    def _trace_client(
        self, direction: str, data: str | bytes, frame: ClientFrame | None = None
    ) -> None:
        """A per-message line for a client frame: text frames by type (what is sent) or
        size (what arrives, not yet parsed), audio frames by size."""
        if isinstance(data, bytes):
            if self._log_audio is not None:
                self._log_audio.debug("{} client audio frame ({} B)", direction, len(data))
        elif self._log_client is not None:
            kind = frame.get("type") or frame.get("event") if isinstance(frame, Mapping) else None
            self._log_client.debug("{} client {} ({} B)", direction, kind or "text", len(data))

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


def _resendable(events: Iterable[BackendEvent]) -> list[BackendEvent]:
    """What a new connection is sent of what the lost one did not take: all but a reply
    asked for, which the translator's resume() asks for again."""
    return [event for event in events if event.get("type") != "response.create"]
