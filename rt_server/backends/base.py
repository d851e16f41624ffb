"""The backend adapter interface: how a session reaches a Realtime API.

A :class:`Backend` lives as long as the process (it owns the SDK client and the
credential); each client session opens its own :class:`BackendConnection` through it.
Events cross this boundary as plain dicts with GA event names, whatever dialect the
service speaks. ``session.py`` never asks which backend it has.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, Self

from rt_server.translate import BackendEvent

__all__ = ["Backend", "BackendConnection", "BackendEvent"]


class _Closing:
    """``async with`` support for things closed by ``aclose()``."""

    async def aclose(self) -> None:
        """Release what this holds; safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()


class BackendConnection(_Closing, ABC):
    """One live Realtime session on the backend."""

    @abstractmethod
    async def send(self, event: BackendEvent) -> None:
        """Send one client event; raises ``BackendClosed`` if the connection is gone."""

    @abstractmethod
    async def recv(self) -> BackendEvent:
        """The next server event (GA names); raises ``BackendClosed`` when it ends."""

    @abstractmethod
    async def aclose(self) -> None:
        """Close the connection; safe to call more than once."""


class Backend(_Closing, ABC):
    """A Realtime API endpoint and its credential, shared by every session."""

    name: str = "backend"

    async def start(self) -> None:
        """Acquire what the backend needs before the first session (default: nothing)."""

    @abstractmethod
    async def connect(self) -> BackendConnection:
        """Open a new Realtime session for one client.

        Returns once the WebSocket handshake has succeeded and the connection is ready
        for events; the caller owns the connection and must close it (it is an async
        context manager). The backend's first event, ``session.created``, is still to be
        received: the caller configures the session with ``session.update``.

        Every failure is raised as :class:`rt_server.errors.BackendError` with a code
        the client can act on: ``backend_unreachable`` (no connection),
        ``backend_auth_failed`` (401/403 or no credential), ``backend_rate_limited``
        (429, with ``retry_after`` when the service gave one), ``backend_unavailable``
        (5xx) or ``backend_timeout``; ``retryable`` says whether trying later may work.
        """

    async def check(self) -> None:
        """Raise ``BackendError`` if the credential cannot currently be used."""

    async def client_secret(self, session: dict[str, Any], *, seconds: int) -> dict[str, Any]:
        """Mint an ephemeral client secret bound to ``session`` (a GA session object).

        Returns the service's answer (``value``, ``expires_at``, ``session``); raises
        ``BackendError`` like :meth:`connect`, or ``NotImplementedError`` (no such API).
        """
        raise NotImplementedError(f"the {self.name} backend cannot mint client secrets")

    async def aclose(self) -> None:
        """Release the client and credential; called once at shutdown."""

    async def __aenter__(self) -> Self:
        await self.start()
        return self
