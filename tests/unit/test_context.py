"""The restored conversation: every item in the backend's order (pure, no event loop)."""

from __future__ import annotations

from rt_server.context import Context, heard_words, message, restore_events
from rt_server.dialects.realtime import RealtimeTranslator
from rt_server.profile import Profile
from rt_server.translate import ToolCall


def test_items_keep_the_backend_order_even_when_a_transcript_comes_late() -> None:
    c = Context()
    c.user_audio("in1")
    c.assistant_text("Sure.", "out1")  # the reply began before the transcript arrived
    c.transcript("in1", "book a table")
    c.function_call("call1", "book", '{"seats":2}')
    c.function_output("call1", '{"ok":true}')
    assert [e["item"] for e in c.restore()] == [
        message("user", "book a table"),
        message("assistant", "Sure."),
        {"type": "function_call", "call_id": "call1", "name": "book", "arguments": '{"seats":2}'},
        {"type": "function_call_output", "call_id": "call1", "output": '{"ok":true}'},
    ]


def test_a_turn_without_a_transcript_is_left_out() -> None:
    c = Context()
    c.user_audio("in1")
    c.user_audio("in2")
    c.transcript_failed("in1")
    c.user_text("typed")
    assert [e["item"] for e in c.restore()] == [message("user", "typed")]
    assert len(c.items) == 2  # in2 still waits for its transcript
    assert restore_events([{"type": "message", "role": "user", "content": []}]) == []


def test_a_cut_reply_keeps_the_words_heard() -> None:
    assert heard_words("one two three four", 500, 1000) == "one two"
    assert heard_words("one two three four", 501, 1000) == "one two three"
    assert heard_words("one two", 0, 1000) == ""
    assert heard_words("one two", 1000, 1000) == "one two"
    c = Context()
    c.assistant_text("one two three four", "a1")
    c.truncated("a1", 250, 1000)
    c.truncated("a2", 500, 1000)  # cut before its text is done
    c.assistant_text("five six", "a2")
    assert c.items == [message("assistant", "one"), message("assistant", "five")]


def test_the_translator_records_calls_outputs_and_texts_in_order() -> None:
    t = RealtimeTranslator(Profile())
    t.client_text('{"type":"user_message","text":"weather?"}', 0.0)
    call = {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": "{}"}
    done = {"type": "response.done", "response": {"status": "completed", "output": [call]}}
    [ran] = t.backend_event(done, 0.0).calls
    t.tool_result(ToolCall("c1", "get_weather", "{}"), "sunny")
    text = {"type": "response.output_text.done", "item_id": "i2", "content_index": 0}
    t.backend_event({**text, "text": "It is sunny."}, 0.0)
    events = t.restore()
    assert events[0]["type"] == "session.update"
    assert [e["item"]["type"] for e in events[1:]] == [
        "message",
        "function_call",
        "function_call_output",
        "message",
    ]
    assert ran.name == "get_weather"
