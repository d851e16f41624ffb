"""Backends: :func:`create_backend` is the only place that switches on ``BACKEND``."""

from __future__ import annotations

from loguru import logger
from openai import AsyncOpenAI

from rt_server.backends.base import Backend, BackendConnection, BackendEvent
from rt_server.config import Settings

__all__ = ["Backend", "BackendConnection", "BackendEvent", "create_backend"]


def create_backend(settings: Settings) -> Backend:
    """The backend that ``settings.backend`` names, not yet started."""
    timeout, socket = settings.limits.backend_connect_timeout, settings.backend_socket
    preview = settings.backend == "azure" and settings.azure_api_version is not None
    if settings.temperature is not None and not preview:
        logger.warning(
            "TEMPERATURE={:g} is not used: the GA Realtime API has no temperature (only the "
            "Azure preview path, AZURE_OPENAI_API_VERSION, takes it)",
            settings.temperature,
        )
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
                temperature=settings.temperature,
            )
        case "emulator":
            from rt_server.backends.emulator import EmulatorBackend

            return EmulatorBackend(model=settings.openai_model, timeout=timeout, socket=socket)
