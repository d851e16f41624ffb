"""OpenTelemetry traces reach an OTLP/HTTP collector (a tiny in-process one, receiving the
protobuf export as a real collector does) when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: the
session, its backend connect, each turn with its latency stages, its tool calls."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)

from rt_server.config import Settings
from rt_server.emulator import EmulatorConfig, RunningEmulator, run_emulator
from tests.conftest import API_KEY, openai_settings
from tests.e2e.test_assistant import RULES, tools
from tests.support.harness import client, connected, is_type, running_server, send_json, until


class Collector:
    """Receives ``POST /v1/traces`` (protobuf) and keeps the spans."""

    def __init__(self) -> None:
        self.spans: list[Any] = []
        self.paths: list[str] = []
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                collector.paths.append(self.path)
                for resource in request.resource_spans:
                    for scope in resource.scope_spans:
                        collector.spans.extend(scope.spans)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"


@pytest.fixture
def collector() -> Iterator[Collector]:
    running = Collector()
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
        thread.join()


def test_the_endpoint_comes_from_the_standard_variable() -> None:
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert Settings.from_env(env).otel_endpoint == "http://collector:4318"
    assert Settings.from_env({}).otel_endpoint is None


async def test_a_session_its_connect_turns_and_tool_calls_are_traced(
    collector: Collector,
) -> None:
    async with run_emulator(EmulatorConfig(api_key=API_KEY, rules=RULES)) as emulator:
        await _converse(emulator, collector)
    assert set(collector.paths) == {"/v1/traces"}
    by_name: dict[str, list[Any]] = {}
    for span in collector.spans:
        by_name.setdefault(span.name, []).append(span)
    [session] = by_name["session"]
    assert {"backend.connect", "turn", "tool"} <= set(by_name)
    for name in ("backend.connect", "turn", "tool"):
        assert all(span.trace_id == session.trace_id for span in by_name[name])
        assert all(span.parent_span_id == session.span_id for span in by_name[name])
    stages = [[event.name for event in turn.events] for turn in by_name["turn"]]
    # The tool call's response, then the reply after the tool (the client left at its
    # text_done, before its response.done).
    assert stages[0] == ["response.created", "done"]
    assert stages[1][:2] == ["response.created", "first_output"]
    attributes = {a.key: a.value for a in session.attributes}
    assert attributes["rt.dialect"].string_value == "realtime"
    assert attributes["rt.close_code"].int_value == 1000
    [tool] = by_name["tool"]
    assert {a.key: a.value.string_value for a in tool.attributes} == {"rt.tool": "get_weather"}


async def _converse(emulator: RunningEmulator, collector: Collector) -> None:
    settings = replace(openai_settings(emulator.http_url), otel_endpoint=collector.url)
    async with running_server(settings, tools=tools) as server, client(server.ws_url) as ws:
        await connected(ws)
        await send_json(ws, {"type": "user_message", "text": "what is the weather?"})
        await until(ws, is_type("control", "text_done"))
