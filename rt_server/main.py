"""The FastAPI application: ``create_app(settings, backend=None)`` and ``app``.

Nothing happens at import: ``app = create_app()`` only builds routes. Settings are read,
the backend started and tools loaded in the lifespan, so ``uvicorn rt_server.main:app``
fails fast on a bad variable, and tests pass their own settings and backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from loguru import logger
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Receive, Scope, Send

from rt_server import access
from rt_server.backends import Backend, create_backend
from rt_server.config import Settings, load_settings
from rt_server.dialects import twiml as twilio_http
from rt_server.errors import BackendError, ConfigError
from rt_server.logs import configure_logging
from rt_server.metrics import Metrics
from rt_server.monitor import Monitor
from rt_server.observe import Observer
from rt_server.profile import Profile
from rt_server.protocol import client_schema, server_schema
from rt_server.records import mount_records, open_records
from rt_server.secrets import mount_client_secrets
from rt_server.session import Services, Session
from rt_server.tools import ToolRegistry, load_tools
from rt_server.translate import Translator

TranslatorFactory = Callable[[Profile, list[dict[str, Any]]], Translator]


@dataclass(slots=True)
class Runtime:
    """What the lifespan builds: settings, shared services, live sessions."""

    settings: Settings
    services: Services
    sessions: set[Session] = field(default_factory=set)
    draining: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)
    monitor: Monitor = field(default_factory=Monitor)


def create_app(
    settings: Settings | None = None,
    backend: Backend | None = None,
    *,
    tools: ToolRegistry | None = None,
    observers: tuple[Observer, ...] = (),
) -> FastAPI:
    """The rt_server application; settings default to the environment at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        if settings is None:
            configure_logging(resolved.log_level, json=resolved.log_json)
        _warn_about_exposure(resolved)
        if resolved.backend == "emulator" and backend is None:
            logger.warning(
                "no OpenAI or Azure credentials: serving replies from the built-in emulator "
                "(set OPENAI_API_KEY or AZURE_OPENAI_ENDPOINT, see .env.example)"
            )
        registry = load_tools(resolved.tool_modules)
        if tools is not None:
            registry.merge(tools)
        metrics = Metrics()
        async with (
            backend or create_backend(resolved) as started,
            open_records(resolved, metrics.registry) as records,
        ):
            app.state.records = records
            monitor = Monitor(resolved.monitor_buffer)
            everyone = (*observers, monitor, *records.observers)
            services = Services(started, resolved.limits, registry, metrics, everyone)
            runtime = app.state.runtime = Runtime(resolved, services, monitor=monitor)
            async with _drain_on_signal(runtime):
                logger.info("rt_server ready: backend {}, {} tools", started.name, len(registry))
                yield

    app = FastAPI(title="rt_server", version="0.1.0", lifespan=lifespan)
    app.add_middleware(_SettingsCORS)
    _routes(app)
    mount_records(app)
    mount_client_secrets(app)
    _mount_web_client(app)
    return app


def _routes(app: FastAPI) -> None:
    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: cheap, touches nothing."""
        return {"status": "ok"}

    @app.get("/ready", response_model=None)
    async def ready(request: Request) -> dict[str, str] | JSONResponse:
        """Readiness: whether the backend credential can currently be used."""
        runtime: Runtime = request.app.state.runtime
        if runtime.draining:
            return JSONResponse({"status": "shutting_down"}, status_code=503)
        try:
            await runtime.services.backend.check()
        except BackendError as exc:
            return JSONResponse({"status": "unavailable", "code": exc.code}, status_code=503)
        return {"status": "ready", "backend": runtime.services.backend.name}

    @app.get("/metrics")
    async def metrics(request: Request) -> Response:
        """Prometheus metrics."""
        runtime: Runtime = request.app.state.runtime
        return Response(runtime.services.metrics.expose(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/tools")
    async def list_tools(request: Request) -> list[dict[str, Any]]:
        """The function tools offered to the model (they run on the server)."""
        runtime: Runtime = request.app.state.runtime
        return runtime.services.tools.schemas()

    @app.get("/protocol.json")
    async def protocol() -> dict[str, Any]:
        """JSON Schema of every client and server message of each dialect."""
        from rt_server.dialects import conversation, twilio

        return {
            "realtime": {"client": client_schema(), "server": server_schema()},
            "conversation": {
                "client": conversation.PROTOCOL.schema(),
                "server": conversation.server_schema(),
            },
            "twilio": {"client": twilio.PROTOCOL.schema(), "server": twilio.server_schema()},
        }

    @app.websocket("/realtime")
    async def realtime(websocket: WebSocket) -> None:
        """The simplified realtime protocol (README, "Protocol")."""
        await serve_session(websocket, Translator, "realtime")

    @app.websocket("/ws/conversation")
    async def conversation(websocket: WebSocket) -> None:
        """The research-paper voice assistant dialect (README, "Dialects")."""
        from rt_server.dialects.conversation import ConversationTranslator

        await serve_session(websocket, ConversationTranslator, "conversation")

    @app.api_route("/twiml", methods=["GET", "POST"])
    async def twiml(request: Request) -> Response:
        """TwiML connecting a phone call to ``/call`` (README, "Phone calls")."""
        settings: Settings = request.app.state.runtime.settings
        if settings.twilio_auth_token and not await _twilio_signed(request, settings):
            logger.info("refused a /twiml request: invalid Twilio signature")
            return PlainTextResponse("invalid Twilio signature", status_code=403)
        url = twilio_http.stream_url(settings.public_url, str(request.base_url))
        return Response(twilio_http.twiml(url), media_type="text/xml")

    @app.get("/public-url")
    async def public_url(request: Request) -> dict[str, str]:
        """Where Twilio reaches this server: the TwiML webhook and the stream URL."""
        settings: Settings = request.app.state.runtime.settings
        base = settings.public_url or str(request.base_url).rstrip("/")
        return {
            "public_url": base,
            "twiml_url": f"{base}/twiml",
            "stream_url": twilio_http.stream_url(settings.public_url, str(request.base_url)),
            "source": "PUBLIC_URL" if settings.public_url else "request Host",
        }

    @app.websocket("/call")
    async def call(websocket: WebSocket) -> None:
        """Twilio Media Streams: a phone call (README, "Phone calls")."""
        from rt_server.dialects.twilio import TwilioTranslator

        settings: Settings = websocket.app.state.runtime.settings
        token = settings.twilio_auth_token
        if token and not twilio_http.signature_valid(
            token,
            twilio_http.candidate_urls(settings.public_url, str(websocket.url), websocket=True),
            {},
            websocket.headers.get("x-twilio-signature"),
            websocket.headers.get("x-twilio-webhooks-signature-settings"),
        ):
            await _deny(websocket, 403, "unauthorized", "invalid Twilio signature")
            return
        # A signed Twilio request needs no client token (Twilio cannot send one).
        await serve_session(websocket, TwilioTranslator, "twilio", authenticated=bool(token))

    @app.websocket("/logs")
    async def logs(websocket: WebSocket) -> None:
        """The live monitor feed of every session (README, "Monitoring"); admin token."""
        runtime: Runtime = websocket.app.state.runtime
        admin = runtime.settings.admin_token
        if admin is None:
            await _deny(websocket, 403, "forbidden", "the monitor is off: ADMIN_TOKEN is not set")
            return
        presented = access.presented_token(websocket.headers, websocket.query_params)
        if not access.token_allowed(presented, (admin,)):
            await _deny(websocket, 401, "unauthorized", "a valid admin token is required")
            return
        await websocket.accept()
        await runtime.monitor.serve(websocket)


async def _twilio_signed(request: Request, settings: Settings) -> bool:
    """Whether a webhook request carries a valid ``X-Twilio-Signature``."""
    assert settings.twilio_auth_token is not None
    params: dict[str, str] = {}
    if request.method == "POST":
        params = dict(parse_qsl((await request.body()).decode(), keep_blank_values=True))
    return twilio_http.signature_valid(
        settings.twilio_auth_token,
        twilio_http.candidate_urls(settings.public_url, str(request.url), websocket=False),
        params,
        request.headers.get("x-twilio-signature"),
        request.headers.get("x-twilio-webhooks-signature-settings"),
    )


async def serve_session(
    websocket: WebSocket, make: TranslatorFactory, dialect: str, *, authenticated: bool = False
) -> None:
    """Admit a client (auth, origin, capacity, profile), then run its session.

    ``authenticated``: the route has already verified the caller (a Twilio signature), so
    no client token is asked for.
    """
    runtime: Runtime = websocket.app.state.runtime
    settings = runtime.settings
    headers, query = websocket.headers, websocket.query_params
    if not access.origin_allowed(headers.get("origin"), settings.allowed_origins):
        await _deny(websocket, 403, "forbidden_origin", "this Origin may not connect")
        return
    if (
        settings.client_tokens
        and not authenticated
        and not access.token_allowed(access.presented_token(headers, query), settings.client_tokens)
    ):
        await _deny(websocket, 401, "unauthorized", "a valid client token is required")
        return
    profile = settings.find_profile(query.get("profile"))
    refusal = _refusal(runtime, profile, query.get("profile"))
    if refusal is not None:
        code, message, close = refusal
        await websocket.accept(access.chosen_protocol(headers))
        await websocket.send_json({"type": "error", "code": code, "message": message})
        await websocket.close(close, code)
        return
    assert profile is not None
    translator = make(profile, runtime.services.tools.schemas())
    session = Session(
        websocket,
        translator,
        runtime.services,
        dialect=dialect,
        subprotocol=access.chosen_protocol(headers),
    )
    runtime.sessions.add(session)
    try:
        await session.run()
    finally:
        runtime.sessions.discard(session)
        if runtime.draining and not runtime.sessions:
            runtime.drained.set()


def _refusal(
    runtime: Runtime, profile: Profile | None, asked: str | None
) -> tuple[str, str, int] | None:
    """Why an admitted client cannot have a session now (code, message, close code)."""
    if runtime.draining:
        return "shutting_down", "the server is shutting down; reconnect shortly", 1013
    if profile is None:
        names = ", ".join(sorted({"default", *runtime.settings.profiles}))
        return "unknown_profile", f"unknown profile {asked!r}; this server has: {names}", 1008
    if len(runtime.sessions) >= runtime.settings.limits.max_sessions:
        return "too_many_sessions", "the server is at its session limit; try again later", 1013
    return None


async def _deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the handshake with an HTTP status and a JSON body; no backend is touched."""
    logger.info("refused a {} connection: {}", websocket.url.path, code)
    body = JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    await websocket.send_denial_response(body)


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
            origins = list(scope["app"].state.runtime.settings.cors_origins)
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


@asynccontextmanager
async def _drain_on_signal(runtime: Runtime) -> AsyncIterator[None]:
    """On SIGTERM/SIGINT under uvicorn: tell clients, let replies finish, then stop.

    uvicorn closes every WebSocket with 1012 as soon as it hears the signal; this handler
    runs first, drains the sessions (each closes with 1001 when its reply ends or the
    grace period passes) and only then hands the signal to uvicorn.
    """
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    if not all(_is_uvicorn_handler(handler) for handler in previous.values()):
        yield  # not running under a uvicorn that owns the signals (tests, embedding)
        return
    loop = asyncio.get_running_loop()
    drain: list[asyncio.Task[None]] = []

    def on_signal(sig: int, frame: FrameType | None) -> None:
        handler = previous[signal.Signals(sig)]
        if runtime.draining or not callable(handler):
            if callable(handler):
                handler(sig, frame)  # a second signal: stop now
            return
        runtime.draining = True
        drain.append(loop.create_task(_drain(runtime, lambda: handler(sig, frame))))

    for sig in previous:
        signal.signal(sig, lambda sig, frame: loop.call_soon_threadsafe(on_signal, sig, frame))
    try:
        yield
    finally:
        for task in drain:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _drain(runtime: Runtime, stop: Callable[[], None]) -> None:
    grace = runtime.settings.shutdown_grace_seconds
    logger.info("shutting down: draining {} sessions (grace {:g} s)", len(runtime.sessions), grace)
    for session in list(runtime.sessions):
        session.shutdown(grace)
    if runtime.sessions:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(runtime.drained.wait(), grace + 2.0)
    stop()


def _is_uvicorn_handler(handler: object) -> bool:
    owner = getattr(handler, "__self__", None)
    return type(owner).__module__.startswith("uvicorn") and callable(handler)


def _warn_about_exposure(settings: Settings) -> None:
    if settings.client_tokens:
        return
    try:
        loopback = ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        loopback = settings.host == "localhost"
    if loopback:
        return
    logger.warning(
        "listening on {} with no client authentication: anyone who can reach this port can "
        "spend your Realtime quota. Set CLIENT_TOKENS (see README, 'Security').",
        settings.host,
    )


def _mount_web_client(app: FastAPI) -> None:
    from rt_server.web import mount_web_client

    mount_web_client(app)


def run() -> None:
    """The ``rt-server`` console script: settings from the environment, then uvicorn."""
    import uvicorn

    try:
        settings = load_settings()
        load_tools(settings.tool_modules)  # fail before binding the port
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
        timeout_graceful_shutdown=5,
    )


app = create_app()
