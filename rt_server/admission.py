"""Admitting a client to a session: origin, token, capacity and profile, then the session.

Every WebSocket dialect goes through :func:`serve_session`; refusals before the handshake are
HTTP statuses in the error envelope (:func:`rt_server.http_errors.deny`), refusals after it
an ``error`` and a close.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

from fastapi import WebSocket
from loguru import logger

from rt_server import access, resume
from rt_server.dialects import Dialect
from rt_server.edge import accept
from rt_server.http_errors import client_refused, deny
from rt_server.monitor import describe as listed
from rt_server.profile import Profile
from rt_server.records import discussions
from rt_server.records.store import describe
from rt_server.resume import ResumeState
from rt_server.runtime import Runtime, runtime_of
from rt_server.session import Resumable, Session
from rt_server.shared import SharedUnavailable, digest
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
    resumed: ResumeState | None = None
    turned_away: tuple[str, str, int] | None = None
    if (token := query.get("resume")) is not None and dialect.restores:
        resumed, turned_away = await _resumed(runtime, token, dialect)
    asked = resumed.profile if resumed is not None else profile_name or query.get("profile")
    profile = settings.find_profile(asked)
    discussion = resumed.discussion if resumed is not None else query.get("discussion")
    turned_away = turned_away or _refusal(runtime, profile, asked)
    if turned_away is None and discussion is not None:
        turned_away = await _discussion_refusal(runtime, discussion)
    session_id = resumed.conversation if resumed is not None else uuid.uuid4().hex[:12]
    holder = _holder(runtime, headers, query)
    if turned_away is None:
        turned_away = await _admitted(runtime, session_id, holder)
    if turned_away is not None:
        code, message, close = turned_away
        await websocket.accept(access.chosen_protocol(headers))
        await websocket.send_json(dialect.refusal(code, message))
        await websocket.close(close, code)
        return
    assert profile is not None
    try:
        await _serve(websocket, runtime, dialect, profile, session_id, discussion, resumed, options)
    finally:
        with contextlib.suppress(SharedUnavailable):  # its lease ends on its own
            await runtime.shared.release(session_id, holder)


async def _serve(
    websocket: WebSocket,
    runtime: Runtime,
    dialect: Dialect,
    profile: Profile,
    session_id: str,
    discussion: str | None,
    resumed: ResumeState | None,
    options: dict[str, Any],
) -> None:
    """Run an admitted client's session (counted in ``runtime.shared``)."""
    settings, services, shared = runtime.settings, runtime.services, runtime.shared
    translator = dialect(
        profile,
        services.tools.schemas(),
        coalesce_ms=settings.audio_coalesce_ms,
        record_audio=services.record_audio is not None,
        text_rate=TextRate.of(settings.limits),
        max_image_bytes=settings.limits.max_image_bytes,
        **options,
    )
    resumable: Resumable | None = None
    part = 0
    if dialect.restores:
        token = websocket.query_params.get("resume") if resumed is not None else None
        resumable = Resumable(
            shared, token or resume.new_token(), resume.operator_fields(translator), resumed
        )
        translator.resume_token = resumable.token
        if resumed is not None:
            part = await shared.resumed(resumable.token)
    socket = await accept(websocket, access.chosen_protocol(websocket.headers), settings.limits)
    session = Session(
        socket,
        translator,
        services,
        discussion=discussion,
        id=session_id,
        part=part,
        resumable=resumable,
    )
    runtime.sessions.add(session)
    await runtime.call_logs.attach(session)
    if resumed is not None:
        resumed.adopt_into(translator)  # after the saved call configuration: the operator's
    with contextlib.suppress(SharedUnavailable):
        await shared.describe(session.id, listed(session.info, shared.instance))
    try:
        await session.run()
    finally:
        runtime.call_logs.detach(session)
        runtime.sessions.discard(session)
        if runtime.draining and not runtime.sessions:
            runtime.drained.set()


async def _resumed(
    runtime: Runtime, token: str, dialect: Dialect
) -> tuple[ResumeState | None, tuple[str, str, int] | None]:
    """The conversation ``?resume=<token>`` takes up, or why it cannot be."""
    expired = "resume_expired", "nothing to resume: start a new session", 1008
    if not 16 <= len(token) <= 64:
        return None, expired
    try:
        data = await runtime.shared.load_resume(token)
    except SharedUnavailable:
        return None, _UNAVAILABLE
    state = resume.parse(data) if data is not None else None
    if state is None or state.dialect != dialect.name:
        return None, expired
    return state, None


_UNAVAILABLE = "state_unavailable", "the shared state is unavailable; try again shortly", 1013


def _holder(runtime: Runtime, headers: Any, query: Any) -> str | None:
    """Whose session it is, for ``MAX_SESSIONS_PER_TOKEN``: a digest of the client token."""
    if not runtime.settings.client_tokens:
        return None
    token = access.presented_token(headers, query)
    return digest(token) if token else None


async def _admitted(
    runtime: Runtime, session_id: str, holder: str | None
) -> tuple[str, str, int] | None:
    """Count the session in across instances, or say which cap is reached."""
    try:
        full = await runtime.shared.admit(session_id, holder)
    except SharedUnavailable:
        return _UNAVAILABLE
    if full == "total":
        return "too_many_sessions", "the service is at its session limit; try again later", 1013
    if full == "token":
        return "too_many_sessions", "this client token is at its session limit", 1013
    return None


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
