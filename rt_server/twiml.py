"""The HTTP side of the Twilio bridge: the TwiML that connects a call, and webhook signatures.

Pure functions; ``main.py`` calls them from the ``/twiml``, ``/public-url`` and ``/call``
routes. The public URL is ``PUBLIC_URL`` when set (``https://`` becomes ``wss://`` for the
stream), else the scheme and Host of the request itself, which is right when Twilio
reaches rt_server directly or through a proxy that keeps the Host header (ngrok does).
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit, urlunsplit

from twilio.request_validator import (  # type: ignore[import-untyped]
    RequestValidator,
    get_signature_algorithm,
)
from twilio.twiml.voice_response import Connect, VoiceResponse  # type: ignore[import-untyped]

CALL_PATH = "/call"
_WS_SCHEME = {"https": "wss", "http": "ws", "wss": "wss", "ws": "ws"}
_HTTP_SCHEME = {"wss": "https", "ws": "http", "https": "https", "http": "http"}
_SECURE = {"http": "https", "ws": "wss"}


def public_url(configured: str | None, request_url: str, *, websocket: bool = False) -> str:
    """``request_url`` as Twilio asked for it: on the public host, with the public scheme.

    ``configured`` is ``PUBLIC_URL`` (a path in it prefixes every route); without it the
    request's own URL is used as it is.
    """
    asked = urlsplit(request_url)
    if configured is None:
        return request_url
    base = urlsplit(configured)
    scheme = (_WS_SCHEME if websocket else _HTTP_SCHEME)[base.scheme]
    path = base.path.rstrip("/") + asked.path
    return urlunsplit((scheme, base.netloc, path, asked.query, ""))


def stream_url(configured: str | None, request_base: str) -> str:
    """The ``wss://.../call`` URL Twilio should stream a call to (``request_base``: the
    request's base URL, used when ``PUBLIC_URL`` is not set)."""
    base = urlsplit(configured or request_base)
    path = base.path.rstrip("/") + CALL_PATH
    return urlunsplit((_WS_SCHEME[base.scheme], base.netloc, path, "", ""))


def twiml(stream: str) -> str:
    """``<Response><Connect><Stream url="..."/></Connect></Response>`` for ``stream``."""
    response = VoiceResponse()
    connect = Connect()
    connect.stream(url=stream)
    response.append(connect)
    return str(response.to_xml())


def signature_valid(
    token: str,
    urls: list[str],
    params: Mapping[str, str],
    signature: str | None,
    settings_header: str | None = None,
) -> bool:
    """Whether ``X-Twilio-Signature`` signs one of ``urls`` with ``params`` (constant time).

    ``urls`` are the candidate public URLs of the request (see :func:`candidate_urls`);
    ``settings_header`` is ``X-Twilio-Webhooks-Signature-Settings`` (the algorithm).
    """
    if not signature:
        return False
    validator = RequestValidator(token)
    algorithm = get_signature_algorithm(settings_header)
    results = [validator.validate(url, dict(params), signature, algorithm) for url in urls]
    return any(results)


def candidate_urls(configured: str | None, request_url: str, *, websocket: bool) -> list[str]:
    """The URL Twilio signed: from ``PUBLIC_URL``, or the request's own (also as https/wss,
    for a proxy that terminates TLS without saying so)."""
    url = public_url(configured, request_url, websocket=websocket)
    if configured is not None:
        return [url]
    parts = urlsplit(url)
    urls = [url]
    if parts.scheme in _SECURE:
        urls.append(urlunsplit(parts._replace(scheme=_SECURE[parts.scheme])))
    return urls
