"""What the lifespan builds and every route reaches: :class:`Runtime`, and the one way to
reach it from a request or a WebSocket (:func:`runtime_of`, or the ``RuntimeDep``
dependency)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from starlette.applications import Starlette
from starlette.requests import HTTPConnection

from rt_server.call_logs import CallLogs
from rt_server.config import Settings
from rt_server.dialects import DIALECTS, Dialect
from rt_server.monitor import Monitor
from rt_server.readiness import Readiness
from rt_server.records.service import Records
from rt_server.session import Services, Session
from rt_server.shared import Caps, LocalShared, Shared


@dataclass(slots=True)
class Runtime:
    """Settings, the services sessions share, the records, the live sessions and the
    consoles following them (``/logs``), and the state shared with other instances."""

    settings: Settings
    services: Services
    monitor: Monitor
    records: Records = field(default_factory=Records)
    dialects: tuple[Dialect, ...] = DIALECTS
    sessions: set[Session] = field(default_factory=set)
    call_logs: CallLogs = field(default_factory=CallLogs)
    draining: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    shared: Shared = field(default_factory=lambda: LocalShared("local", Caps(), 120.0))
    readiness: Readiness = field(init=False)

    def __post_init__(self) -> None:
        self.readiness = Readiness(self.services.backend, self.settings.ready_cache_seconds)


def runtime_of(connection: HTTPConnection) -> Runtime:
    """The runtime of the application serving ``connection``."""
    return app_runtime(connection.app)


def app_runtime(app: Starlette) -> Runtime:
    """``app``'s runtime (set by the lifespan before the first request)."""
    runtime = app.state.runtime
    assert isinstance(runtime, Runtime)
    return runtime


RuntimeDep = Annotated[Runtime, Depends(runtime_of)]
