"""What instances of rt_server share: the interface, and the one in-process version.

:class:`Shared` is what the admission, the monitor, the call console, the secret-minting
route and the resume read and write. :class:`LocalShared` keeps it in this process, which
is what one instance always did; :class:`~rt_server.shared.redis.RedisShared` keeps it in
Redis (``REDIS_URL``) so that every instance sees the same.

- the **live sessions** (``admit``/``describe``/``release``/``live``): each under a lease
  its instance refreshes, so a dead instance's sessions expire on their own; admitting
  one checks the caps (``MAX_SESSIONS_TOTAL``, ``MAX_SESSIONS_PER_TOKEN``) atomically;
- **feeds** (``publish``/``listen``): the monitor's messages reach the monitors of every
  instance; ``publish`` never blocks (it is called from the sessions' callbacks);
- **values** (``get``/``put``): the ``/logs`` call configuration;
- **rates** (``take``): the secret-minting limit per caller;
- **resume state** (``save_resume``/``load_resume``/``resumed``): a conversation a client
  may take up again on any instance within ``RESUME_WINDOW_SECONDS``.
"""

from __future__ import annotations

import hashlib
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Literal, Self, TypeAlias

from rt_server.rates import KeyedRate

#: Why a session was not admitted: the cap across instances, or the client token's.
Full: TypeAlias = Literal["total", "token"]
Channel: TypeAlias = Literal["monitor", "logs", "logs_control"]
Listener: TypeAlias = Callable[[str], None]


def digest(text: str) -> str:
    """A key part for ``text`` (a client token, an address): never the text itself."""
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class SharedUnavailable(Exception):
    """The shared store cannot be reached (Redis is down): admitting waits for it."""


@dataclass(frozen=True, slots=True)
class Caps:
    """``MAX_SESSIONS_TOTAL`` and ``MAX_SESSIONS_PER_TOKEN`` (0: no cap)."""

    total: int = 0
    per_token: int = 0


class Shared(ABC):
    """State every instance sees; one per process, entered by the lifespan."""

    #: Everything stays in this process (no other instance listens).
    local: bool = False

    def __init__(self, instance: str, caps: Caps, resume_seconds: float) -> None:
        self.instance = instance
        self.caps = caps
        self.resume_seconds = resume_seconds
        self._listeners: dict[Channel, list[Listener]] = {}

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    # ------------------------------------------------------------ live sessions

    @abstractmethod
    async def admit(self, session_id: str, holder: str | None) -> Full | None:
        """Count session ``session_id`` in (``holder``: a digest of its client token), or
        say which cap is reached. A session id already counted (a resume) is never refused."""

    @abstractmethod
    async def describe(self, session_id: str, info: dict[str, object]) -> None:
        """What ``live()`` lists for an admitted session (the monitor's ``sessions``)."""

    @abstractmethod
    async def release(self, session_id: str, holder: str | None) -> None:
        """The session ended: it no longer counts."""

    @abstractmethod
    async def live(self) -> list[dict[str, object]]:
        """The sessions live on every instance, as ``describe`` gave them."""

    # ------------------------------------------------------------ feeds

    def listen(self, channel: Channel, listener: Listener) -> None:
        """Call ``listener`` (it must return at once) with every message on ``channel``."""
        self._listeners.setdefault(channel, []).append(listener)

    @abstractmethod
    def publish(self, channel: Channel, message: str) -> None:
        """Send ``message`` to every instance's listeners; never blocks."""

    def _deliver(self, channel: Channel, message: str) -> None:
        for listener in self._listeners.get(channel, ()):
            listener(message)

    # ------------------------------------------------------------ values, rates, resume

    @abstractmethod
    async def get(self, name: str) -> str | None: ...

    @abstractmethod
    async def put(self, name: str, value: str) -> None: ...

    @abstractmethod
    async def take(self, key: str, per_minute: float) -> float:
        """0.0 when ``key`` may mint one more (counted); otherwise the seconds to wait."""

    @abstractmethod
    async def save_resume(self, token: str, state: bytes) -> None:
        """Keep ``state`` for ``resume_seconds`` (and as long as its session lives:
        :meth:`hold_resume`)."""

    @abstractmethod
    async def load_resume(self, token: str) -> bytes | None:
        """The state saved under ``token``; None once the window has passed."""

    @abstractmethod
    async def resumed(self, token: str) -> int:
        """How many times ``token``'s conversation has been taken up (1 the first time):
        each part of it numbers its records apart."""

    def hold_resume(self, token: str) -> None:
        """The session of ``token`` is live here: its state does not expire meanwhile."""

    def drop_resume(self, token: str) -> None:
        """The session of ``token`` ended here: its state expires after the window."""


@dataclass(slots=True)
class _Expiring:
    value: bytes
    until: float


class LocalShared(Shared):
    """This process alone (no ``REDIS_URL``): nothing leaves it, nothing expires early."""

    local = True

    def __init__(self, instance: str, caps: Caps, resume_seconds: float) -> None:
        super().__init__(instance, caps, resume_seconds)
        self._sessions: dict[str, str | None] = {}
        self._parts: dict[str, int] = {}  # connections of a session id (a resume overlaps)
        self._described: dict[str, dict[str, object]] = {}
        self._values: dict[str, str] = {}
        self._rates: dict[float, KeyedRate] = {}
        self._resume: dict[str, _Expiring] = {}
        self._held: set[str] = set()
        self._resumes: dict[str, int] = {}

    async def admit(self, session_id: str, holder: str | None) -> Full | None:
        if session_id in self._sessions:
            self._parts[session_id] += 1
            return None
        if self.caps.total and len(self._sessions) >= self.caps.total:
            return "total"
        mine = sum(1 for h in self._sessions.values() if h is not None and h == holder)
        if holder is not None and self.caps.per_token and mine >= self.caps.per_token:
            return "token"
        self._sessions[session_id] = holder
        self._parts[session_id] = 1
        return None

    async def describe(self, session_id: str, info: dict[str, object]) -> None:
        self._described[session_id] = info

    async def release(self, session_id: str, holder: str | None) -> None:
        self._parts[session_id] = parts = self._parts.get(session_id, 1) - 1
        if parts <= 0:
            self._parts.pop(session_id, None)
            self._sessions.pop(session_id, None)
            self._described.pop(session_id, None)

    async def live(self) -> list[dict[str, object]]:
        return list(self._described.values())

    def publish(self, channel: Channel, message: str) -> None:
        self._deliver(channel, message)

    async def get(self, name: str) -> str | None:
        return self._values.get(name)

    async def put(self, name: str, value: str) -> None:
        self._values[name] = value

    async def take(self, key: str, per_minute: float) -> float:
        rate = self._rates.setdefault(per_minute, KeyedRate(per_minute))
        return rate.take(key, time.monotonic())

    async def save_resume(self, token: str, state: bytes) -> None:
        self._sweep()
        self._resume[token] = _Expiring(state, time.monotonic() + self.resume_seconds)

    async def load_resume(self, token: str) -> bytes | None:
        self._sweep()
        kept = self._resume.get(token)
        return kept.value if kept is not None else None

    async def resumed(self, token: str) -> int:
        self._resumes[token] = count = self._resumes.get(token, 0) + 1
        return count

    def hold_resume(self, token: str) -> None:
        self._held.add(token)

    def drop_resume(self, token: str) -> None:
        self._held.discard(token)
        if (kept := self._resume.get(token)) is not None:
            kept.until = time.monotonic() + self.resume_seconds

    def _sweep(self) -> None:
        now = time.monotonic()
        for token, kept in list(self._resume.items()):
            if kept.until <= now and token not in self._held:
                del self._resume[token]
                self._resumes.pop(token, None)
