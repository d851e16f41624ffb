"""The tool registry: schemas from type hints, and no failure escapes as an exception."""

from __future__ import annotations

import asyncio
from typing import Literal

import httpx
import orjson
import pytest

from rt_server.errors import ConfigError
from rt_server.tools import ToolRegistry, load_tools
from rt_server.tools.weather import weather_registry
from rt_server.translate import ToolCall

registry = ToolRegistry()


@registry.tool(description="Add two numbers.")
async def add(a: int, b: int = 2) -> int:
    return a + b


@registry.tool(timeout=0.05)
async def slow() -> str:
    """Never finishes in time."""
    await asyncio.Event().wait()
    return "unreachable"


@registry.tool()
async def broken(unit: Literal["c", "f"]) -> str:
    raise RuntimeError("secret internal detail")


def call(name: str, arguments: object) -> ToolCall:
    return ToolCall("call_1", name, orjson.dumps(arguments).decode())


def test_schema_comes_from_type_hints_and_docstrings() -> None:
    schemas = {schema["name"]: schema for schema in registry.schemas()}
    assert schemas["add"] == {
        "type": "function",
        "name": "add",
        "description": "Add two numbers.",
        "parameters": {
            "type": "object",
            "properties": {"a": {"type": "integer"}, "b": {"type": "integer", "default": 2}},
            "required": ["a"],
        },
    }
    assert schemas["slow"]["description"] == "Never finishes in time."
    assert schemas["broken"]["parameters"]["properties"]["unit"]["enum"] == ["c", "f"]


async def test_a_tool_runs_with_validated_arguments() -> None:
    assert await registry.run(call("add", {"a": 40})) == "42"


@pytest.mark.parametrize(
    ("name", "arguments", "fragment"),
    [
        ("nope", {}, "no tool named 'nope'"),
        ("add", {"a": "forty"}, "bad arguments"),
        ("add", {"a": 1, "c": 3}, "bad arguments"),
        ("add", [1, 2], "must be a JSON object"),
        ("slow", {}, "took longer than 0.05 s"),
        ("broken", {"unit": "c"}, "failed: RuntimeError"),
    ],
)
async def test_failures_become_error_outputs(name: str, arguments: object, fragment: str) -> None:
    output = orjson.loads(await registry.run(call(name, arguments)))
    assert fragment in output["error"]
    assert "secret internal detail" not in output["error"]


async def test_invalid_json_arguments_are_an_error_output() -> None:
    output = orjson.loads(await registry.run(ToolCall("c", "add", "{not json")))
    assert "bad arguments" in output["error"]


def test_sync_functions_are_refused() -> None:
    with pytest.raises(TypeError, match="async"):
        registry.tool()(lambda: None)  # type: ignore[arg-type,return-value]


def test_tool_modules_load_by_name_and_fail_clearly() -> None:
    loaded = load_tools(["rt_server.tools.clock"])
    assert [schema["name"] for schema in loaded.schemas()] == ["current_time"]
    with pytest.raises(ConfigError, match="RT_TOOLS"):
        load_tools(["no.such.module"])
    with pytest.raises(ConfigError, match="registry"):
        load_tools(["rt_server.config"])


async def test_clock_tool_answers_and_rejects_unknown_zones() -> None:
    tools = load_tools(["rt_server.tools.clock"])
    answer = orjson.loads(await tools.run(call("current_time", {"timezone": "Europe/Oslo"})))
    assert answer["timezone"] == "Europe/Oslo"
    assert answer["iso"][:2] == "20"
    wrong = orjson.loads(await tools.run(call("current_time", {"timezone": "Mars/Base"})))
    assert "unknown time zone" in wrong["error"]


async def test_weather_tool_through_a_mock_transport() -> None:
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        if request.url.path == "/search":
            return httpx.Response(
                200, json={"results": [{"name": "Oslo", "latitude": 59.9, "longitude": 10.7}]}
            )
        return httpx.Response(
            200, json={"current": {"temperature_2m": -3.5, "wind_speed_10m": 12.0}}
        )

    tools = weather_registry(
        "https://weather.test/forecast", "https://geo.test/search", httpx.MockTransport(answer)
    )
    output = orjson.loads(await tools.run(call("get_weather", {"city": "Oslo"})))
    assert output == {"city": "Oslo", "temperature_c": -3.5, "wind_kmh": 12.0}
    assert requests[0].url.params["name"] == "Oslo"
    assert requests[1].url.params["latitude"] == "59.9"


async def test_weather_tool_outage_is_an_error_output() -> None:
    tools = weather_registry(transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    output = orjson.loads(await tools.run(call("get_weather", {"city": "Oslo"})))
    assert "failed: HTTPStatusError" in output["error"]
