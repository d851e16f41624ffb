"""The exceptions rt_server raises, and the error codes clients see.

    RtServerError
    ├── ConfigError          a setting is missing or invalid; start-up stops
    ├── ClientError          a client message is malformed; the session goes on
    └── BackendError         the Realtime backend failed (code, retryable, retry_after)
        └── BackendClosed    the backend connection ended mid-session

Foreign exceptions (aiohttp, websockets, the openai SDK, azure-identity, OS errors) become
``BackendError`` at the backend boundary, in :func:`rt_server.backends.openai.backend_errors`;
nothing else catches them.
"""

from __future__ import annotations

from typing import Literal, TypeAlias

ErrorCode: TypeAlias = Literal[
    # the client sent something wrong; the session goes on
    "invalid_json",
    "nesting_too_deep",
    "not_an_object",
    "missing_type",
    "unknown_type",
    "missing_field",
    "invalid_field",
    "invalid_audio",
    "invalid_image",
    "image_too_large",
    "locked_field",
    "text_rate_exceeded",
    # limits (a close follows unless stated otherwise)
    "message_too_large",
    "invalid_utf8",
    "protocol_error",
    "audio_rate_exceeded",
    "session_expired",
    "idle_timeout",
    "too_many_sessions",
    "unauthorized",
    "forbidden_origin",
    "unknown_profile",
    "unknown_discussion",
    "records_unavailable",
    "shutting_down",
    "resume_expired",
    "state_unavailable",
    # the backend
    "backend_unreachable",
    "backend_auth_failed",
    "backend_rate_limited",
    "backend_unavailable",
    "backend_error",
    "backend_closed",
    "backend_timeout",
    "backend_reconnected",
    "transcription_failed",
    # the server itself
    "internal_error",
]


class RtServerError(Exception):
    """Base of every rt_server exception."""


class ConfigError(RtServerError):
    """A setting is missing or invalid; the message names the variable."""


class ClientError(RtServerError):
    """A client message is malformed; carries the code sent back in an ``error`` message."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retry_after = retry_after  # seconds until the same message would be taken


class BackendError(RtServerError):
    """The Realtime backend failed; ``retryable`` says whether trying again later may work."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after
        self.status = status


class BackendClosed(BackendError):
    """The backend connection ended while the session was live."""

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__("backend_closed", message, retryable=True)
        self.close_code = close_code
