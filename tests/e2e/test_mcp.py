"""MCP servers end to end: a profile's MCP server (its header read from the environment)
reaches the emulator, which lists and calls the tools of a real MCP server (the ``mcp``
package's FastMCP over streamable HTTP, on a free loopback port); the calls appear in the
reply, the monitor and the records, on ``/realtime`` and on the gateway to the real openai
SDK (real rt_server, real sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import orjson
from mcp.server.fastmcp import FastMCP
from openai.types.realtime.realtime_tools_config_union_param import Mcp
from starlette.types import ASGIApp, Receive, Scope, Send

from rt_server.config import Limits, Settings
from rt_server.emulator import EmulatorConfig, run_emulator
from rt_server.emulator.config import Rule
from rt_server.emulator.config import ToolCall as ScriptedCall
from rt_server.profile import McpServer, Profile
from rt_server.serving import serve
from tests.conftest import API_KEY, openai_settings
from tests.e2e.gateway.conftest import LIMITS, TOKEN, sdk, text_turn, until_event
from tests.e2e.records.conftest import ADMIN, records_server, with_records
from tests.e2e.records.test_records import conversations, detail
from tests.e2e.test_restore import close_over_http, items_over_http
from tests.support.harness import (
    Frame,
    client,
    connected,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)


@dataclass
class HeaderLog:
    """ASGI middleware: the headers of every request the MCP server got."""

    app: ASGIApp
    seen: list[dict[str, str]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.seen.append({k.decode(): v.decode() for k, v in scope["headers"]})
        await self.app(scope, receive, send)


@asynccontextmanager
async def mcp_server() -> AsyncIterator[tuple[str, HeaderLog]]:
    """A FastMCP server with two tools on streamable HTTP; yields its URL and header log."""
    server = FastMCP("orders", stateless_http=True, json_response=True)

    @server.tool(description="Where an order is.")
    def lookup(order: str) -> str:
        return f"order {order} has shipped"

    @server.tool(description="Not for the model.")
    def secret() -> str:
        return "never listed"

    app = HeaderLog(server.streamable_http_app())
    async with server.session_manager.run(), serve(app, lifespan="off") as served:
        yield f"{served.http_url}/mcp", app


PROFILE_FILE = """
[default]
[[default.mcp_servers]]
server_label = "orders"
server_url = "{url}"
allowed_tools = ["lookup"]
require_approval = "never"
headers = {{ Authorization = "ORDERS_MCP_AUTH" }}
"""


def is_error(code: str) -> Any:
    def match(frame: Frame) -> bool:
        return isinstance(frame, dict) and frame.get("type") == "error" and frame["code"] == code

    return match


def is_note(kind: str) -> Any:
    def match(frame: Frame) -> bool:
        return isinstance(frame, dict) and frame.get("type") == kind

    return match


async def test_the_model_calls_an_mcp_servers_tool(tmp_path: Path) -> None:
    rule = Rule(match="order", tool_call=ScriptedCall("lookup", {"order": "42"}))
    async with (
        mcp_server() as (url, headers),
        run_emulator(EmulatorConfig(api_key=API_KEY, rules=(rule,))) as emulator,
    ):
        profiles = tmp_path / "profiles.toml"
        profiles.write_text(PROFILE_FILE.format(url=url))
        env = {
            "BACKEND": "openai",
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": f"{emulator.http_url}/v1",
            "PROFILE_FILE": str(profiles),
            "ORDERS_MCP_AUTH": "Bearer from-the-environment",
            "ADMIN_TOKEN": ADMIN,
            "RECORDS_PATH": str(tmp_path / "records.sqlite3"),
        }
        settings = replace(Settings.from_env(env), limits=Limits(backend_connect_timeout=5.0))
        assert "from-the-environment" not in repr(settings.profile)
        async with records_server(settings) as live:
            monitor_url = live.ws_url.replace("/realtime", f"/monitor?token={ADMIN}")
            async with client(monitor_url) as monitor, client(live.ws_url) as ws:
                await connected(ws)
                listed, _ = await until(monitor, is_note("mcp_list_tools"))
                assert isinstance(listed, dict)
                assert listed["data"] == {"server_label": "orders", "tools": ["lookup"]}
                await send_json(ws, {"type": "user_message", "text": "where is my order?"})
                _, before = await until(ws, is_type("control", "text_done"))
                assert "The lookup tool says: order 42 has shipped." in text_of(before)
                called, _ = await until(monitor, is_note("mcp_call"))
            await live.settle()
            [summary] = await conversations(live)
            talk = await detail(live, summary["id"])
    assert isinstance(called, dict)
    assert called["data"]["output"] == "order 42 has shipped"
    assert called["data"]["server_label"] == "orders"
    [call] = talk["tool_calls"]
    assert (call["name"], call["server_label"], call["output"]) == (
        "lookup",
        "orders",
        "order 42 has shipped",
    )
    assert call["arguments"] == '{"order":"42"}'
    assert headers.seen and all(
        seen.get("authorization") == "Bearer from-the-environment" for seen in headers.seen
    )


async def test_a_gateway_client_on_the_sdk_gets_the_mcp_events(tmp_path: Path) -> None:
    rule = Rule(match="order", tool_call=ScriptedCall("lookup", {"order": "7"}))
    async with (
        mcp_server() as (url, _),
        run_emulator(EmulatorConfig(api_key=API_KEY, rules=(rule,))) as emulator,
    ):
        settings = with_records(
            openai_settings(emulator.http_url),
            f"sqlite+aiosqlite:///{tmp_path}/records.sqlite3",
            client_tokens=(TOKEN,),
            limits=LIMITS,
        )
        async with records_server(settings) as live:
            async with (
                sdk(live.http_url) as openai,
                openai.realtime.connect(model="gpt-realtime") as connection,
            ):
                tool: Mcp = {
                    "type": "mcp",
                    "server_label": "orders",
                    "server_url": url,
                    "require_approval": "never",
                }
                await connection.session.update(session={"type": "realtime", "tools": [tool]})
                await until_event(connection, ["mcp_list_tools.completed"])
                listed = await until_event(connection, ["conversation.item.done"])
                item = listed.events[-1]["item"]
                assert item["type"] == "mcp_list_tools"
                assert sorted(t["name"] for t in item["tools"]) == ["lookup", "secret"]
                call = await text_turn(connection, "my order?")
                assert call.of("response.mcp_call.completed")
                [done] = call.of("response.output_item.done")
                assert done["item"]["output"] == "order 7 has shipped"
                answer = await until_event(connection, ["response.done"])
                assert "The lookup tool says: order 7 has shipped." in answer.text
            await live.settle()
            [summary] = await conversations(live)
            talk = await detail(live, summary["id"])
    [recorded] = talk["tool_calls"]
    assert (recorded["server_label"], recorded["output"]) == ("orders", "order 7 has shipped")


async def test_the_profiles_mcp_credentials_never_reach_a_client(tmp_path: Path) -> None:
    async with (
        mcp_server() as (url, headers),
        run_emulator(EmulatorConfig(api_key=API_KEY)) as emulator,
    ):
        profiles = tmp_path / "profiles.toml"
        profiles.write_text(PROFILE_FILE.format(url=url))
        env = {
            "BACKEND": "openai",
            "OPENAI_API_KEY": API_KEY,
            "OPENAI_BASE_URL": f"{emulator.http_url}/v1",
            "PROFILE_FILE": str(profiles),
            "ORDERS_MCP_AUTH": "Bearer from-the-environment",
            "CLIENT_TOKENS": TOKEN,
            "RECORDS": "off",
        }
        settings = replace(Settings.from_env(env), limits=LIMITS)
        async with running_server(settings) as server:
            async with (
                sdk(server.http_url) as openai,
                openai.realtime.connect(model="gpt-realtime") as connection,
            ):
                seen = await until_event(connection, ["mcp_list_tools.completed"])
            async with httpx.AsyncClient() as http:
                minted = await http.post(
                    f"{server.http_url}/api/session",
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
    assert minted.status_code == 200, minted.text
    sessions = [e["session"] for e in seen.events if "session" in e]
    assert sessions and [t["server_label"] for t in sessions[-1]["tools"]] == ["orders"]
    for text in [orjson.dumps(seen.events).decode(), minted.text]:
        assert "from-the-environment" not in text
    assert headers.seen[0]["authorization"] == "Bearer from-the-environment"  # it was used


async def test_an_mcp_call_is_part_of_the_restored_conversation(tmp_path: Path) -> None:
    rule = Rule(match="order", tool_call=ScriptedCall("lookup", {"order": "9"}))
    async with (
        mcp_server() as (url, _),
        run_emulator(EmulatorConfig(api_key=API_KEY, rules=(rule,))) as emulator,
    ):
        server = McpServer("orders", url, allowed_tools=("lookup",))
        profile = Profile(mcp_servers=(server,))
        settings = openai_settings(emulator.http_url, profile=profile, admin_token=ADMIN)
        async with running_server(settings) as live:
            monitor_url = live.ws_url.replace("/realtime", f"/monitor?token={ADMIN}")
            async with client(monitor_url) as monitor, client(live.ws_url) as ws:
                await connected(ws)
                await until(monitor, is_note("mcp_list_tools"))  # the tools are known
                await send_json(ws, {"type": "user_message", "text": "where is order 9?"})
                _, before_done = await until(ws, is_type("control", "text_done"))
                assert "order 9 has shipped" in text_of(before_done)
                [first] = emulator.state.connections
                before = await items_over_http(emulator, first)
                await close_over_http(emulator, first)
                await until(ws, is_error("backend_reconnected"))
                [second] = emulator.state.connections
                after = emulator.state.items(second)

    def known(items: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [
            (i["type"], i.get("server_label"), i.get("name"), i.get("arguments"), i.get("output"))
            for i in items
            if i["type"] in ("mcp_call", "mcp_list_tools")
        ]

    assert known(before) == [
        ("mcp_list_tools", "orders", None, None, None),
        ("mcp_call", "orders", "lookup", '{"order":"9"}', "order 9 has shipped"),
    ]
    assert known(after) == known(before)  # listed again, the call restored
    assert [i["type"] for i in after] == [i["type"] for i in before]
