"""``/logs`` across instances: a console follows (and operates) a call served by another
instance sharing ``REDIS_URL``, over the shared store's pub/sub (:mod:`rt_server.shared`).

- Which sessions live elsewhere: the monitor feed's ``session_started`` / ``session_ended``
  (each names its ``instance``).
- Following: the console's instance publishes ``{"follow": id, "by": instance}`` on
  ``logs_control``; the instance serving the session adds a publisher to its tap, and each
  event goes out once on ``logs`` as ``<session id>\\n<the event as the console renders it>``;
  ``{"unfollow": ...}`` when no console of that instance follows it any more.
- Operating: a console's ``session.update``, tool output or ``response.create`` for a call
  elsewhere goes out on ``logs_control`` as ``{"op": ..., "session": id, "at": instance,
  "by": instance, "console": key}`` and is applied by the instance serving it, as for its
  own consoles. If that call has ended there (its ``session_ended`` had not reached the
  console's instance yet), that instance answers ``{"refused": id, "to": instance,
  "console": key}`` and the console is told ``no_call``, as a console of the instance that
  served the call would be: an operation is applied or answered, never silently lost.

What is lost in transit (a message published while no instance listened) is not retried:
the console sees the next events.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Protocol

import orjson
from loguru import logger

from rt_server.dialects.logs import Configure, Operation, Reply, ToolOutput
from rt_server.monitor import Feed
from rt_server.session import Session
from rt_server.shared import Shared
from rt_server.translate import CallConfig


class Console(Protocol):
    """A console, as the relay sees it (:class:`rt_server.call_logs.Console`)."""

    key: str  # names the console in the answer to an operation
    remote: str | None
    feed: Feed


class CallLogs(Protocol):
    """What the relay needs of :class:`rt_server.call_logs.CallLogs`."""

    @property
    def sessions(self) -> Mapping[str, Session]: ...

    @property
    def consoles(self) -> Iterable[Console]: ...

    def retap(self, session: Session) -> None: ...

    def remote_started(self, session_id: str, dialect: str) -> None: ...

    def refused(self, key: str) -> None: ...


_STARTED = '"type":"session_started"'
_ENDED = '"type":"session_ended"'


class CallRelay:
    """The remote half of :class:`~rt_server.call_logs.CallLogs` (only with Redis)."""

    def __init__(self, logs: CallLogs, shared: Shared) -> None:
        self._logs = logs
        self._shared = shared
        # live elsewhere: session id -> (dialect, the instance serving it), oldest first
        self.remote: dict[str, tuple[str, str]] = {}
        self.exported: dict[str, set[str]] = {}  # served here: session id -> instances following
        shared.listen("monitor", self._monitor)
        shared.listen("logs", self._event)
        shared.listen("logs_control", self._control)

    # ------------------------------------------------------------ this instance's consoles

    def knows(self, session_id: str) -> bool:
        return session_id in self.remote

    def newest_call(self, dialect: str) -> str | None:
        calls = [id for id, (kind, _) in self.remote.items() if kind == dialect]
        return calls[-1] if calls else None

    def follow(self, console: Console, session_id: str) -> None:
        if console.remote == session_id:
            return
        self.unfollow(console)
        console.remote = session_id
        self._send({"follow": session_id, "by": self._shared.instance})

    def unfollow(self, console: Console) -> None:
        session_id, console.remote = console.remote, None
        if session_id is None:
            return
        if not any(c.remote == session_id for c in self._logs.consoles if c is not console):
            self._send({"unfollow": session_id, "by": self._shared.instance})

    def operate(self, console: Console, operation: Operation) -> None:
        """Have the instance serving the call ``console`` follows apply ``operation``."""
        session_id = console.remote
        assert session_id is not None
        message: dict[str, Any] = {"session": session_id, "console": console.key}
        message["by"] = self._shared.instance
        if (known := self.remote.get(session_id)) is not None:
            message["at"] = known[1]
        match operation:
            case Configure(config, _):
                message |= {"op": "configure", "profile": dict(config.profile)}
                message["tools"] = config.tools
            case ToolOutput(call_id, output):
                message |= {"op": "tool_output", "call_id": call_id, "output": output}
            case Reply():
                message["op"] = "reply"
        self._send(message)

    def _event(self, message: str) -> None:
        session_id, _, event = message.partition("\n")
        for console in self._logs.consoles:
            if console.remote == session_id:
                console.feed.put(event)

    def _monitor(self, message: str) -> None:
        head = message[:32]
        if _STARTED not in head and _ENDED not in head:
            return  # a note: most of the feed, not parsed
        parsed = orjson.loads(message)
        session_id = parsed["session"]
        if parsed["type"] == "session_started":
            if parsed["data"].get("instance") != self._shared.instance:
                self.remote[session_id] = (parsed["dialect"], parsed["data"].get("instance"))
                self._logs.remote_started(session_id, parsed["dialect"])
        else:
            self.remote.pop(session_id, None)
            for console in self._logs.consoles:
                if console.remote == session_id:  # as detach does here: no_call until the next
                    console.remote = None

    # ------------------------------------------------------------ sessions served here

    def publish_event(self, session_id: str, rendered: str) -> None:
        self._shared.publish("logs", f"{session_id}\n{rendered}")

    def session_gone(self, session_id: str) -> None:
        self.exported.pop(session_id, None)

    def _control(self, message: str) -> None:
        parsed = orjson.loads(message)
        if (followed := parsed.get("follow")) is not None:
            self._export(followed, parsed["by"], add=True)
        elif (left := parsed.get("unfollow")) is not None:
            self._export(left, parsed["by"], add=False)
        elif parsed.get("refused") is not None:
            if parsed["to"] == self._shared.instance:
                self._logs.refused(parsed["console"])
        elif (session_id := parsed.get("session")) is not None:
            session = self._logs.sessions.get(session_id)
            applied = session is not None and self._apply(session, parsed)
            if not applied and parsed.get("at") == self._shared.instance:  # it ended here
                answer = {"refused": session_id, "to": parsed["by"], "console": parsed["console"]}
                self._send(answer)

    def _export(self, session_id: str, instance: str, *, add: bool) -> None:
        session = self._logs.sessions.get(session_id)
        if session is None:
            return
        followers = self.exported.setdefault(session_id, set())
        if add:
            followers.add(instance)
        else:
            followers.discard(instance)
        if not followers:
            del self.exported[session_id]
        self._logs.retap(session)

    def _apply(self, session: Session, parsed: dict[str, Any]) -> bool:
        """Apply a remote operation; False: the session is ending, nothing was done."""
        translator = session.translator
        match parsed.get("op"):
            case "configure":
                config = CallConfig(parsed.get("profile") or {}, parsed.get("tools"))
                return session.operate(translator.configure(config))
            case "tool_output":
                output = translator.operator_output(parsed["call_id"], parsed["output"])
                return session.operate(output)
            case "reply":
                return session.operate(translator.operator_reply())
            case other:
                logger.debug("logs: unknown remote operation {}", other)
                return True

    def _send(self, message: dict[str, Any]) -> None:
        self._shared.publish("logs_control", orjson.dumps(message).decode())
