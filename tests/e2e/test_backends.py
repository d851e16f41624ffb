"""The backends on their own: the aiohttp socket's handshake URL and headers (no socket),
and what a backend connection does with messages that are not events (a real socket)."""

from __future__ import annotations

import pytest
from openai import AsyncOpenAI
from websockets.asyncio.server import ServerConnection, serve

from rt_server.backends.azure import AzureBackend
from rt_server.backends.openai import OpenAIBackend
from rt_server.config import SocketKind


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


@pytest.mark.parametrize("socket", ["aiohttp", "sdk"])
async def test_a_malformed_backend_message_is_skipped_not_fatal(socket: SocketKind) -> None:
    async def handler(ws: ServerConnection) -> None:
        for text in ("not json", "[1, 2]", '{"no": "type"}', '{"type": "session.created"}'):
            await ws.send(text)
        await ws.wait_closed()

    async with serve(handler, "127.0.0.1", 0) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        client = AsyncOpenAI(api_key="sk-x", base_url=f"http://127.0.0.1:{port}/v1")
        backend = OpenAIBackend(client, "m", socket=socket)
        connection = await backend.connect()
        try:
            assert await connection.recv() == {"type": "session.created"}
        finally:
            await connection.aclose()
            await backend.aclose()
