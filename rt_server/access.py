"""Who may open a session: client tokens and the Origin allowlist (pure functions).

A token is accepted from ``Authorization: Bearer <token>``, a ``?token=`` query parameter
(browsers cannot set headers on WebSockets) or a ``Sec-WebSocket-Protocol`` entry
``bearer.<token>``. Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping

TOKEN_PROTOCOL_PREFIX = "bearer."  # noqa: S105 (a prefix, not a secret)


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token a client presented, wherever it put it."""
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    if query.get("token"):
        return query["token"]
    for entry in offered_protocols(headers):
        if entry.startswith(TOKEN_PROTOCOL_PREFIX):
            return entry[len(TOKEN_PROTOCOL_PREFIX) :]
    return None


def token_allowed(presented: str | None, tokens: Iterable[str]) -> bool:
    """Whether ``presented`` is one of ``tokens``, in time independent of where they differ."""
    if presented is None:
        return False
    given = presented.encode()
    # Compare against every token, so timing does not reveal which one matched.
    matches = [hmac.compare_digest(given, token.encode()) for token in tokens]
    return any(matches)


def origin_allowed(origin: str | None, allowed: tuple[str, ...]) -> bool:
    """No allowlist, or no Origin (not a browser), or a listed Origin."""
    if not allowed or origin is None or "*" in allowed:
        return True
    return origin.rstrip("/") in allowed


def offered_protocols(headers: Mapping[str, str]) -> list[str]:
    raw = headers.get("sec-websocket-protocol", "")
    return [entry.strip() for entry in raw.split(",") if entry.strip()]


def chosen_protocol(headers: Mapping[str, str]) -> str | None:
    """The subprotocol to accept: a browser that offered any requires one back."""
    offered = offered_protocols(headers)
    plain = [entry for entry in offered if not entry.startswith(TOKEN_PROTOCOL_PREFIX)]
    candidates = plain or offered
    return candidates[0] if candidates else None
