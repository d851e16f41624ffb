"""The FastAPI application: ``create_app(settings, backend=None)`` and ``app``.

Nothing happens at import: ``app = create_app()`` only builds routes. Settings are read,
the backend started and tools loaded in the lifespan, so ``uvicorn rt_server.main:app``
fails fast on a bad variable, and tests pass their own settings and backend.
"""

from __future__ import annotations

import gc
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from loguru import logger
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from rt_server import access, client_secrets, gateway, http_errors
from rt_server.backends import Backend, create_backend
from rt_server.call_logs import CallLogs
from rt_server.config import Settings, load_settings
from rt_server.dialects import DIALECTS, Dialect
from rt_server.dialects.gateway import GatewayTranslator
from rt_server.edge import server_options
from rt_server.errors import ConfigError
from rt_server.logs import configure_logging, message_categories
from rt_server.metrics import Metrics
from rt_server.monitor import Monitor
from rt_server.observe import Observer
from rt_server.phone import mount_phone
from rt_server.records import api as records_api
from rt_server.records import discussion_api
from rt_server.records.service import open_records
from rt_server.routes import mount_routes
from rt_server.runtime import Runtime, runtime_of
from rt_server.sched import request_slice
from rt_server.session import Services
from rt_server.shared import open_shared
from rt_server.shutdown import drain_on_signal
from rt_server.tools import ToolRegistry, load_tools
from rt_server.tracing import tracer_provider
from rt_server.web import mount_web_client


def create_app(
    settings: Settings | None = None,
    backend: Backend | None = None,
    *,
    tools: ToolRegistry | None = None,
    observers: tuple[Observer, ...] = (),
    dialects: tuple[Dialect, ...] = DIALECTS,
    own_process: bool = False,
) -> FastAPI:
    """The rt_server application; settings default to the environment at start-up.

    ``dialects``: the client dialects served (:mod:`rt_server.dialects`); each with a
    ``path`` gets its WebSocket route there.

    ``own_process`` (the console script and ``rt_server.main:app``; not tests, which build
    many apps in one process) tunes the process once the lifespan has started: the
    scheduler slice (``SCHED_SLICE_US``, :mod:`rt_server.sched`) and the start-up heap
    hidden from the garbage collector (:func:`_freeze_start_up`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        if settings is None:
            configure_logging(
                resolved.log_level, json=resolved.log_json, events=resolved.log_events
            )
        _warn_about_exposure(resolved)
        if resolved.backend == "emulator" and backend is None:
            logger.warning(
                "no OpenAI or Azure credentials: serving replies from the built-in emulator "
                "(set OPENAI_API_KEY or AZURE_OPENAI_ENDPOINT, see .env.example)"
            )
        registry = load_tools(resolved.tool_modules)
        if tools is not None:
            registry.merge(tools)
        metrics = Metrics(resolved.instance_id)
        async with (
            backend or create_backend(resolved) as started,
            open_records(resolved, metrics.registry) as records,
            open_shared(resolved) as shared,
            tracer_provider(resolved.otel_endpoint, resolved.instance_id) as tracer,
        ):
            monitor = Monitor(resolved.monitor_buffer, shared)
            everyone = (*observers, monitor, *records.observers)
            audio_dir = Path(resolved.record_audio_dir) if resolved.record_audio_dir else None
            services = Services(
                started,
                resolved.limits,
                registry,
                metrics,
                everyone,
                record_audio=audio_dir,
                message_logs=message_categories(resolved.log_level, resolved.log_events),
                tracer=tracer,
            )
            runtime = app.state.runtime = Runtime(
                resolved,
                services,
                monitor,
                records,
                dialects,
                call_logs=CallLogs(monitor.buffer, shared),
                shared=shared,
            )
            async with drain_on_signal(runtime):
                if own_process:
                    _tune_process(resolved)
                logger.info("rt_server ready: backend {}, {} tools", started.name, len(registry))
                yield

    app = FastAPI(title="rt_server", version="0.1.0", lifespan=lifespan)
    app.add_middleware(_SettingsCORS)
    http_errors.install(app)
    mount_routes(app, dialects)
    mount_phone(app)
    app.include_router(records_api.router)
    app.include_router(discussion_api.router)
    app.include_router(client_secrets.router)
    if GatewayTranslator in dialects:  # served with the other dialects, or left out
        app.include_router(gateway.router())
    mount_web_client(app)
    return app


def _tune_process(settings: Settings) -> None:
    if settings.sched_slice_us:
        logger.info("scheduler slice: {}", request_slice(settings.sched_slice_us))
    _freeze_start_up()


def _freeze_start_up() -> None:
    """Move what start-up built (modules, routes, schemas, clients) out of the garbage
    collector's sight. A full collection stops every session on the worker while it walks
    the heap; it then walks only what the sessions hold (measured in
    ``benchmarks/DECISIONS.md``)."""
    gc.collect()
    gc.freeze()
    logger.info(
        "start-up heap frozen: {} objects out of the collector's sight", gc.get_freeze_count()
    )


class _SettingsCORS:
    """CORS from the runtime settings (read at start-up, after the app is built)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app
        self._cors: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        if self._cors is None:
            origins = list(runtime_of(HTTPConnection(scope)).settings.cors_origins)
            if not origins:
                self._cors = self._app
            else:
                # Credentials are never allowed together with "*".
                self._cors = CORSMiddleware(
                    self._app,
                    allow_origins=origins,
                    allow_credentials="*" not in origins,
                    allow_methods=["GET", "POST", "DELETE"],
                    allow_headers=["Authorization", "Content-Type"],
                )
        await self._cors(scope, receive, send)


def _warn_about_exposure(settings: Settings) -> None:
    if settings.admin_local:
        logger.warning(
            "ADMIN_LOCAL=true: callers on this machine use /logs, /monitor, /make-call and the "
            "admin APIs without ADMIN_TOKEN (requests through a proxy header such as "
            "X-Forwarded-For, as ngrok sends, still need it). For local development only."
        )
    if settings.client_tokens or access.is_loopback(settings.host):
        return
    logger.warning(
        "listening on {} with no client authentication: anyone who can reach this port can "
        "spend your Realtime quota. Set CLIENT_TOKENS (see README, 'Security').",
        settings.host,
    )


def run() -> None:
    """The ``rt-server`` console script: settings from the environment, then uvicorn."""
    import uvicorn

    try:
        settings = load_settings()
        load_tools(settings.tool_modules)  # fail before binding the port
    except ConfigError as exc:
        print(f"rt-server: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    try:  # before start-up: a port in use stops here, not after "rt_server ready"
        listening = _listen(settings.host, settings.port)
    except OSError as exc:
        where = f"HOST={settings.host} PORT={settings.port}"
        print(f"rt-server: cannot listen on {where}: {exc.strerror or exc}", file=sys.stderr)
        raise SystemExit(2) from None
    configure_logging(settings.log_level, json=settings.log_json, events=settings.log_events)
    config = uvicorn.Config(
        create_app(settings, own_process=True),
        **server_options(settings.limits),  # the fast edge (rt_server.edge)
        log_config=None,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=[listening])


def _listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` (uvicorn listens on it); raises OSError."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    listening = socket.socket(family, kind, proto)
    try:
        listening.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listening.bind(address)
    except OSError:
        listening.close()
        raise
    return listening


app = create_app(own_process=True)
