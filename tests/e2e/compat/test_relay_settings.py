"""The modular relay's settings: ``TEMPERATURE``, ``LOG_EVENTS`` and ``WEATHER_INSTRUCTIONS``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from loguru import logger

from rt_server.backends import create_backend
from rt_server.config import Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from rt_server.emulator.config import Rule
from rt_server.emulator.config import ToolCall as ScriptedCall
from rt_server.errors import ConfigError
from rt_server.logs import configure_logging, parse_log_events
from rt_server.tools.weather import DEFAULT_INSTRUCTIONS, weather_registry
from tests.conftest import azure_settings, openai_settings
from tests.e2e.test_e2e import text_turn
from tests.support.harness import (
    client,
    connected,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)
from tests.support.tap import TapBackend


@contextmanager
def captured(level: str = "DEBUG") -> Iterator[list[str]]:
    lines: list[str] = []
    sink = logger.add(lambda message: lines.append(str(message)), level=level)
    try:
        yield lines
    finally:
        logger.remove(sink)


def test_temperature_is_checked_at_start_up() -> None:
    assert Settings.from_env({"TEMPERATURE": "0.7"}).temperature == 0.7
    assert Settings.from_env({}).temperature is None
    for bad in ("0.5", "1.3", "warm"):
        with pytest.raises(ConfigError, match="TEMPERATURE"):
            Settings.from_env({"TEMPERATURE": bad})


async def test_temperature_reaches_the_azure_preview_session(emulator: RunningEmulator) -> None:
    settings = azure_settings(
        emulator.http_url, azure_api_version="2025-04-01-preview", temperature=0.7
    )
    with captured("WARNING") as lines:
        async with running_server(settings) as server:
            turn = await text_turn(server.ws_url, "warm or cold", emulator)
    assert "warm or cold" in turn.text
    [connection] = turn.connections
    assert connection["dialect"] == "beta"
    assert connection["temperature"] == 0.7  # as the beta session.update carried it
    assert not [line for line in lines if "TEMPERATURE" in line]


async def test_temperature_on_the_ga_api_is_one_start_up_warning(
    emulator: RunningEmulator,
) -> None:
    settings = openai_settings(emulator.http_url, temperature=0.9)
    with captured("WARNING") as lines:
        async with running_server(settings) as server:
            turn = await text_turn(server.ws_url, "ga has none", emulator)
            await text_turn(server.ws_url, "still none", emulator)
    assert "ga has none" in turn.text  # the GA session was not refused
    warnings = [line for line in lines if "TEMPERATURE" in line]
    assert len(warnings) == 1
    assert "GA Realtime API has no temperature" in warnings[0]


def test_log_events_are_parsed_and_checked() -> None:
    events = "connection:info,client:debug,backend:INFO, audio:off ,errors:warning"
    settings = Settings.from_env({"LOG_EVENTS": events})
    assert settings.log_events == {
        "connection": "INFO",
        "client": "DEBUG",
        "backend": "INFO",
        "audio": "OFF",
        "errors": "WARNING",
    }
    assert Settings.from_env({}).log_events == {}
    for bad in ("api:debug", "client:loud", "client"):
        with pytest.raises(ConfigError, match="LOG_EVENTS"):
            Settings.from_env({"LOG_EVENTS": bad})


@pytest.mark.parametrize("audio", [False, True])
async def test_log_events_set_a_level_per_category(
    emulator: RunningEmulator, capfd: pytest.CaptureFixture[str], audio: bool
) -> None:
    spec = "connection:info,backend:info,"
    spec += "client:off,audio:debug" if audio else "client:debug,audio:off"
    events = parse_log_events(spec)
    settings = openai_settings(emulator.http_url, log_events=events)
    configure_logging(settings.log_level, events=events)
    try:
        async with running_server(settings) as server:
            async with client(server.ws_url, max_queue=None) as ws:
                await connected(ws)
                await ws.send(b"\x00\x01" * 480)  # 20 ms of audio
                await send_json(ws, {"type": "user_message", "text": "log me"})
                await until(ws, is_type("control", "text_done"))
    finally:
        logger.remove()
        logger.add(lambda message: None)
    lines = capfd.readouterr().err.splitlines()
    client_lines = [
        line for line in lines if "< client text (" in line or "> client control (" in line
    ]
    audio_lines = [line for line in lines if "audio frame (" in line or "B of audio" in line]
    assert any("session start" in line for line in lines)  # connection: info
    assert bool(audio_lines) is audio
    assert bool(client_lines) is not audio
    assert not [line for line in lines if "> backend conversation.item.create" in line]
    assert "log me" not in "\n".join(lines)  # sizes and types, never the text


def open_meteo(request: httpx.Request) -> httpx.Response:
    """Open-Meteo's two endpoints, answering for Paris (the only network the tool uses)."""
    if "search" in request.url.path:
        return httpx.Response(
            200, json={"results": [{"name": "Paris", "latitude": 48.85, "longitude": 2.35}]}
        )
    return httpx.Response(200, json={"current": {"temperature_2m": 12.5, "wind_speed_10m": 9.0}})


@pytest.mark.parametrize("instructions", [None, "Answer like a shipping forecast."])
async def test_the_weather_reply_follows_weather_instructions(instructions: str | None) -> None:
    rule = Rule(match="weather", tool_call=ScriptedCall("get_weather", {"city": "Paris"}))
    async with run_emulator(EmulatorConfig(rules=(rule,))) as emulator:
        settings = openai_settings(emulator.http_url)
        backend = TapBackend(create_backend(settings))
        given = {} if instructions is None else {"instructions": instructions}
        tools = weather_registry(
            "https://weather.test/v1/forecast",
            "https://geo.test/v1/search",
            httpx.MockTransport(open_meteo),
            **given,
        )
        async with running_server(settings, backend, tools=tools) as server:
            async with client(server.ws_url, max_queue=None) as ws:
                await connected(ws)
                await send_json(ws, {"type": "user_message", "text": "what is the weather?"})
                said = ""
                while "get_weather tool says" not in said:  # the reply after the tool's output
                    _, frames = await until(ws, is_type("control", "text_done"))
                    said = text_of(frames)
    [conn] = backend.connections
    asked = conn.of_type("response.create", sent=True)
    assert len(asked) == 2  # the question, then the reply after the tool's output
    assert "response" not in asked[0]
    assert asked[1]["response"]["instructions"] == (instructions or DEFAULT_INSTRUCTIONS)
    assert DEFAULT_INSTRUCTIONS.startswith("Describe the weather in a conversational way")
