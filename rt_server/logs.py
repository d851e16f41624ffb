"""Logging set-up: loguru to stderr, plain or JSON lines, with stdlib logs routed in."""

from __future__ import annotations

import logging
import sys

from loguru import logger

_PLAIN = (
    "<green>{time:YYYY-MM-DD HH:mm:ss.SSS}</green> <level>{level: <7}</level> "
    "<cyan>{extra[session]}</cyan> {message}"
)


def configure_logging(level: str = "INFO", *, json: bool = False) -> None:
    """Send loguru and stdlib logging (uvicorn, openai, azure) to stderr at ``level``."""
    logger.remove()
    logger.configure(extra={"session": "-"})
    logger.add(sys.stderr, level=level, format=_PLAIN, serialize=json, backtrace=False)
    logging.basicConfig(handlers=[_Intercept()], level=logging.WARNING, force=True)
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).setLevel(level)


class _Intercept(logging.Handler):
    """Forward stdlib records to loguru, keeping their level."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:
            level = record.levelno
        logger.opt(depth=6, exception=record.exc_info).log(level, record.getMessage())
