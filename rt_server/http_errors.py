"""The one HTTP error envelope: ``{"error": {"code": ..., "message": ...}}``.

Every HTTP error rt_server answers has this body: its own refusals (:class:`ApiError`),
FastAPI's request validation (422), Starlette's 404 and 405, and WebSocket handshakes
refused before they are accepted (:func:`deny`), among them the access checks'
(:func:`client_refused`, :func:`admin_refused`). :func:`install` registers the handlers
once, in ``create_app``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request, WebSocket
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from loguru import logger
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException
from starlette.requests import HTTPConnection

from rt_server import access
from rt_server.config import Settings

# Codes for the statuses Starlette and FastAPI raise themselves.
_STATUS_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    422: "invalid_request",
}


class ErrorDetail(BaseModel):
    code: str = Field(examples=["not_found"])
    message: str


class ErrorBody(BaseModel):
    """Every HTTP error's body."""

    error: ErrorDetail


class ApiError(Exception):
    """Answer with ``status`` and the error envelope."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(exc: ApiError) -> JSONResponse:
    body = {"error": {"code": exc.code, "message": exc.message}}
    return JSONResponse(body, status_code=exc.status, headers=exc.headers)


def documented(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for these error statuses."""
    return {status: {"model": ErrorBody} for status in statuses}


async def deny(websocket: WebSocket, error: ApiError) -> None:
    """Refuse a WebSocket handshake with an HTTP status and the envelope; no backend is
    touched."""
    logger.info("refused a {} connection: {}", websocket.url.path, error.code)
    await websocket.send_denial_response(error_response(error))


def install(app: FastAPI) -> None:
    """Answer every HTTP error of ``app`` with the envelope."""

    async def api_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, ApiError)
        return error_response(exc)

    async def invalid(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        )
        return error_response(ApiError(422, "invalid_request", problems))

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _STATUS_CODES.get(exc.status_code, f"http_{exc.status_code}")
        error = ApiError(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
        return error_response(error)

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, invalid)
    app.add_exception_handler(HTTPException, http_error)


def client_refused(
    connection: HTTPConnection, settings: Settings, *, authenticated: bool = False
) -> ApiError | None:
    """Why a client may not open a session or mint a secret (``authenticated``: the route
    verified the caller itself), or None."""
    refusal = access.client_refusal(
        connection.headers,
        connection.query_params,
        tokens=() if authenticated else settings.client_tokens,
        origins=settings.allowed_origins,
    )
    return ApiError(*refusal) if refusal is not None else None


def admin_refused(connection: HTTPConnection, settings: Settings) -> ApiError | None:
    """Why a caller may not use the admin endpoints, or None (``ADMIN_LOCAL``: a caller on
    this machine needs no token)."""
    peer = connection.client.host if connection.client is not None else None
    refusal = access.admin_refusal(
        connection.headers,
        connection.query_params,
        token=settings.admin_token,
        origins=settings.allowed_origins,
        local=settings.admin_local and access.local_caller(peer, connection.headers),
    )
    if refusal is None:
        return None
    challenge = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
    return ApiError(*refusal, challenge)
