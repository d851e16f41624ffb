"""Resume: a client that lost its connection takes its conversation up again, on any instance.

``connected`` hands the client a ``resume`` token. While the session lives, its state is
kept in the shared store (:mod:`rt_server.shared`) under that token and saved again as
each turn completes: the conversation's items as :meth:`Translator.restore` builds them on
a backend reconnect (so whatever the restore carries, a resume carries), the profile and
an operator's changes to it, and the records' conversation id. A client that reconnects
with ``?resume=<token>`` within ``RESUME_WINDOW_SECONDS`` gets a session with the same id
(one conversation in the records, its events numbered after the earlier part's), the items
restored on its new backend session, and ``{"type":"control","action":"resumed"}``.

Pure: the state is built from a translator and applied to a new one here; the session and
the admission do the I/O.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

import orjson

from rt_server.translate import BackendEvent, CallConfig, Translator

_VERSION = 1
_OPERATOR_FIELDS = ("instructions", "voice")  # what an operator may change (``/logs``)


def new_token() -> str:
    """A resume token: unguessable, URL-safe."""
    return secrets.token_urlsafe(24)


@dataclass(frozen=True, slots=True)
class ResumeState:
    """What a resumed session starts from."""

    conversation: str  # the session id: the records' conversation
    dialect: str
    profile: str
    discussion: str | None
    operator: dict[str, Any]  # the profile fields an operator changed
    operator_tools: list[dict[str, Any]]
    items: list[BackendEvent]

    @property
    def interrupted(self) -> bool:
        """The last turn is the user's: its reply was lost with the connection."""
        if not self.items:
            return False
        item = self.items[-1].get("item") or {}
        return bool(item.get("type") == "message" and item.get("role") == "user")

    def adopt_into(self, translator: Translator) -> None:
        """Give ``translator`` (of a new session, not yet connected) this conversation."""
        tools = self.operator_tools or None
        translator.adopt(CallConfig(profile=self.operator, tools=tools))
        translator.carried = list(self.items)


def snapshot(
    translator: Translator, conversation: str, discussion: str | None, base: dict[str, Any]
) -> bytes:
    """The resume state of ``translator``'s conversation (``base``: the named profile's
    operator fields, so only an operator's changes are kept)."""
    profile = translator.profile
    operator = {
        name: getattr(profile, name)
        for name in _OPERATOR_FIELDS
        if getattr(profile, name) != base.get(name)
    }
    state = {
        "v": _VERSION,
        "conversation": conversation,
        "dialect": translator.name,
        "profile": profile.name,
        "discussion": discussion,
        "operator": operator,
        "operator_tools": translator.operator_tools,
        "items": translator.restore()[1:],  # all but the session.update: the profile's
    }
    return orjson.dumps(state)


def parse(data: bytes) -> ResumeState | None:
    """The state saved by :func:`snapshot`; None if it is of another version."""
    state = orjson.loads(data)
    if not isinstance(state, dict) or state.get("v") != _VERSION:
        return None
    return ResumeState(
        state["conversation"],
        state["dialect"],
        state["profile"],
        state.get("discussion"),
        dict(state.get("operator") or {}),
        list(state.get("operator_tools") or []),
        list(state.get("items") or []),
    )


def operator_fields(translator: Translator) -> dict[str, Any]:
    """The operator fields of ``translator``'s profile as it is now."""
    return {name: getattr(translator.profile, name) for name in _OPERATOR_FIELDS}
