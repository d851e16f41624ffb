"""The emulator's settings without sockets: idle timeout, tool_choice, semantic VAD's
eagerness and MCP items, as the pure conversation plays them."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from rt_server.emulator import Conversation, EmulatorConfig, Rule, ToolCall
from tests.unit.test_emulator_conversation import drain, make, reply, say, text_of, types

Event = dict[str, Any]


def update(conv: Conversation, **session: Any) -> list[Event]:
    return conv.handle({"type": "session.update", "session": {"type": "realtime", **session}})


def append(conv: Conversation, pcm: np.ndarray[Any, Any]) -> list[Event]:
    audio = base64.b64encode(pcm.astype("<i2").tobytes()).decode()
    return conv.handle({"type": "input_audio_buffer.append", "audio": audio})


def silence(ms: int) -> np.ndarray[Any, Any]:
    return np.zeros(24 * ms)


def tone(ms: int) -> np.ndarray[Any, Any]:
    return (np.sin(np.arange(24 * ms) / 24000 * 2 * np.pi * 440) * 9000).astype(np.int16)


def test_the_idle_timeout_prompts_after_that_much_silence() -> None:
    conv = make()
    turn = {"type": "server_vad", "idle_timeout_ms": 1000}
    update(conv, audio={"input": {"turn_detection": turn}})
    assert append(conv, silence(900)) == []
    events = append(conv, silence(200))
    assert types(events)[0] == "input_audio_buffer.timeout_triggered"
    assert (events[0]["audio_start_ms"], events[0]["audio_end_ms"]) == (0, 1100)
    assert text_of(drain(conv)) == "Are you still there?"
    assert append(conv, silence(500)) == []  # counted again from the prompt's end


def test_tool_choice_none_required_and_named() -> None:
    rule = Rule(match="time", tool_call=ToolCall("clock", {}))
    tools = [{"type": "function", "name": "clock"}, {"type": "function", "name": "alarm"}]
    for choice, text, called in [
        ("none", "what time", None),
        ("required", "hello", "alarm"),
        ({"type": "function", "name": "clock"}, "hello", "clock"),
        ("auto", "hello", None),
    ]:
        conv = Conversation(EmulatorConfig(rules=(rule,)), model="m")
        update(conv, tools=tools, tool_choice=choice)
        say(conv, text)
        done = next(e for e in reply(conv) if e["type"] == "response.done")
        [item] = done["response"]["output"]
        assert item.get("name") == called, choice


def test_semantic_vad_eagerness_sets_the_silence_that_ends_a_turn() -> None:
    for eagerness, stops in [("high", True), ("low", False)]:
        conv = make()
        turn = {"type": "semantic_vad", "eagerness": eagerness, "create_response": False}
        update(conv, audio={"input": {"turn_detection": turn}})
        events = append(conv, np.concatenate([tone(600), silence(400)]))
        assert ("input_audio_buffer.speech_stopped" in types(events)) is stops, eagerness


def test_an_mcp_server_is_listed_and_called_through_requests() -> None:
    rule = Rule(match="order", tool_call=ToolCall("lookup", {"order": "1"}))
    conv = Conversation(EmulatorConfig(rules=(rule,)), model="m")
    server: dict[str, Any] = {"type": "mcp", "server_label": "orders"}
    server.update(server_url="http://m/mcp", allowed_tools=["lookup"])
    events = update(conv, tools=[server])
    assert types(events) == [
        "session.updated",
        "conversation.item.added",
        "mcp_list_tools.in_progress",
    ]
    [listing] = conv.take_mcp_requests()
    tools = [{"name": "lookup"}, {"name": "hidden"}]
    listed = conv.mcp_listed(listing.item_id, tools, None)
    assert types(listed) == ["mcp_list_tools.completed", "conversation.item.done"]
    assert listed[1]["item"]["tools"] == [{"name": "lookup"}]
    say(conv, "my order")
    assert conv.handle({"type": "response.create"}) == []
    before = drain(conv)
    assert types(before)[-1] == "response.mcp_call.in_progress"
    [call] = conv.take_mcp_requests()
    assert (call.kind, call.name, call.arguments) == ("call", "lookup", '{"order":"1"}')
    conv.mcp_called(call.item_id, "shipped", None)
    after = drain(conv)
    assert types(after)[0] == "response.mcp_call.completed"
    first_done = types(after).index("response.done")
    [mcp_item] = after[first_done]["response"]["output"]
    assert (mcp_item["type"], mcp_item["output"]) == ("mcp_call", "shipped")
    assert text_of(after[first_done + 1 :]) == "The lookup tool says: shipped."
