"""Logging set-up: loguru to stderr, plain or JSON lines, with stdlib logs routed in.

No log line carries a secret or a client's payload: tracebacks print no local variables
(loguru's ``diagnose`` is off), uvicorn's access and WebSocket lines lose their query
strings (``?token=``), and what a library logs at DEBUG (the websockets handshake and frames, on
uvicorn's own WebSocket) loses the values of credential headers and the frames' payload.

``LOG_EVENTS`` sets a level per category of log line, as the modular relay's logging
configuration did (:data:`CATEGORIES`): a line carries its category in ``extra`` (bound by
the code that logs it), or is placed by its level and module (:func:`category_of`).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, Literal, TypeAlias, get_args

from loguru import logger

from rt_server.errors import ConfigError

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

Category: TypeAlias = Literal["connection", "client", "backend", "audio", "errors"]
#: What each category logs (the README's table says the same).
CATEGORIES: dict[Category, str] = {
    "connection": "sessions starting and ending, handshakes refused, backend connects and "
    "reconnects, monitors and consoles",
    "client": "each text frame a client sends and each message it is sent (type and size)",
    "backend": "each Realtime event sent to and received from the backend (type)",
    "audio": "each audio frame either way (size, never the audio)",
    "errors": "every warning and error, whatever it is about",
}
LEVELS = ("TRACE", "DEBUG", "INFO", "WARNING", "ERROR", "OFF")
_MODULES: tuple[tuple[str, Category], ...] = (
    ("rt_server.backends", "backend"),
    ("rt_server.wsio", "backend"),
    ("rt_server.translate", "backend"),
    ("rt_server.dialects", "client"),
    ("rt_server.protocol", "client"),
    ("rt_server.audio_recording", "audio"),
)


def parse_log_events(text: str) -> dict[Category, str]:
    """``connection:info,client:debug,audio:off`` as a level per category."""
    levels: dict[str, str] = {}
    for entry in (part.strip() for part in text.split(",")):
        if not entry:
            continue
        name, _, level = entry.partition(":")
        name, level = name.strip().lower(), level.strip().upper()
        if name not in CATEGORIES or level not in LEVELS:
            raise ConfigError(
                f"LOG_EVENTS entries are category:level with a category among "
                f"{', '.join(CATEGORIES)} and a level among {', '.join(LEVELS).lower()}; "
                f"got {entry!r}"
            )
        levels[name] = level
    return levels  # type: ignore[return-value]  # every key is one of CATEGORIES


def category_of(record: Mapping[str, Any]) -> Category:
    """The category of a log record: its own, else errors for warnings and worse, else by
    the module that logged it (connection by default)."""
    bound = record["extra"].get("category")
    if bound in CATEGORIES:
        return bound  # type: ignore[no-any-return]
    if record["level"].no >= logger.level("WARNING").no:
        return "errors"
    module = record["name"] or ""
    for prefix, category in _MODULES:
        if module.startswith(prefix):
            return category
    return "connection"


def configure_logging(
    level: str = "INFO", *, json: bool = False, events: Mapping[Category, str] | None = None
) -> None:
    """Send loguru and stdlib logging (uvicorn, openai, azure) to stderr at ``level``;
    ``events`` (``LOG_EVENTS``) sets the level of some categories instead."""
    logger.remove()
    logger.configure(extra={"session": "-"})
    if events:
        thresholds = {name: _number(events.get(name, level)) for name in get_args(Category)}
        lowest = min(thresholds.values())

        def by_category(record: Any) -> bool:
            return bool(record["level"].no >= thresholds[category_of(record)])

        logger.add(
            sys.stderr,
            level=min(lowest, _number("ERROR")),
            format=_PLAIN,
            serialize=json,
            backtrace=False,
            diagnose=False,
            filter=by_category,
        )
    else:
        logger.add(
            sys.stderr,
            level=level,
            format=_PLAIN,
            serialize=json,
            backtrace=False,
            diagnose=False,
        )
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        # uvicorn's own log config (``uvicorn rt_server.main:app``) gives these loggers
        # handlers of their own, which would print query strings: everything goes here.
        stdlib = logging.getLogger(name)
        stdlib.handlers.clear()
        stdlib.propagate = True
        stdlib.setLevel(level)


def message_categories(level: str, events: Mapping[Category, str] | None) -> frozenset[Category]:
    """The categories whose per-message lines (DEBUG) are wanted: sessions log each message
    only for these, and test nothing else per message."""
    debug = _number("DEBUG")
    wanted = {
        name
        for name in ("client", "backend", "audio")
        if _number((events or {}).get(name, level)) <= debug
    }
    return frozenset(wanted)  # type: ignore[arg-type]


def _number(level: str) -> int:
    return 10**6 if level.upper() == "OFF" else int(logger.level(level.upper()).no)


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
