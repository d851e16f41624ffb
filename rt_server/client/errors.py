"""What the client raises.

    RtClientError
    ├── ConnectFailed   the websocket could not be opened, or closed before ``connected``
    ├── ServerError     the server sent an ``error`` message where an answer was expected
    └── Closed          the connection ended abnormally while in use (close code, reason)

A timeout while waiting for the server is the builtin :class:`TimeoutError`.
"""

from __future__ import annotations

from rt_server.dialects.realtime import ErrorMessage


class RtClientError(Exception):
    """Base of every client exception; ``str()`` is a sentence for a person."""


class ConnectFailed(RtClientError):
    """The websocket could not be opened, or the session ended before it was ready."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status  # the HTTP status of a refused handshake
        self.code = code  # the error code of an ``error`` sent before ``connected``


class ServerError(RtClientError):
    """The server reported an error; ``code`` is the protocol's error code."""

    def __init__(self, message: ErrorMessage) -> None:
        super().__init__(f"{message['code']}: {message['message']}")
        self.code = message["code"]
        self.message = message["message"]
        self.retry_after = message.get("retry_after")


class Closed(RtClientError):
    """The connection ended with an abnormal close code."""

    def __init__(self, code: int | None, reason: str) -> None:
        super().__init__(f"connection closed ({code}): {reason or 'no reason given'}")
        self.code = code
        self.reason = reason
