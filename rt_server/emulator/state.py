"""What the admin API shows and changes: connections, the last credential seen, faults, secrets.

One `EmulatorState` per running emulator, shared by its connections (one event loop, no locks).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rt_server.emulator.config import Faults
from rt_server.emulator.dialect import Dialect, session_to_beta


@dataclass
class ConnectionInfo:
    id: str
    path: str
    dialect: Dialect
    model: str
    user_agent: str = ""
    events_in: int = 0
    events_out: int = 0
    session: dict[str, Any] | None = None
    temperature: float = 0.8  # what a beta client set (the GA session has no temperature)
    #: The conversation's items (the live list), and how to close the socket: test hooks.
    items: list[dict[str, Any]] = field(default_factory=list, repr=False)
    drop: Callable[[int, str], None] | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """As JSON; the session in the shape this connection's client sees it."""
        session = self.session
        if session is not None and self.dialect == "beta":
            session = session_to_beta(session)
        return {
            "id": self.id,
            "path": self.path,
            "dialect": self.dialect,
            "model": self.model,
            "user_agent": self.user_agent,
            "events_in": self.events_in,
            "events_out": self.events_out,
            "session": session,
            "temperature": self.temperature,
        }


@dataclass
class ClientSecret:
    expires_at: int
    session: dict[str, Any]


@dataclass
class EmulatorState:
    faults: Faults = field(default_factory=Faults)
    once: Faults | None = None  # faults for the next connection only
    total_connections: int = 0
    last_authorization: str | None = None  # the bare token or key last seen
    last_auth_header: str | None = None  # "authorization" or "api-key"
    connections: dict[str, ConnectionInfo] = field(default_factory=dict)
    client_secrets: dict[str, ClientSecret] = field(default_factory=dict)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    @property
    def active_connections(self) -> int:
        return len(self.connections)

    def set_faults(self, faults: Faults) -> None:
        """Replace the faults for connections opened from now on."""
        self.faults = faults

    def set_faults_once(self, faults: Faults) -> None:
        """Use `faults` for the next connection only, then the standing faults again."""
        self.once = faults

    def take_faults(self) -> Faults:
        faults, self.once = (self.once or self.faults), None
        return faults

    def open(self, path: str, dialect: Dialect, model: str, user_agent: str = "") -> ConnectionInfo:
        self.total_connections += 1
        info = ConnectionInfo(f"conn{next(self._ids)}", path, dialect, model, user_agent)
        self.connections[info.id] = info
        return info

    def close(self, info: ConnectionInfo) -> None:
        self.connections.pop(info.id, None)

    def items(self, connection_id: str) -> list[dict[str, Any]]:
        """The conversation items a connection holds, in order (GA shape); KeyError when
        there is no such connection."""
        return [dict(item) for item in self.connections[connection_id].items]

    def drop(self, connection_id: str, code: int = 1011) -> None:
        """Close a connection now, as a failing service would (KeyError: none such)."""
        drop = self.connections[connection_id].drop
        if drop is not None:
            drop(code, "emulated drop")

    def forget_expired_secrets(self, now: float) -> None:
        """Drop the client secrets past their expiry (kept otherwise: they are minted
        one per session, forever)."""
        expired = [
            value for value, secret in self.client_secrets.items() if secret.expires_at <= now
        ]
        for value in expired:
            del self.client_secrets[value]

    def to_dict(self) -> dict[str, Any]:
        return {
            "active_connections": self.active_connections,
            "total_connections": self.total_connections,
            "last_authorization": self.last_authorization,
            "last_auth_header": self.last_auth_header,
            "faults": self.faults.to_dict(),
            "faults_once": self.once.to_dict() if self.once else None,
            "connections": [c.to_dict() for c in self.connections.values()],
        }
