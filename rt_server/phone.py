"""Phone calls: the TwiML webhook, the public URL and the ``/call`` Media Streams socket.

The call itself is the Twilio dialect (:mod:`rt_server.dialects.twilio`) served like any
other session; this module only adds Twilio's HTTP side and signature checks.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from loguru import logger

from rt_server import twiml as twilio_http
from rt_server.admission import serve_session
from rt_server.config import Settings
from rt_server.dialects import find
from rt_server.http_errors import ApiError, deny, documented
from rt_server.runtime import RuntimeDep, runtime_of


def mount_phone(app: FastAPI) -> None:
    """Add ``/twiml`` (GET and POST), ``/public-url`` and ``/call`` to ``app``."""

    async def twiml(request: Request, runtime: RuntimeDep) -> Response:
        """TwiML connecting a phone call to ``/call`` (docs/phone.md)."""
        settings = runtime.settings
        signed = settings.twilio_auth_token is not None
        params = await _form(request, signed=signed)
        if signed and not _twilio_signed(request, settings, params):
            logger.info("refused a /twiml request: invalid Twilio signature")
            raise ApiError(403, "unauthorized", "invalid Twilio signature")
        url = twilio_http.stream_url(settings.public_url, str(request.base_url))
        return Response(twilio_http.twiml(url), media_type="text/xml")

    @app.get("/public-url")
    async def public_url(request: Request, runtime: RuntimeDep) -> dict[str, str]:
        """Where Twilio reaches this server: the TwiML webhook and the stream URL."""
        settings = runtime.settings
        base = settings.public_url or str(request.base_url).rstrip("/")
        return {
            "public_url": base,
            "twiml_url": f"{base}/twiml",
            "stream_url": twilio_http.stream_url(settings.public_url, str(request.base_url)),
            "source": "PUBLIC_URL" if settings.public_url else "request Host",
        }

    @app.websocket("/call")
    async def call(websocket: WebSocket) -> None:
        """Twilio Media Streams: a phone call (docs/phone.md)."""
        runtime = runtime_of(websocket)
        settings = runtime.settings
        token = settings.twilio_auth_token
        if token and not twilio_http.signature_valid(
            token,
            twilio_http.candidate_urls(settings.public_url, str(websocket.url), websocket=True),
            {},
            websocket.headers.get("x-twilio-signature"),
            websocket.headers.get("x-twilio-webhooks-signature-settings"),
        ):
            await deny(websocket, ApiError(403, "unauthorized", "invalid Twilio signature"))
            return
        # A signed Twilio request needs no client token (Twilio cannot send one).
        dialect = find("twilio", runtime.dialects)
        await serve_session(websocket, dialect, authenticated=bool(token))

    for method in ("GET", "POST"):
        app.add_api_route(
            "/twiml",
            twiml,
            methods=[method],
            operation_id=f"twiml_{method.lower()}",
            responses=documented(400, 403, 413),
        )


_MAX_FORM_BYTES = 64 * 1024  # a Twilio webhook's form is a few hundred bytes


async def _form(request: Request, *, signed: bool) -> dict[str, str]:
    """A POST's form fields (UTF-8, as Twilio sends them); anything else is refused:
    403 when signatures are required (it cannot be signed), 400 otherwise."""
    if request.method != "POST":
        return {}
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            raise ApiError(413, "body_too_large", f"the form is over {_MAX_FORM_BYTES} bytes")
    try:
        return dict(parse_qsl(body.decode(), keep_blank_values=True))
    except UnicodeDecodeError:
        if signed:
            raise ApiError(403, "unauthorized", "invalid Twilio signature") from None
        raise ApiError(400, "invalid_form", "the form body is not UTF-8") from None


def _twilio_signed(request: Request, settings: Settings, params: dict[str, str]) -> bool:
    """Whether a webhook request carries a valid ``X-Twilio-Signature``."""
    assert settings.twilio_auth_token is not None
    return twilio_http.signature_valid(
        settings.twilio_auth_token,
        twilio_http.candidate_urls(settings.public_url, str(request.url), websocket=False),
        params,
        request.headers.get("x-twilio-signature"),
        request.headers.get("x-twilio-webhooks-signature-settings"),
    )
