"""Admitting a client to a session: origin, token, capacity and profile, then the session.

Every WebSocket dialect goes through :func:`serve_session`; refusals before the handshake are
HTTP statuses in the error envelope (:func:`rt_server.http_errors.deny`), refusals after it
an ``error`` and a close.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import WebSocket
from loguru import logger

from rt_server import access
from rt_server.dialects import Dialect
from rt_server.edge import accept
from rt_server.http_errors import client_refused, deny
from rt_server.profile import Profile
from rt_server.records import discussions
from rt_server.records.store import describe
from rt_server.runtime import Runtime, runtime_of
from rt_server.session import Session
from rt_server.translate import TextRate

_DISCUSSION_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


async def serve_session(
    websocket: WebSocket,
    dialect: Dialect,
    *,
    authenticated: bool = False,
    profile_name: str | None = None,
    **options: Any,
) -> None:
    """Admit a client (origin, token, capacity, profile), then run its session.

    ``authenticated``: the route has already verified the caller (a Twilio signature), so
    no client token is asked for. ``profile_name``: the profile to serve instead of the
    one ``?profile=`` names; ``options`` go to the dialect's translator.
    """
    runtime = runtime_of(websocket)
    settings = runtime.settings
    headers, query = websocket.headers, websocket.query_params
    if (refused := client_refused(websocket, settings, authenticated=authenticated)) is not None:
        await deny(websocket, refused)
        return
    asked = profile_name or query.get("profile")
    profile = settings.find_profile(asked)
    discussion = query.get("discussion")
    turned_away = _refusal(runtime, profile, asked)
    if turned_away is None and discussion is not None:
        turned_away = await _discussion_refusal(runtime, discussion)
    if turned_away is not None:
        code, message, close = turned_away
        await websocket.accept(access.chosen_protocol(headers))
        await websocket.send_json(dialect.refusal(code, message))
        await websocket.close(close, code)
        return
    assert profile is not None
    services = runtime.services
    translator = dialect(
        profile,
        services.tools.schemas(),
        coalesce_ms=settings.audio_coalesce_ms,
        record_audio=services.record_audio is not None,
        text_rate=TextRate.of(settings.limits),
        max_image_bytes=settings.limits.max_image_bytes,
        **options,
    )
    socket = await accept(websocket, access.chosen_protocol(headers), settings.limits)
    session = Session(socket, translator, services, discussion=discussion)
    runtime.sessions.add(session)
    runtime.call_logs.attach(session)
    try:
        await session.run()
    finally:
        runtime.call_logs.detach(session)
        runtime.sessions.discard(session)
        if runtime.draining and not runtime.sessions:
            runtime.drained.set()


async def _discussion_refusal(runtime: Runtime, id: str) -> tuple[str, str, int] | None:
    """Why a session cannot record into discussion ``id`` (``?discussion=``)."""
    store = runtime.records.store
    unknown = "unknown_discussion", f"no discussion {id[:64]!r}: POST /api/discussions/start", 1008
    if store is None:
        return "unknown_discussion", "discussions need the conversation records (RECORDS=on)", 1008
    if not _DISCUSSION_ID.fullmatch(id):
        return unknown
    try:
        known = await discussions.exists(store.engine, id)
    except Exception as exc:  # the database is down: the session would not be recorded
        logger.warning("discussions: cannot check {} ({})", id, describe(exc))
        return "records_unavailable", "the records database is unavailable", 1013
    return None if known else unknown


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
