"""The FastAPI application: ``create_app(settings, backend=None)`` and ``app``.

Nothing happens at import: ``app = create_app()`` only builds routes. Settings are read
and the backend is started in the lifespan, so ``uvicorn rt_server.main:app`` fails fast
on a bad variable, and tests pass their own settings and backend.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI, WebSocket
from loguru import logger

from rt_server.backends import Backend, create_backend
from rt_server.config import Settings, load_settings
from rt_server.errors import ConfigError
from rt_server.logs import configure_logging
from rt_server.session import Session


@dataclass(slots=True)
class Runtime:
    """What the lifespan builds: the settings, the started backend, the live sessions."""

    settings: Settings
    backend: Backend
    sessions: set[Session] = field(default_factory=set)


def create_app(settings: Settings | None = None, backend: Backend | None = None) -> FastAPI:
    """The rt_server application; settings default to the environment at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        if settings is None:
            configure_logging(resolved.log_level, json=resolved.log_json)
        if resolved.backend == "emulator" and backend is None:
            logger.warning(
                "no OpenAI or Azure credentials: serving replies from the built-in emulator"
            )
        async with backend or create_backend(resolved) as started:
            app.state.runtime = Runtime(resolved, started)
            logger.info("rt_server ready: backend {}", started.name)
            yield

    app = FastAPI(title="rt_server", version="0.1.0", lifespan=lifespan)

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: cheap, touches nothing."""
        return {"status": "ok"}

    @app.websocket("/realtime")
    async def realtime(websocket: WebSocket) -> None:
        """The simplified realtime protocol (see README, "Protocol")."""
        runtime: Runtime = websocket.app.state.runtime
        limits = runtime.settings.limits
        session = Session(websocket, runtime.backend, runtime.settings.profile, limits)
        runtime.sessions.add(session)
        try:
            await session.run()
        finally:
            runtime.sessions.discard(session)

    _mount_web_client(app)
    return app


def _mount_web_client(app: FastAPI) -> None:
    try:
        from rt_server.web import mount_web_client
    except ImportError:  # the web client is optional in slim installs
        return
    mount_web_client(app)


def run() -> None:
    """The ``rt-server`` console script: settings from the environment, then uvicorn."""
    import uvicorn

    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"rt-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, json=settings.log_json)
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        ws_per_message_deflate=False,
        log_config=None,
    )


app = create_app()
