"""Profile fields in the session, MCP headers from the environment, and the translator's
MCP and idle-timeout events (pure)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rt_server.dialects.realtime import RealtimeTranslator
from rt_server.errors import ConfigError
from rt_server.profile import McpServer, Profile
from rt_server.profiles import load_profiles

PCM = {"type": "audio/pcm", "rate": 24000}

MCP = """
[[profiles.desk.mcp_servers]]
server_label = "docs"
server_url = "https://mcp.example/mcp"
headers = { Authorization = "DOCS_AUTH" }
"""


def test_mcp_header_values_come_from_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(MCP)
    desk = load_profiles(str(path), Profile(), {"DOCS_AUTH": "Bearer s3cret"})["desk"]
    [server] = desk.mcp_servers
    assert server.header_values == {"Authorization": "Bearer s3cret"}
    assert "s3cret" not in repr(desk)
    tool = RealtimeTranslator(desk).session_update()["session"]["tools"][0]
    assert tool["headers"] == {"Authorization": "Bearer s3cret"}
    with pytest.raises(ConfigError, match="DOCS_AUTH, which is not set"):
        load_profiles(str(path), Profile(), {})


def test_header_values_in_the_file_stop_start_up(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(MCP + 'header_values = { Authorization = "Bearer x" }\n')
    with pytest.raises(ConfigError, match="come from the environment"):
        load_profiles(str(path), Profile(), {"DOCS_AUTH": "y"})


def test_tool_choice_and_the_server_tools_share_the_session() -> None:
    profile = Profile(tool_choice="clock", mcp_servers=(McpServer("docs", "http://m/mcp"),))
    function = {"type": "function", "name": "clock", "parameters": {}}
    session = RealtimeTranslator(profile, [function]).session_update()["session"]
    assert [tool["type"] for tool in session["tools"]] == ["function", "mcp"]
    assert session["tool_choice"] == {"type": "function", "name": "clock"}


def test_idle_timeout_needs_server_vad() -> None:
    with pytest.raises(ValueError, match="server_vad"):
        Profile(turn_detection="semantic_vad", idle_timeout_ms=5000)


def test_timeout_triggered_and_mcp_events_reach_the_client_and_the_notes() -> None:
    t = RealtimeTranslator(Profile(show_tool_calls=True))
    out = t.backend_event({"type": "input_audio_buffer.timeout_triggered", "item_id": "i"}, 0.0)
    assert out.client == [{"type": "control", "action": "timeout_triggered"}]
    assert [n.kind for n in out.notes] == ["timeout_triggered"]
    item = {"type": "mcp_call", "id": "m", "server_label": "docs", "name": "find"}
    added = t.backend_event({"type": "response.output_item.added", "item": item}, 0.0)
    assert added.client == [{"type": "control", "action": "tool_call", "name": "find"}]
    done = {**item, "arguments": "{}", "output": "found", "error": None}
    out = t.backend_event({"type": "response.output_item.done", "item": done}, 0.0)
    assert out.client == [{"type": "control", "action": "tool_done", "name": "find"}]
    assert out.notes[0].data["output"] == "found"
    listed = {"type": "mcp_list_tools", "server_label": "docs", "tools": [{"name": "find"}]}
    out = t.backend_event({"type": "conversation.item.done", "item": listed}, 0.0)
    assert out.notes[0].data == {"server_label": "docs", "tools": ["find"]}


def test_without_interrupt_response_the_reply_plays_on_over_the_user() -> None:
    for interrupts in (True, False):
        t = RealtimeTranslator(Profile(interrupt_response=interrupts))
        t.backend_event({"type": "response.created"}, 0.0)
        delta = {"type": "response.output_audio.delta", "item_id": "a", "delta": "AAAA"}
        t.backend_event(delta, 0.0)
        out = t.backend_event({"type": "input_audio_buffer.speech_started"}, 0.01)
        assert out.notes[0].kind == "speech_started"
        assert bool(out.client) is interrupts
        truncates = [e for e in out.backend if e["type"] == "conversation.item.truncate"]
        assert bool(truncates) is interrupts
