"""The web client: a static page at ``/`` and its ES modules under ``/static/``.

A client that asks ``/`` for JSON (``Accept: application/json``, as the Twilio demo's
Python port answered) gets a status object instead of the page.

No build step: the files in ``static/`` are served as they are. Every response carries a
strict Content-Security-Policy (scripts and styles from this origin only, no inline code,
websockets only to the host that served the page) and the usual hardening headers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.datastructures import MutableHeaders
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC: Final = Path(__file__).parent / "static"

# A Host header is client input: only a plain host[:port] may go into a header we send.
_HOST: Final = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?")


def mount_web_client(app: FastAPI) -> None:
    """Serve the page at ``/`` and its assets under ``/static/``."""

    @app.get("/", include_in_schema=False, response_model=None)
    async def index(request: Request) -> FileResponse | JSONResponse:
        if wants_json(request.headers.get("accept", "")):
            return JSONResponse({"status": "ok", "service": "rt_server", "version": app.version})
        headers = security_headers(request.headers.get("host"))
        return FileResponse(STATIC / "index.html", media_type="text/html", headers=headers)

    app.mount("/static", _Hardened(StaticFiles(directory=STATIC)), name="web-client")


def wants_json(accept: str) -> bool:
    """A client that asks for JSON and not for a page (a status check, not a browser)."""
    return "application/json" in accept and "text/html" not in accept


def security_headers(host: str | None) -> dict[str, str]:
    """The headers of every web client response; ``host`` is the request's Host header."""
    connect = "'self'"
    if host is not None and _HOST.fullmatch(host):
        connect += f" ws://{host} wss://{host}"  # older browsers do not map 'self' to ws:
    policy = "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",  # also governs the audio worklet modules
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {connect}",
            "media-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return {
        "Content-Security-Policy": policy,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "Permissions-Policy": "microphone=(self), camera=(), geolocation=()",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-cache",
    }


class _Hardened:
    """Adds :func:`security_headers` to every response of the wrapped ASGI app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), None)
        extra = security_headers(host)

        async def send_hardened(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in extra.items():
                    headers[name] = value
            await send(message)

        await self.app(scope, receive, send_hardened)
