"""The OpenAI Realtime backend, through the SDK's GA ``client.realtime.connect()``.

The hot path stays raw: events are read with ``recv_bytes()`` and decoded once with
orjson, and sent with ``send_raw()``; no pydantic model is built per event. Foreign
exceptions (websockets, OS errors, credential errors) become :class:`BackendError` here,
in :func:`backend_errors`, and nowhere else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import orjson
from openai import APIConnectionError, APIStatusError, APITimeoutError, AsyncOpenAI, omit
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from rt_server.backends.base import Backend, BackendConnection, BackendEvent
from rt_server.errors import BackendClosed, BackendError

Normalise = Callable[[BackendEvent], BackendEvent]

# PCM does not compress: permessage-deflate would only cost CPU on both ends. A short
# close_timeout ends the backend connection within a second of the client leaving; the
# SDK's TypedDict does not list it, but it passes every option on to websockets.
_WS_OPTIONS: Any = {"compression": None, "max_size": 16 * 1024 * 1024, "close_timeout": 1.0}


class SdkConnection(BackendConnection):
    """A live SDK connection; ``receive``/``emit`` adapt a dialect (identity for GA)."""

    def __init__(
        self, connection: AsyncRealtimeConnection, *, receive: Normalise, emit: Normalise
    ) -> None:
        self._connection = connection
        self._receive = receive
        self._emit = emit

    async def send(self, event: BackendEvent) -> None:
        data = orjson.dumps(self._emit(event)).decode()
        try:
            await self._connection.send_raw(data)
        except ConnectionClosed as exc:
            raise _closed(exc) from None

    async def recv(self) -> BackendEvent:
        try:
            raw = await self._connection.recv_bytes()
        except ConnectionClosed as exc:
            raise _closed(exc) from None
        event: BackendEvent = orjson.loads(raw)
        return self._receive(event)

    async def aclose(self) -> None:
        await self._connection.close()


class OpenAIBackend(Backend):
    """OpenAI's Realtime API, or anything that speaks it (a gateway, the emulator).

    Subclasses change where and how to connect through the hooks ``_model``,
    ``_extra_query``, ``_extra_headers`` and the ``receive``/``emit`` dialect pair.
    """

    name = "openai"

    def __init__(self, client: AsyncOpenAI, model: str | None, *, timeout: float = 15.0) -> None:
        self._client = client
        self._model = model
        self._timeout = timeout
        self._ws_options: Any = {**_WS_OPTIONS, "open_timeout": timeout}

    async def connect(self) -> BackendConnection:
        with backend_errors():
            manager = self._client.realtime.connect(
                model=self._model if self._model is not None else omit,
                extra_query=self._extra_query(),
                extra_headers=self._extra_headers(),
                websocket_connection_options=self._ws_options,
            )
            connection = await asyncio.wait_for(manager.enter(), self._timeout)
        return SdkConnection(connection, receive=self.receive, emit=self.emit)

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

    def _extra_query(self) -> dict[str, str]:
        return {}

    def _extra_headers(self) -> dict[str, str]:
        return {}

    async def aclose(self) -> None:
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
    except InvalidStatus as exc:
        status, retry_after = exc.response.status_code, exc.response.headers.get("Retry-After")
        raise _status_error(status, retry_after) from None
    except TimeoutError:
        raise BackendError(
            "backend_timeout", "the backend did not answer", retryable=True
        ) from None
    except (OSError, InvalidHandshake) as exc:
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


def _closed(exc: ConnectionClosed) -> BackendClosed:
    code = exc.rcvd.code if exc.rcvd is not None else None
    reason = exc.rcvd.reason if exc.rcvd is not None and exc.rcvd.reason else "no reason given"
    return BackendClosed(f"the backend closed the session ({code}: {reason})", close_code=code)
