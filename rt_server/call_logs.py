"""``/logs``: the Twilio demo's operator console follows a call (the I/O shell of
:mod:`rt_server.dialects.logs`).

:class:`CallLogs` knows the live sessions (admission attaches and detaches each) and the
connected consoles. A console follows one session: the newest phone call, or the session
its ``?session=<id>`` names. Every backend event of the followed session reaches it through
the session's ``tap`` (called in the session's own callback, so it only serialises the
event once and queues it on each console's bounded :class:`~rt_server.monitor.Feed`; a
console that reads too slowly loses messages, counted, never slowing the call). What a
console sends is applied to the followed session through :meth:`Session.operate`, and its
``session.update`` is saved: every phone call that starts afterwards adopts it, on every
instance sharing ``REDIS_URL`` (the configuration is kept in :mod:`rt_server.shared`), and
a console follows and operates calls of other instances too (:mod:`rt_server.call_relay`).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from dataclasses import dataclass, field

import orjson
from loguru import logger
from starlette.websockets import WebSocket

from rt_server.call_relay import CallRelay
from rt_server.dialects.logs import (
    Configure,
    LogsTranslator,
    Operation,
    Reply,
    ToolOutput,
    error_event,
    render_event,
)
from rt_server.errors import ClientError
from rt_server.monitor import DEFAULT_BUFFER, Feed
from rt_server.session import Session
from rt_server.shared import Caps, LocalShared, Shared, SharedUnavailable
from rt_server.translate import BackendEvent, CallConfig

#: The dialect of phone calls: what a console follows by default, and what adopts the
#: saved configuration.
CALL_DIALECT = "twilio"
_SAVED = "call_config"  # the saved configuration's name in the shared store


@dataclass(eq=False, slots=True)  # compared and hashed by identity: consoles live in a set
class Console:
    """One connected ``/logs`` client."""

    feed: Feed
    pinned: str | None = None  # ?session=<id>; None: the newest call
    followed: Session | None = None
    remote: str | None = None  # a session served by another instance, followed through Redis
    translator: LogsTranslator = field(default_factory=LogsTranslator)
    key: str = field(default_factory=lambda: secrets.token_hex(6))  # in relayed operations


class CallLogs:
    """The live sessions, the consoles following them, and the saved call configuration."""

    def __init__(self, buffer: int = DEFAULT_BUFFER, shared: Shared | None = None) -> None:
        self.buffer = buffer
        self.shared = shared or LocalShared("local", _NO_CAPS, 0.0)
        self.saved = CallConfig()
        self.sessions: dict[str, Session] = {}  # live, oldest first
        self.consoles: set[Console] = set()
        self.relay = CallRelay(self, self.shared) if not self.shared.local else None

    # ------------------------------------------------------------ sessions (admission)

    async def attach(self, session: Session) -> None:
        """A session is about to start: a call adopts the saved configuration first (the
        one saved through any instance)."""
        self.sessions[session.id] = session
        if session.info.dialect == CALL_DIALECT:
            await self._load()
            session.translator.adopt(self.saved)
        for console in self.consoles:
            if console.pinned == session.id or (
                console.pinned is None and session.info.dialect == CALL_DIALECT
            ):
                self._follow(console, session)

    def detach(self, session: Session) -> None:
        """A session has ended."""
        self.sessions.pop(session.id, None)
        if self.relay is not None:
            self.relay.session_gone(session.id)
        session.tap = None
        for console in self.consoles:
            if console.followed is session:
                console.followed = None

    def exists(self, session_id: str) -> bool:
        return session_id in self.sessions or (
            self.relay is not None and self.relay.knows(session_id)
        )

    def remote_started(self, session_id: str, dialect: str) -> None:
        """A session started on another instance: consoles waiting for it follow it."""
        assert self.relay is not None
        for console in self.consoles:
            if console.pinned == session_id or (console.pinned is None and dialect == CALL_DIALECT):
                self._unfollow_local(console)
                self.relay.follow(console, session_id)

    async def _load(self) -> None:
        try:
            saved = await self.shared.get(_SAVED)
        except SharedUnavailable as exc:  # the last one seen here, then
            logger.warning("call configuration not loaded: {}", exc)
            return
        if saved is not None:
            value = orjson.loads(saved)
            self.saved = CallConfig(value["profile"], value["tools"])

    async def _save(self) -> None:
        value = {"profile": dict(self.saved.profile), "tools": self.saved.tools}
        try:
            await self.shared.put(_SAVED, orjson.dumps(value).decode())
        except SharedUnavailable as exc:
            logger.warning("call configuration not shared: {}", exc)

    # ------------------------------------------------------------ consoles

    async def serve(self, websocket: WebSocket, pinned: str | None) -> None:
        """Follow a session for an accepted ``websocket`` until it goes away."""
        console = Console(Feed(self.buffer), pinned)
        self.consoles.add(console)
        if (current := self._current(pinned)) is not None:
            self._follow(console, current)
        elif self.relay is not None:
            elsewhere = pinned if pinned is not None else self.relay.newest_call(CALL_DIALECT)
            if elsewhere is not None and (pinned is not None or self.relay.knows(elsewhere)):
                self.relay.follow(console, elsewhere)
        log = logger.bind(session="logs")
        log.info("call console connected (following {})", pinned or "the newest call")
        tasks = [
            asyncio.create_task(_send_feed(websocket, console.feed)),
            asyncio.create_task(self._read(websocket, console)),
        ]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            self.consoles.discard(console)
            if console.followed is not None:
                self.retap(console.followed)
            if self.relay is not None:
                self.relay.unfollow(console)
            for task in tasks:
                task.cancel()
            results = await asyncio.gather(*tasks, return_exceptions=True)
            failures = [type(r).__name__ for r in results if isinstance(r, Exception)]
            log.info(
                "call console left ({} messages dropped{})",
                console.feed.dropped_total,
                f"; {failures[0]}" if failures else "",
            )
        with contextlib.suppress(Exception):
            await websocket.close()

    def _current(self, pinned: str | None) -> Session | None:
        if pinned is not None:
            return self.sessions.get(pinned)
        calls = [s for s in self.sessions.values() if s.info.dialect == CALL_DIALECT]
        return calls[-1] if calls else None

    def _follow(self, console: Console, session: Session) -> None:
        if self.relay is not None:
            self.relay.unfollow(console)
        previous, console.followed = console.followed, session
        if previous is not None and previous is not session:
            self.retap(previous)
        self.retap(session)

    def _unfollow_local(self, console: Console) -> None:
        previous, console.followed = console.followed, None
        if previous is not None:
            self.retap(previous)

    def retap(self, session: Session) -> None:
        """Point ``session``'s tap at the consoles following it, here and on other
        instances (none: no tap)."""
        feeds = [c.feed for c in self.consoles if c.followed is session]
        relay = self.relay
        exported = relay is not None and session.id in relay.exported
        if not feeds and not exported:
            session.tap = None
            return

        def tap(event: BackendEvent) -> None:
            message = orjson.dumps(render_event(event)).decode()
            for feed in feeds:
                feed.put(message)
            if exported and relay is not None:
                relay.publish_event(session.id, message)

        session.tap = tap

    async def _read(self, websocket: WebSocket, console: Console) -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                _tell(console, "invalid_event", "send JSON text frames, not binary ones")
                continue
            try:
                operation = console.translator.client_text(raw)
            except ClientError as exc:
                _tell(console, exc.code, exc.message)
                continue
            if isinstance(operation, Configure):
                await self._load()  # merged onto what another instance saved
            self._apply(console, operation)
            if isinstance(operation, Configure):
                await self._save()

    def _apply(self, console: Console, operation: Operation) -> None:
        session = console.followed
        if session is None and console.remote is not None and self.relay is not None:
            if isinstance(operation, Configure):
                self.saved = self.saved.merged(operation.config)
                if operation.refused:
                    _tell(console, "unsupported_field", _refused(operation.refused))
            self.relay.operate(console, operation)
            return
        match operation:
            case Configure(config, refused):
                self.saved = self.saved.merged(config)
                if refused:
                    _tell(console, "unsupported_field", _refused(refused))
                if session is not None:
                    session.operate(session.translator.configure(config))
            case ToolOutput(call_id, output) if session is not None:
                session.operate(session.translator.operator_output(call_id, output))
            case Reply() if session is not None:
                session.operate(session.translator.operator_reply())
            case _:
                _tell(console, "no_call", _NO_CALL)

    def refused(self, key: str) -> None:
        """The console ``key`` names operated a call that had ended on its instance."""
        for console in self.consoles:
            if console.key == key:
                _tell(console, "no_call", _NO_CALL)


_NO_CAPS = Caps()
_NO_CALL = "no call is being followed: wait for a call"


def _refused(fields: list[str] | tuple[str, ...]) -> str:
    return f"set by the server, not applied: session.{', session.'.join(fields)}"


def _tell(console: Console, code: str, message: str) -> None:
    console.feed.put(orjson.dumps(error_event(code, message)).decode())


async def _send_feed(websocket: WebSocket, feed: Feed) -> None:
    while True:
        await websocket.send_text(await feed.get())
