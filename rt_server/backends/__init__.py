"""Backends: :func:`create_backend` is the only place that switches on ``BACKEND``."""

from __future__ import annotations

from openai import AsyncOpenAI

from rt_server.backends.base import Backend, BackendConnection, BackendEvent
from rt_server.config import Settings

__all__ = ["Backend", "BackendConnection", "BackendEvent", "create_backend"]


def create_backend(settings: Settings) -> Backend:
    """The backend that ``settings.backend`` names, not yet started."""
    timeout, socket = settings.limits.backend_connect_timeout, settings.backend_socket
    match settings.backend:
        case "openai":
            from rt_server.backends.openai import OpenAIBackend

            client = AsyncOpenAI(api_key=settings.openai_api_key, base_url=settings.openai_base_url)
            return OpenAIBackend(client, settings.openai_model, timeout=timeout, socket=socket)
        case "azure":
            from rt_server.backends.azure import AzureBackend

            assert settings.azure_endpoint  # Settings.check() made sure
            assert settings.azure_deployment
            return AzureBackend(
                endpoint=settings.azure_endpoint,
                deployment=settings.azure_deployment,
                api_key=settings.azure_api_key,
                api_version=settings.azure_api_version,
                timeout=timeout,
                socket=socket,
            )
        case "emulator":
            from rt_server.backends.emulator import EmulatorBackend

            return EmulatorBackend(model=settings.openai_model, timeout=timeout, socket=socket)
