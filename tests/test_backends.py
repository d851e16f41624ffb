"""The backends' handshake, as the aiohttp socket sends it: URL and headers (no socket)."""

from __future__ import annotations

from openai import AsyncOpenAI

from rt_server.backends.azure import AzureBackend
from rt_server.backends.openai import OpenAIBackend


async def test_openai_url_and_headers_carry_the_key_organization_and_project() -> None:
    client = AsyncOpenAI(
        api_key="sk-abc", base_url="https://gw.example/v1", organization="org-1", project="p-1"
    )
    backend = OpenAIBackend(client, "gpt-realtime")
    assert backend.websocket_url() == "wss://gw.example/v1/realtime?model=gpt-realtime"
    assert await backend.handshake_headers() == {
        "Authorization": "Bearer sk-abc",
        "User-Agent": "rt-server",
        "OpenAI-Organization": "org-1",
        "OpenAI-Project": "p-1",
    }
    await backend.aclose()


async def test_openai_without_organization_sends_no_scope_headers() -> None:
    backend = OpenAIBackend(AsyncOpenAI(api_key="sk-abc", base_url="http://127.0.0.1:1/v1"), "m")
    assert backend.websocket_url() == "ws://127.0.0.1:1/v1/realtime?model=m"
    assert set(await backend.handshake_headers()) == {"Authorization", "User-Agent"}
    await backend.aclose()


async def test_azure_ga_and_preview_urls_and_key_headers() -> None:
    ga = AzureBackend(endpoint="https://r.openai.azure.com", deployment="dep", api_key="k1")
    assert ga.websocket_url() == "wss://r.openai.azure.com/openai/v1/realtime?model=dep"
    headers = await ga.handshake_headers()
    assert (headers["api-key"], headers["Authorization"]) == ("k1", "Bearer k1")
    preview = AzureBackend(
        endpoint="http://127.0.0.1:2", deployment="dep", api_key="k1", api_version="2025-04-01"
    )
    assert preview.websocket_url() == (
        "ws://127.0.0.1:2/openai/realtime?api-version=2025-04-01&deployment=dep"
    )
    await ga.aclose()
    await preview.aclose()
