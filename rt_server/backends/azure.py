"""Azure OpenAI: the same Realtime protocol with another URL and another credential.

GA (no ``AZURE_OPENAI_API_VERSION``): ``<endpoint>/openai/v1/realtime?model=<deployment>``.
Preview (``AZURE_OPENAI_API_VERSION`` set): ``<endpoint>/openai/realtime?api-version=...
&deployment=...``, which speaks the beta event names (see :mod:`.preview`).

Without an API key the credential is ``DefaultAzureCredential`` (managed identity in
production): one per process, asked for a token on every connect; it caches tokens and
refreshes them before they expire.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from loguru import logger
from openai import AsyncOpenAI

from rt_server.backends import preview
from rt_server.backends.base import BackendEvent
from rt_server.backends.openai import OpenAIBackend, backend_errors
from rt_server.backends.sockets import SocketKind

if TYPE_CHECKING:
    from azure.identity.aio import DefaultAzureCredential

SCOPE = "https://cognitiveservices.azure.com/.default"


class AzureBackend(OpenAIBackend):
    """Azure OpenAI Realtime, with an API key or an Entra ID credential."""

    name = "azure"

    def __init__(
        self,
        *,
        endpoint: str,
        deployment: str,
        api_key: str | None = None,
        api_version: str | None = None,
        timeout: float = 15.0,
        socket: SocketKind = "picows",
        temperature: float | None = None,
    ) -> None:
        """``temperature`` reaches the preview path's sessions (GA has none)."""
        self._credential: DefaultAzureCredential | None = None
        key: str | Callable[[], Awaitable[str]]
        if api_key is None:
            from azure.identity.aio import DefaultAzureCredential, get_bearer_token_provider

            self._credential = DefaultAzureCredential()
            key = get_bearer_token_provider(self._credential, SCOPE)
        else:
            key = api_key
        self._key = key
        path = "/openai" if api_version else "/openai/v1"
        client = AsyncOpenAI(
            api_key=key,
            base_url=f"{endpoint}/openai/v1",
            websocket_base_url=_websocket_url(endpoint) + path,
        )
        model = None if api_version else deployment
        super().__init__(client, model, timeout=timeout, socket=socket)
        self._api_key = api_key
        self._api_version = api_version
        self._deployment = deployment
        self._temperature = temperature

    @property
    def passthrough(self) -> bool:
        return not self._api_version

    def receive(self, event: BackendEvent) -> BackendEvent:
        return preview.from_beta(event) if self._api_version else event

    def emit(self, event: BackendEvent) -> BackendEvent:
        if not self._api_version:
            return event
        try:
            return preview.to_beta(event, self._temperature)
        except (KeyError, TypeError, AttributeError):
            # A gateway client's malformed event (its nested fields are its own): sent as it
            # is, the service refuses it with an error event the client reads.
            logger.debug("> {} not reshaped for the preview path: malformed", event["type"])
            return event

    async def client_secret(self, session: dict[str, Any], *, seconds: int) -> dict[str, Any]:
        # GA path (/openai/v1), for the preview API versions too; the model is the deployment.
        return await super().client_secret({**session, "model": self._deployment}, seconds=seconds)

    async def _bearer(self) -> str:
        return self._key if isinstance(self._key, str) else await self._key()

    def _extra_query(self) -> dict[str, str]:
        if self._api_version:
            return {"api-version": self._api_version, "deployment": self._deployment}
        return {}

    def _extra_headers(self) -> dict[str, str]:
        return {"api-key": self._api_key} if self._api_key else {}

    async def check(self) -> None:
        if self._credential is not None:
            with backend_errors():
                await self._credential.get_token(SCOPE)

    async def aclose(self) -> None:
        await super().aclose()
        if self._credential is not None:
            await self._credential.close()


def _websocket_url(endpoint: str) -> str:
    """``http://`` endpoints (local emulators, private gateways) connect over ``ws://``."""
    scheme, rest = endpoint.split("://", 1)
    return {"http": "ws", "https": "wss"}.get(scheme, scheme) + "://" + rest
