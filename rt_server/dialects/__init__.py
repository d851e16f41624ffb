"""Client dialects: one module each, a :class:`~rt_server.translate.Translator` subclass
with its messages, its :class:`~rt_server.protocol.ClientProtocol` and its renderers.

:data:`DIALECTS` is the one list of them: the WebSocket routes, ``/protocol.json``, the
TypeScript declarations and the phone routes all read it (``create_app(dialects=...)``
serves others beside or instead).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rt_server.dialects.conversation import ConversationTranslator
from rt_server.dialects.gateway import GatewayTranslator
from rt_server.dialects.logs import LogsTranslator
from rt_server.dialects.realtime import RealtimeTranslator
from rt_server.dialects.twilio import TwilioTranslator
from rt_server.translate import Translator

Dialect = type[Translator]

DIALECTS: tuple[Dialect, ...] = (
    RealtimeTranslator,
    ConversationTranslator,
    TwilioTranslator,
    GatewayTranslator,
)


def schemas(dialects: Iterable[Dialect] = DIALECTS) -> dict[str, dict[str, Any]]:
    """Every dialect's client and server JSON Schemas, by name, and the ``/logs`` call
    console's (:mod:`rt_server.dialects.logs`: it follows a session rather than having one)."""
    found = {dialect.name: dialect.schema() for dialect in dialects}
    found[LogsTranslator.name] = LogsTranslator.schema()
    return found


def find(name: str, dialects: Iterable[Dialect] = DIALECTS) -> Dialect:
    """The dialect called ``name``."""
    for dialect in dialects:
        if dialect.name == name:
            return dialect
    raise LookupError(f"no dialect {name!r}")
