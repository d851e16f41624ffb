"""Phone calls: the TwiML webhook, the public URL and the ``/call`` Media Streams socket.

The call itself is the Twilio dialect (:mod:`rt_server.dialects.twilio`) served like any
other session; this module only adds Twilio's HTTP side and signature checks.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

import httpx
from fastapi import FastAPI, Request, WebSocket
from fastapi.responses import Response
from loguru import logger
from pydantic import BaseModel, Field

from rt_server import twiml as twilio_http
from rt_server.admission import serve_session
from rt_server.config import Settings
from rt_server.dialects import find
from rt_server.http_errors import ApiError, admin_refused, deny, documented
from rt_server.runtime import RuntimeDep, runtime_of

#: ``/twiml`` answers them all: Twilio is configured with GET or POST, and the demo's
#: server (Express ``app.all``) answered any.
TWIML_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def mount_phone(app: FastAPI) -> None:
    """Add ``/twiml`` (every method, as the Twilio demo's ``app.all``), ``/public-url``,
    ``POST /make-call`` and ``/call`` to ``app``."""

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
        """Where Twilio reaches this server: the TwiML webhook and the stream URL
        (``publicUrl`` is the Twilio demo frontend's key)."""
        settings = runtime.settings
        base = settings.public_url or str(request.base_url).rstrip("/")
        return {
            "publicUrl": base,
            "public_url": base,
            "twiml_url": f"{base}/twiml",
            "stream_url": twilio_http.stream_url(settings.public_url, str(request.base_url)),
            "source": "PUBLIC_URL" if settings.public_url else "request Host",
        }

    @app.post("/make-call", status_code=200, responses=documented(400, 401, 403, 502, 503))
    async def make_call(request: Request, runtime: RuntimeDep, body: OutboundCall) -> Placed:
        """An outbound call through Twilio's REST API, streamed to ``/call`` like any other
        (the Twilio demo's route); admin access, since it spends the Twilio account."""
        settings = runtime.settings
        if (refused := admin_refused(request, settings)) is not None:
            raise refused
        sid, token, caller = (
            settings.twilio_account_sid,
            settings.twilio_auth_token,
            settings.twilio_phone_number,
        )
        if not (sid and token and caller):
            raise ApiError(
                503,
                "calls_disabled",
                "outbound calls need TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_PHONE_NUMBER",
            )
        base = settings.public_url or str(request.base_url).rstrip("/")
        call_sid = await _place_call(settings.twilio_api_url, sid, token, caller, body, base)
        return Placed(success=True, callSid=call_sid)

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
        await serve_session(
            websocket,
            dialect,
            authenticated=bool(token),
            frame_ms=settings.phone_frame_ms,
            dtmf=settings.dtmf,
        )

    for method in TWIML_METHODS:
        app.add_api_route(
            "/twiml",
            twiml,
            methods=[method],
            operation_id=f"twiml_{method.lower()}",
            responses=documented(400, 403, 413),
        )


class OutboundCall(BaseModel):
    phoneNumber: str = Field(min_length=3, max_length=32, examples=["+15550100"])


class Placed(BaseModel):
    success: bool
    callSid: str


async def _place_call(
    api: str, sid: str, token: str, caller: str, body: OutboundCall, base: str
) -> str:
    """Ask Twilio to call ``body.phoneNumber``; its TwiML is ours (``<base>/twiml``)."""
    form = {"To": body.phoneNumber, "From": caller, "Url": f"{base}/twiml"}
    try:
        async with httpx.AsyncClient(timeout=10.0) as http:
            answer = await http.post(
                f"{api}/2010-04-01/Accounts/{sid}/Calls.json", data=form, auth=(sid, token)
            )
    except httpx.HTTPError as exc:
        logger.warning("make-call: Twilio unreachable ({})", type(exc).__name__)
        raise ApiError(502, "twilio_unreachable", "Twilio could not be reached") from None
    if answer.status_code >= 400:
        message = _twilio_message(answer)
        logger.info("make-call: Twilio refused ({}): {}", answer.status_code, message)
        raise ApiError(502, "twilio_refused", f"Twilio refused the call: {message}")
    logger.info("make-call: call placed")
    return str(answer.json().get("sid", ""))


def _twilio_message(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("message") or answer.reason_phrase)[:200]
    except ValueError:
        return answer.reason_phrase


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
