"""The OpenAI Realtime backend: GA ``/realtime`` over a WebSocket, the SDK for REST.

``connect()`` opens the session's WebSocket on the socket ``BACKEND_SOCKET`` names (see
:mod:`.sockets`): aiohttp by default, or the SDK's ``client.realtime.connect()``. Both
reach the same URL with the same credential; the hot path stays raw either way (events
decoded once with orjson, no pydantic model per event). Client secrets go through the
SDK's REST client. Foreign exceptions (aiohttp, websockets, OS and credential errors)
become :class:`BackendError` here, in :func:`backend_errors`, and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlencode

import aiohttp
import orjson
from openai import APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI, omit
from picows import WSError, WSHandshakeError, ws_connect
from websockets.exceptions import InvalidHandshake, InvalidStatus

from rt_server.backends.base import Backend, BackendConnection, BackendEvent
from rt_server.backends.sockets import (
    CLOSE_TIMEOUT,
    HEARTBEAT,
    MAX_MESSAGE_BYTES,
    AiohttpConnection,
    PicowsConnection,
    SdkConnection,
    SocketKind,
)
from rt_server.errors import BackendError
from rt_server.wsio import PICOWS_LOG

# PCM does not compress: permessage-deflate would only cost CPU on both ends. The SDK's
# TypedDict does not list close_timeout, but it passes every option on to websockets.
_SDK_WS_OPTIONS: Any = {
    "compression": None,
    "max_size": MAX_MESSAGE_BYTES,
    "close_timeout": CLOSE_TIMEOUT,
}
_USER_AGENT = "rt-server"
_SCOPE_HEADERS = ("OpenAI-Organization", "OpenAI-Project")


class OpenAIBackend(Backend):
    """OpenAI's Realtime API, or anything that speaks it (a gateway, the emulator).

    Subclasses change where and how to connect through the hooks ``_model``,
    ``_extra_query``, ``_extra_headers``, ``_bearer`` and the ``receive``/``emit``
    dialect pair.
    """

    name = "openai"

    def __init__(
        self,
        client: AsyncOpenAI,
        model: str | None,
        *,
        timeout: float = 15.0,
        socket: SocketKind = "picows",
    ) -> None:
        self._client = client
        self._model = model
        self._timeout = timeout
        self._socket = socket
        self._http: aiohttp.ClientSession | None = None

    async def connect(self) -> BackendConnection:
        with backend_errors():
            async with asyncio.timeout(self._timeout):
                if self._socket == "sdk":
                    return await self._connect_sdk()
                if self._socket == "aiohttp":
                    return await self._connect_aiohttp()
                return await self._connect_picows()

    async def _connect_picows(self) -> BackendConnection:
        def connection() -> PicowsConnection:
            return PicowsConnection(receive=self.receive, emit=self.emit, keep=self.passthrough)

        _, listener = await ws_connect(
            connection,
            self.websocket_url(),
            extra_headers=await self.handshake_headers(),
            websocket_handshake_timeout=None,  # connect() has its own timeout
            logger_name=PICOWS_LOG,
            enable_auto_ping=True,
            auto_ping_idle_timeout=HEARTBEAT,
            auto_ping_reply_timeout=HEARTBEAT / 2,
            max_frame_size=MAX_MESSAGE_BYTES,
            use_aiofastnet=False,  # the event loop's own transports (uvloop's)
        )
        assert isinstance(listener, PicowsConnection)
        return listener

    async def _connect_aiohttp(self) -> BackendConnection:
        if self._http is None:
            # limit=0: every session holds its connection for as long as it lasts.
            connector = aiohttp.TCPConnector(limit=0)
            self._http = aiohttp.ClientSession(connector=connector)
        ws = await self._http.ws_connect(
            self.websocket_url(),
            headers=await self.handshake_headers(),
            compress=0,
            max_msg_size=MAX_MESSAGE_BYTES,
            decode_text=False,
            heartbeat=HEARTBEAT,
            timeout=aiohttp.ClientWSTimeout(ws_close=CLOSE_TIMEOUT),
        )
        return AiohttpConnection(ws, receive=self.receive, emit=self.emit, keep=self.passthrough)

    async def _connect_sdk(self) -> BackendConnection:
        manager = self._client.realtime.connect(
            model=self._model if self._model is not None else omit,
            extra_query=self._extra_query(),
            extra_headers=self._extra_headers(),
            websocket_connection_options=_SDK_WS_OPTIONS,
        )
        connection = await manager.enter()
        return SdkConnection(
            connection, receive=self.receive, emit=self.emit, keep=self.passthrough
        )

    async def handshake_headers(self) -> dict[str, str]:
        """The aiohttp socket's handshake headers: the credential, and the organization and
        project the SDK client carries (``OPENAI_ORG_ID``, ``OPENAI_PROJECT_ID``)."""
        scoped = {
            name: value
            for name, value in self._client.default_headers.items()
            if name in _SCOPE_HEADERS and isinstance(value, str)
        }
        return {
            "Authorization": f"Bearer {await self._bearer()}",
            "User-Agent": _USER_AGENT,
            **scoped,
            **self._extra_headers(),
        }

    def websocket_url(self) -> str:
        """The Realtime WebSocket URL, as the SDK builds it from the same client."""
        base = str(self._client.websocket_base_url or self._client.base_url)
        scheme, rest = base.split("://", 1)
        base = {"http": "ws", "https": "wss"}.get(scheme, scheme) + "://" + rest
        query = {"model": self._model} if self._model is not None else {}
        query.update(self._extra_query())
        return f"{base.rstrip('/')}/realtime?{urlencode(query)}"

    @property
    def passthrough(self) -> bool:
        """Whether events cross unchanged (a GA service): received ones keep their text."""
        return True

    def receive(self, event: BackendEvent) -> BackendEvent:
        """Normalise a received event to GA names (GA services: nothing to do)."""
        return event

    def emit(self, event: BackendEvent) -> BackendEvent:
        """Shape a GA event for the service (GA services: nothing to do)."""
        return event

    async def client_secret(self, session: dict[str, Any], *, seconds: int) -> dict[str, Any]:
        if self._model is not None:
            session = {**session, "model": self._model}
        client = self._client.with_options(timeout=self._timeout, max_retries=1)
        with backend_errors():
            response = await client.realtime.client_secrets.with_raw_response.create(
                session=session,  # type: ignore[arg-type]
                expires_after={"anchor": "created_at", "seconds": seconds},
                extra_headers=self._extra_headers(),
            )
        answer: dict[str, Any] = orjson.loads(response.content)
        return answer

    async def _bearer(self) -> str:
        """The bearer credential for this connect (an API key, or a fresh token)."""
        return self._client.api_key

    def _extra_query(self) -> dict[str, str]:
        return {}

    def _extra_headers(self) -> dict[str, str]:
        return {}

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.close()
        await self._client.close()


@contextmanager
def backend_errors() -> Iterator[None]:
    """Map what connecting can raise onto :class:`BackendError` codes."""
    try:
        yield
    except BackendError:
        raise
    except APIStatusError as exc:  # the SDK's HTTP calls (client secrets)
        raise _status_error(exc.status_code, exc.response.headers.get("Retry-After")) from None
    except APITimeoutError:
        raise BackendError(
            "backend_timeout", "the backend did not answer", retryable=True
        ) from None
    except APIConnectionError as exc:
        raise BackendError(
            "backend_unreachable", f"cannot reach the backend ({exc})", retryable=True
        ) from None
    except aiohttp.WSServerHandshakeError as exc:
        retry_after = exc.headers.get("Retry-After") if exc.headers else None
        raise _status_error(exc.status, retry_after) from None
    except WSHandshakeError as exc:
        if exc.response is None:
            raise BackendError(
                "backend_unreachable", f"the backend's handshake failed ({exc})", retryable=True
            ) from None
        status = int(exc.response.status)
        raise _status_error(status, exc.response.headers.get("Retry-After")) from None
    except InvalidStatus as exc:
        status, retry_after = exc.response.status_code, exc.response.headers.get("Retry-After")
        raise _status_error(status, retry_after) from None
    except TimeoutError:
        raise BackendError(
            "backend_timeout", "the backend did not answer", retryable=True
        ) from None
    except (OSError, InvalidHandshake, aiohttp.ClientError, WSError) as exc:
        raise BackendError(
            "backend_unreachable",
            f"cannot reach the backend ({type(exc).__name__})",
            retryable=True,
        ) from None
    except Exception as exc:
        if type(exc).__module__.startswith("azure."):
            raise BackendError(
                "backend_auth_failed", "no usable Azure credential (see the server log)"
            ) from exc
        raise


def _status_error(status: int, retry_after: str | None) -> BackendError:
    if status in (401, 403):
        return BackendError(
            "backend_auth_failed", f"the backend refused the credential ({status})", status=status
        )
    if status == 429:
        return BackendError(
            "backend_rate_limited",
            "the backend is rate limiting this server; try again later",
            retryable=True,
            retry_after=_seconds(retry_after),
            status=status,
        )
    if status >= 500:
        return BackendError(
            "backend_unavailable",
            f"the backend is unavailable ({status})",
            retryable=True,
            status=status,
        )
    return BackendError(
        "backend_error", f"the backend refused the session ({status})", status=status
    )


def _seconds(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
