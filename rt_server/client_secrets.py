"""``POST /api/session``: ephemeral client secrets for clients that reach the Realtime API
directly (WebRTC in a browser), bound to the server's assistant profile.

The server asks its backend (OpenAI ``/v1/realtime/client_secrets``, or Azure's
``<endpoint>/openai/v1/realtime/client_secrets`` with its key or Entra ID token) for a
short-lived secret whose session carries the profile's instructions, voice, audio
settings and tools; the client cannot change them. The client receives the service's
answer (``value``, ``expires_at``, ``session``), never the server's own credential.
Client authentication is the same as for ``/realtime`` (``CLIENT_TOKENS``, Origin
allowlist); each caller (its token, or its address) may mint ``CLIENT_SECRETS_PER_MINUTE``
secrets (10) at once, then at that pace: 429 ``rate_limited`` with ``Retry-After`` beyond.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, Field

from rt_server import access
from rt_server.config import Settings
from rt_server.errors import BackendError
from rt_server.http_errors import ApiError, client_refused, documented
from rt_server.profile import without_secrets
from rt_server.runtime import RuntimeDep
from rt_server.shared import SharedUnavailable
from rt_server.translate import Translator

router = APIRouter(prefix="/api", tags=["client secrets"])


class ClientSecret(BaseModel):
    """What the backend answered: pass ``value`` as the bearer credential of the WebRTC call."""

    value: str = Field(examples=["ek_68af296e8e408191a1120ab6383263c2"])
    expires_at: int = Field(description="Unix time")
    session: dict[str, Any] = Field(description="the session the secret is bound to")


@router.post(
    "/session",
    response_model=ClientSecret,
    responses=documented(400, 401, 403, 429, 501, 502, 503, 504),
)
async def create_session(
    request: Request,
    runtime: RuntimeDep,
    profile: Annotated[str | None, Query(max_length=64, description="assistant profile")] = None,
) -> JSONResponse:
    """Mint a short-lived client secret for a direct Realtime connection."""
    settings = runtime.settings
    if (refused := client_refused(request, settings)) is not None:
        raise refused
    try:
        wait = await runtime.shared.take(
            _caller(request, settings), settings.client_secrets_per_minute
        )
    except SharedUnavailable:
        raise ApiError(503, "state_unavailable", "the shared state is unavailable") from None
    if wait:
        per_minute = settings.client_secrets_per_minute
        raise ApiError(
            429,
            "rate_limited",
            f"client secrets are limited to {per_minute:g} a minute per caller",
            {"Retry-After": str(math.ceil(wait))},
        )
    chosen = settings.find_profile(profile)
    if chosen is None:
        raise ApiError(400, "unknown_profile", f"unknown profile {profile!r}")
    session = Translator(chosen, runtime.services.tools.schemas()).session_update()["session"]
    try:
        secret = await runtime.services.backend.client_secret(
            session, seconds=settings.client_secret_seconds
        )
    except NotImplementedError as exc:
        raise ApiError(501, "not_supported", str(exc)) from None
    except BackendError as exc:
        retry = {"Retry-After": f"{exc.retry_after:g}"} if exc.retry_after else None
        raise ApiError(_backend_status(exc), exc.code, exc.message, retry) from None
    logger.info(
        "minted a client secret (profile {}, {} s)", chosen.name, settings.client_secret_seconds
    )
    answer = {key: secret.get(key) for key in ("value", "expires_at", "session")}
    if isinstance(answer["session"], dict):
        answer["session"] = without_secrets(answer["session"])
    return JSONResponse(answer, headers={"Cache-Control": "no-store"})


def _caller(request: Request, settings: Settings) -> str:
    """Who is minting: the client token presented (with CLIENT_TOKENS), else the address."""
    if settings.client_tokens:
        token = access.presented_token(request.headers, request.query_params)
        if token is not None:
            return "token:" + hashlib.sha256(token.encode()).hexdigest()
    return "peer:" + (request.client.host if request.client else "?")


def _backend_status(exc: BackendError) -> int:
    match exc.code:
        case "backend_rate_limited":
            return 429
        case "backend_timeout":
            return 504
        case "backend_unavailable" | "backend_unreachable":
            return 503
        case _:
            return 502
