"""What the emulated service does with MCP servers: list their tools and call them, over
streamable HTTP with the ``mcp`` package's client (the I/O the pure conversation asks for).

Every failure (unreachable, refused, a tool error) comes back as an error string, the way
the service reports ``mcp_list_tools.failed`` and a failed ``mcp_call``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from loguru import logger
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import TextContent

#: How long one listing or call may take.
TIMEOUT_S = 10.0


async def list_tools(server: dict[str, Any]) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The server's tools in the Realtime ``mcp_list_tools`` shape, or an error."""
    try:
        async with asyncio.timeout(TIMEOUT_S), _session(server) as session:
            listed = await session.list_tools()
    except Exception as exc:  # whatever the server or the transport did: reported
        return None, _failure("list", server, exc)
    tools = [
        {
            "name": tool.name,
            "description": tool.description or "",
            "input_schema": tool.inputSchema,
            "annotations": tool.annotations.model_dump() if tool.annotations else None,
        }
        for tool in listed.tools
    ]
    return tools, None


async def call_tool(
    server: dict[str, Any], name: str, arguments: str
) -> tuple[str | None, str | None]:
    """The tool's output as text, or an error."""
    try:
        args = orjson.loads(arguments or "{}")
        async with asyncio.timeout(TIMEOUT_S), _session(server) as session:
            result = await session.call_tool(name, args if isinstance(args, dict) else {})
    except Exception as exc:  # reported as the call's error
        return None, _failure(f"call {name}", server, exc)
    text = "".join(part.text for part in result.content if isinstance(part, TextContent))
    if result.isError:
        return None, text or "the tool failed"
    return text, None


@asynccontextmanager
async def _session(server: dict[str, Any]) -> AsyncIterator[ClientSession]:
    """An initialised MCP client session on the server's URL, with its headers."""
    url, headers = str(server.get("server_url")), dict(server.get("headers") or {})
    async with (
        httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(TIMEOUT_S)) as http,
        streamable_http_client(url, http_client=http) as (read, write, _),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def _failure(what: str, server: dict[str, Any], exc: BaseException) -> str:
    logger.info("mcp {} on {} failed: {}", what, server.get("server_label"), type(exc).__name__)
    return f"MCP server {server.get('server_label')!r}: {what} failed ({type(exc).__name__})"
