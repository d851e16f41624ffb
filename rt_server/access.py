"""Who may do what: client tokens, the admin token and the Origin allowlist (pure).

:func:`client_refusal` and :func:`admin_refusal` are the one access check, used alike by
the WebSocket routes (before the handshake) and the REST endpoints. A token is accepted
from ``Authorization: Bearer <token>``, a ``?token=`` query parameter (browsers cannot set
headers on WebSockets) or a ``Sec-WebSocket-Protocol`` entry ``bearer.<token>`` (or
``openai-insecure-api-key.<token>``, as the Realtime API's browser clients send it).
Tokens are compared in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from typing import NamedTuple

TOKEN_PROTOCOL_PREFIX = "bearer."  # noqa: S105 (a prefix, not a secret)
#: How the Realtime API's browser clients pass a key as a subprotocol (the gateway's).
OPENAI_PROTOCOL_PREFIX = "openai-insecure-api-key."
_CREDENTIAL_PREFIXES = (TOKEN_PROTOCOL_PREFIX, OPENAI_PROTOCOL_PREFIX)


class Refusal(NamedTuple):
    """Why a request is refused: an HTTP status, an error code and a message."""

    status: int
    code: str
    message: str


def client_refusal(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    tokens: tuple[str, ...],
    origins: tuple[str, ...],
) -> Refusal | None:
    """Whether a client may open a session or mint a secret (no ``tokens``: anyone)."""
    if not origin_allowed(headers.get("origin"), origins):
        return Refusal(403, "forbidden_origin", "this Origin may not connect")
    if tokens and not token_allowed(presented_token(headers, query), tokens):
        return Refusal(401, "unauthorized", "a valid client token is required")
    return None


def admin_refusal(
    headers: Mapping[str, str],
    query: Mapping[str, str],
    *,
    token: str | None,
    origins: tuple[str, ...],
    local: bool = False,
) -> Refusal | None:
    """Whether a caller may use the admin endpoints (no ``token`` configured: nobody;
    ``local``: ``ADMIN_LOCAL`` is on and the caller is on this machine, no token needed)."""
    if not origin_allowed(headers.get("origin"), origins):
        return Refusal(403, "forbidden_origin", "this Origin may not connect")
    if local:
        return None
    if token is None:
        return Refusal(403, "admin_disabled", "the admin endpoints are off: set ADMIN_TOKEN")
    if not token_allowed(presented_token(headers, query), (token,)):
        return Refusal(
            401, "unauthorized", "a valid admin token is required: Authorization: Bearer <token>"
        )
    return None


#: Headers a proxy or tunnel adds: a request carrying one came from elsewhere, even though
#: its TCP peer (the proxy, ngrok's agent) is on this machine.
FORWARDED_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` (an address, or ``localhost``) is this machine's loopback."""
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host == "localhost"


def local_caller(peer: str | None, headers: Mapping[str, str]) -> bool:
    """A caller on this machine: a loopback peer, and no proxy header saying otherwise."""
    return is_loopback(peer) and not any(name in headers for name in FORWARDED_HEADERS)


def presented_token(headers: Mapping[str, str], query: Mapping[str, str]) -> str | None:
    """The token a client presented, wherever it put it."""
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    if query.get("token"):
        return query["token"]
    for entry in offered_protocols(headers):
        for prefix in _CREDENTIAL_PREFIXES:
            if entry.startswith(prefix):
                return entry[len(prefix) :]
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
    """The subprotocol to accept: a browser that offered any requires one back. Never a
    credential entry (``bearer.<token>``, ``openai-insecure-api-key.<token>``: a credential
    in the response); offered alone, none is
    chosen (a browser then fails the handshake: it must offer a plain one beside it)."""
    offered = offered_protocols(headers)
    plain = [entry for entry in offered if not entry.startswith(_CREDENTIAL_PREFIXES)]
    return plain[0] if plain else None
