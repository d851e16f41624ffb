"""Logging set-up: loguru to stderr, plain or JSON lines, with stdlib logs routed in.

No log line carries a secret or a client's payload: tracebacks print no local variables
(loguru's ``diagnose`` is off), uvicorn's access and WebSocket lines lose their query
strings (``?token=``), and what a library logs at DEBUG (the websockets handshake and frames, on
uvicorn's own WebSocket) loses the values of credential headers and the frames' payload.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from loguru import logger

_PLAIN = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[session]}</cyan> {message}"
)

#: Headers whose values are credentials (compared lower-case).
_SECRET_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "sec-websocket-protocol",  # bearer.<token>
        "api-key",
        "x-twilio-signature",
    }
)


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Send loguru and stdlib logging (uvicorn, openai, azure) to stderr at ``level``."""
    logger.remove()
    logger.configure(extra={"session": "-"})
    logger.add(
        sys.stderr, level=level, format=_PLAIN, serialize=json, backtrace=False, diagnose=False
    )
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own log config (``uvicorn rt_server.main:app``) gives these loggers
        # handlers of their own, which would print query strings: everything goes here.
        stdlib = logging.getLogger(name)
        stdlib.handlers.clear()
        stdlib.propagate = True
        stdlib.setLevel(level)


class _Intercept(logging.Handler):
    """Forward stdlib records to loguru, keeping their level, without secrets."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, "{}", scrubbed(record))


def scrubbed(record: logging.LogRecord) -> str:
    """A stdlib record's message with query strings and credential header values out."""
    args = record.args
    if not isinstance(args, tuple) or not args:
        return record.getMessage()
    if len(args) == 2 and str(args[0]).lower() in _SECRET_HEADERS:  # "< %s: %s" lines
        args = (args[0], "[redacted]")
    try:
        return str(record.msg) % tuple(_no_query(arg) for arg in args)
    except (TypeError, ValueError):
        return record.getMessage()


def _no_query(arg: Any) -> Any:
    """A request target without its query string (tokens travel there), and a WebSocket
    frame (websockets logs them at DEBUG) as its kind and size, without its payload."""
    if isinstance(arg, str):
        return arg.split("?", 1)[0] if arg.startswith("/") else arg
    opcode, data = getattr(arg, "opcode", None), getattr(arg, "data", None)
    if opcode is not None and isinstance(data, bytes | bytearray | memoryview):
        return f"{getattr(opcode, 'name', opcode)} [{len(data)} bytes]"
    return arg
