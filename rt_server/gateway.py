"""The Realtime gateway's routes: ``WebSocket /v1/realtime``, ``WebSocket /ws`` and
``POST /v1/realtime/client_secrets`` (docs/gateway.md).

A GA Realtime API client points its base URL here (``websocket_base_url=
"ws://host:port/v1"``) and keeps its code. It authenticates to rt_server: with a client
token under the ``CLIENT_TOKENS`` rules of every route (``Authorization: Bearer``, as the
SDKs send their ``api_key``; ``?token=``; a subprotocol), or with a client secret this
server minted. That credential stops here; the backend gets the server's own. The
session itself is :class:`~rt_server.dialects.gateway.GatewayTranslator`'s.

Client secrets are signed, not stored: HMAC-SHA256 under a key derived from
``CLIENT_TOKENS``, so every replica with the same tokens accepts them and changing the
tokens revokes them (with no tokens, anyone may connect anyway, and the key is the
process's own). A secret carries its expiry, the profile and the session its request
asked for, which the gateway session applies at the start.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Query, Request, WebSocket
from fastapi.responses import JSONResponse
from loguru import logger
from pydantic import BaseModel, ConfigDict, Field

from rt_server import access
from rt_server.admission import serve_session
from rt_server.config import Settings
from rt_server.dialects.gateway import GatewayTranslator
from rt_server.http_errors import ApiError, client_refused, deny, documented
from rt_server.runtime import Runtime, RuntimeDep, runtime_of

SECRET_PREFIX = "ek_rt_"  # noqa: S105 (a prefix, not a secret)
MAX_SECRET_CHARS = 4096  # a header's worth: a bigger session is sent as session.update
_SIGNATURE_BYTES = 18


@dataclass(frozen=True, slots=True)
class Minted:
    """What a valid client secret grants."""

    profile: str
    expires_at: int
    session: dict[str, Any] | None


class Secrets:
    """Mints and opens client secrets (:func:`router` makes one per application)."""

    def __init__(self, process_key: bytes | None = None) -> None:
        self._process_key = process_key or os.urandom(32)

    def key(self, settings: Settings) -> bytes:
        if not settings.client_tokens:
            return self._process_key
        material = "\0".join(sorted(settings.client_tokens)).encode()
        return hashlib.sha256(b"rt-server client secrets\0" + material).digest()

    def mint(self, settings: Settings, granted: Minted) -> str:
        claims = {"p": granted.profile, "e": granted.expires_at, "s": granted.session}
        body = _b64(zlib.compress(orjson.dumps(claims)))
        return f"{SECRET_PREFIX}{body}.{self._sign(settings, body)}"

    def open(self, settings: Settings, value: str, now: float) -> Minted | ApiError:
        """What ``value`` grants, or why it grants nothing."""
        body, _, signature = value.removeprefix(SECRET_PREFIX).partition(".")
        if not hmac.compare_digest(signature.encode(), self._sign(settings, body).encode()):
            return ApiError(401, "unauthorized", "the client secret is not valid")
        claims = orjson.loads(zlib.decompress(_unb64(body)))
        if claims["e"] <= now:
            return ApiError(401, "secret_expired", "the client secret has expired")
        return Minted(claims["p"], claims["e"], claims["s"])

    def _sign(self, settings: Settings, body: str) -> str:
        digest = hmac.new(self.key(settings), body.encode(), hashlib.sha256).digest()
        return _b64(digest[:_SIGNATURE_BYTES])


class ExpiresAfter(BaseModel):
    """When the secret expires, counted from its creation."""

    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(ge=10, le=7200)


class SecretRequest(BaseModel):
    """The Realtime API's ``client_secrets.create`` body; both parts are optional."""

    model_config = ConfigDict(extra="forbid")

    expires_after: ExpiresAfter | None = None
    session: dict[str, Any] | None = Field(
        None, description="session fields applied when the secret connects (locked ones refused)"
    )


class ClientSecretAnswer(BaseModel):
    """Pass ``value`` as the client's ``api_key``; it works until ``expires_at``."""

    value: str = Field(examples=["ek_rt_eJyrVkrOz8nP..."])
    expires_at: int = Field(description="Unix time")
    session: dict[str, Any] = Field(description="the session the secret connects to")


def router() -> APIRouter:
    """The gateway's routes, with a :class:`Secrets` of their own."""
    routes = APIRouter(tags=["realtime gateway"])
    secrets = Secrets()

    async def gateway(websocket: WebSocket) -> None:
        runtime = runtime_of(websocket)
        token = access.presented_token(websocket.headers, websocket.query_params)
        if token is None or not token.startswith(SECRET_PREFIX):
            await serve_session(websocket, GatewayTranslator)
            return
        granted = _still_allowed(runtime, secrets.open(runtime.settings, token, time.time()))
        if isinstance(granted, ApiError):
            await deny(websocket, granted)
            return
        await serve_session(
            websocket,
            GatewayTranslator,
            authenticated=True,
            profile_name=granted.profile,
            initial=granted.session,
        )

    routes.add_api_websocket_route("/v1/realtime", gateway, "realtime gateway")
    routes.add_api_websocket_route("/ws", gateway, "realtime gateway (/ws)")

    @routes.post(
        "/v1/realtime/client_secrets",
        response_model=ClientSecretAnswer,
        responses=documented(400, 401, 403, 422),
    )
    async def create_client_secret(
        request: Request,
        runtime: RuntimeDep,
        body: SecretRequest | None = None,
        profile: Annotated[
            str | None, Query(max_length=64, description="assistant profile")
        ] = None,
    ) -> JSONResponse:
        """Mint a short-lived secret for a gateway session (``client.realtime.client_secrets
        .create()``); client token required as on every route."""
        settings = runtime.settings
        if (refused := client_refused(request, settings)) is not None:
            raise refused
        chosen = settings.find_profile(profile)
        if chosen is None:
            raise ApiError(400, "unknown_profile", f"unknown profile {profile!r}")
        asked = body or SecretRequest()
        translator = GatewayTranslator(chosen, runtime.services.tools.schemas())
        session = dict(asked.session) if asked.session else None
        if session is not None:
            _check(translator, session)
        seconds = asked.expires_after.seconds if asked.expires_after else None
        expires_at = int(time.time()) + (seconds or settings.client_secret_seconds)
        value = secrets.mint(settings, Minted(chosen.name, expires_at, session))
        if len(value) > MAX_SECRET_CHARS:
            raise ApiError(
                400, "session_too_large", "send this session as a session.update once connected"
            )
        logger.info("minted a gateway client secret (profile {})", chosen.name)
        answer = {
            "value": value,
            "expires_at": expires_at,
            "session": _effective(translator, session, settings),
        }
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    return routes


def _still_allowed(runtime: Runtime, granted: Minted | ApiError) -> Minted | ApiError:
    """A secret's session against the policy in force now (it may have changed since)."""
    if isinstance(granted, ApiError) or granted.session is None:
        return granted
    profile = runtime.settings.find_profile(granted.profile)
    if profile is None:
        return granted  # admission refuses it, naming the profiles there are
    try:
        _check(GatewayTranslator(profile, runtime.services.tools.schemas()), granted.session)
    except ApiError as refused:
        return refused
    return granted


def _check(translator: GatewayTranslator, session: Mapping[str, Any]) -> None:
    """Refuse a requested session the gateway would refuse as a ``session.update``."""
    if session.get("type", "realtime") != "realtime":
        raise ApiError(400, "invalid_field", "session.type: the gateway serves realtime sessions")
    if (refused := translator.check_session(session)) is not None:
        raise ApiError(400, refused.code, f"{refused.message} ({refused.param})")


def _effective(
    translator: GatewayTranslator, session: dict[str, Any] | None, settings: Settings
) -> dict[str, Any]:
    """The session a secret connects to, as the client will see it."""
    configured = translator.visible_session(translator.session_update()["session"])
    model = settings.azure_deployment if settings.backend == "azure" else settings.openai_model
    return {**configured, **(session or {}), "type": "realtime", "model": model}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
