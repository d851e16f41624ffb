"""Admitting a client to a session: origin, token, capacity and profile, then the session.

Every WebSocket dialect goes through :func:`serve_session`; refusals before the handshake are
HTTP statuses with a JSON body (:func:`deny`), refusals after it an ``error`` and a close.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import WebSocket
from fastapi.responses import JSONResponse
from loguru import logger

from rt_server import access
from rt_server.config import Settings
from rt_server.profile import Profile
from rt_server.session import Services, Session
from rt_server.translate import Translator

if TYPE_CHECKING:
    from rt_server.monitor import Monitor

TranslatorFactory = type[Translator]  # a dialect: built as (profile, tools, coalesce_ms=...)


@dataclass(slots=True)
class Runtime:
    """What the lifespan builds: settings, shared services, live sessions."""

    settings: Settings
    services: Services
    monitor: Monitor
    sessions: set[Session] = field(default_factory=set)
    draining: bool = False
    drained: asyncio.Event = field(default_factory=asyncio.Event)


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
        await deny(websocket, 403, "forbidden_origin", "this Origin may not connect")
        return
    if (
        settings.client_tokens
        and not authenticated
        and not access.token_allowed(access.presented_token(headers, query), settings.client_tokens)
    ):
        await deny(websocket, 401, "unauthorized", "a valid client token is required")
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
    translator = make(
        profile, runtime.services.tools.schemas(), coalesce_ms=settings.audio_coalesce_ms
    )
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


async def deny(websocket: WebSocket, status: int, code: str, message: str) -> None:
    """Refuse the handshake with an HTTP status and a JSON body; no backend is touched."""
    logger.info("refused a {} connection: {}", websocket.url.path, code)
    body = JSONResponse({"error": {"code": code, "message": message}}, status_code=status)
    await websocket.send_denial_response(body)
