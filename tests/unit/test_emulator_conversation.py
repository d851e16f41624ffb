"""The pure core: client events in, server events out, no sockets."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from rt_server.emulator import Conversation, EmulatorConfig, Rule, ToolCall
from rt_server.emulator.audio import TONE_AMPLITUDE

Event = dict[str, Any]


def drain(conv: Conversation) -> list[Event]:
    events = []
    while (step := conv.next_step()) is not None:
        events.append(step.ready())
    return events


def types(events: list[Event]) -> list[str]:
    return [e["type"] for e in events]


def say(conv: Conversation, text: str, role: str = "user") -> list[Event]:
    kind = "output_text" if role == "assistant" else "input_text"
    item = {"type": "message", "role": role, "content": [{"type": kind, "text": text}]}
    return conv.handle({"type": "conversation.item.create", "item": item})


def reply(conv: Conversation, **response: Any) -> list[Event]:
    assert conv.handle({"type": "response.create", "response": response}) == []
    return drain(conv)


def text_of(events: list[Event]) -> str:
    done = next(e for e in events if e["type"] == "response.done")
    [item] = done["response"]["output"]
    part = item["content"][0]
    return str(part.get("text") or part.get("transcript"))


def make(**config: Any) -> Conversation:
    return Conversation(EmulatorConfig(**config), model="gpt-realtime")


def test_session_created_has_the_documented_defaults() -> None:
    [created] = make().start()
    session = created["session"]
    assert created["type"] == "session.created"
    assert session["type"] == "realtime" and session["model"] == "gpt-realtime"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["transcription"] is None
    assert session["audio"]["output"]["voice"] == "alloy"


def test_session_update_deep_merges() -> None:
    conv = make()
    update = {
        "type": "realtime",
        "audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 0.7}}},
    }
    [updated] = conv.handle({"type": "session.update", "session": update})
    turn = updated["session"]["audio"]["input"]["turn_detection"]
    assert updated["type"] == "session.updated"
    assert turn["threshold"] == 0.7 and turn["silence_duration_ms"] == 500
    assert updated["session"]["audio"]["output"]["voice"] == "alloy"


@pytest.mark.parametrize(
    ("session", "code", "param"),
    [
        ({"audio": {"input": {"format": {"type": "audio/mp3"}}}}, "invalid_value", "session.audio.input.format.type"),
        ({"audio": {"output": {"voice": "bob"}}}, "invalid_value", "session.audio.output.voice"),
        ({"audio": {"input": {"turn_detection": {"type": "magic"}}}}, "invalid_value", "session.audio.input.turn_detection.type"),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 1.5}}}}, "decimal_above_max_value", "session.audio.input.turn_detection.threshold"),
        ({"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": "x"}}}}, "invalid_type", "session.audio.input.turn_detection.threshold"),
        ({"instructions": 5}, "invalid_type", "session.instructions"),
        ({"output_modalities": ["video"]}, "invalid_value", "session.output_modalities"),
        ({"colour": "red"}, "unknown_parameter", "session.colour"),
    ],
)  # fmt: skip
def test_invalid_session_update_is_refused_and_changes_nothing(
    session: dict[str, Any], code: str, param: str
) -> None:
    conv = make()
    before = conv.session
    [error] = conv.handle(
        {"type": "session.update", "event_id": "evt_1", "session": {"type": "realtime", **session}}
    )
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    assert error["error"]["event_id"] == "evt_1" and error["error"]["message"]
    assert conv.session == before


def test_session_update_requires_the_session_type() -> None:
    [error] = make().handle({"type": "session.update", "session": {"instructions": "x"}})
    assert (error["error"]["code"], error["error"]["param"]) == (
        "missing_required_parameter",
        "session.type",
    )


def test_text_response_lifecycle_in_order() -> None:
    conv = make()
    added = say(conv, "hello there")
    assert types(added) == ["conversation.item.added", "conversation.item.done"]
    events = reply(conv, output_modalities=["text"])
    assert types(events) == [
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "rate_limits.updated",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "You said: hello there."
    done = events[-2]["response"]
    assert done["status"] == "completed" and done["usage"]["total_tokens"] > 0
    assert events[2]["previous_item_id"] == added[0]["item"]["id"]


def test_audio_response_is_audible_pcm_in_chunks() -> None:
    conv = make()
    say(conv, "one two three")
    events = reply(conv)
    chunks = [
        base64.b64decode(e["delta"]) for e in events if e["type"] == "response.output_audio.delta"
    ]
    transcript = "".join(
        e["delta"] for e in events if e["type"] == "response.output_audio_transcript.delta"
    )
    assert transcript == "You said: one two three."
    assert all(len(c) == 4800 for c in chunks[:-1])  # 100 ms of 24 kHz PCM16
    pcm = np.frombuffer(b"".join(chunks), dtype="<i2")
    assert len(pcm) == 5 * (24000 * 333 // 1000)  # five words, a third of a second each
    assert np.abs(pcm).max() > 0.9 * TONE_AMPLITUDE * 32767
    assert types(events)[-7:] == [
        "response.output_audio.done",
        "response.output_audio_transcript.done",
        "response.content_part.done",
        "response.output_item.done",
        "conversation.item.done",
        "response.done",
        "rate_limits.updated",
    ]


def test_second_response_while_one_is_active_is_refused() -> None:
    conv = make()
    conv.handle({"type": "response.create"})
    [error] = conv.handle({"type": "response.create", "event_id": "e2"})
    assert error["error"]["code"] == "conversation_already_has_active_response"
    assert error["error"]["event_id"] == "e2"


def test_recap_lists_earlier_user_messages_including_created_items() -> None:
    conv = make()
    for text in ("alpha", "beta", "gamma"):
        say(conv, text)
        say(conv, "ok", role="assistant")
    say(conv, "please recap")
    assert text_of(reply(conv)) == "Earlier you said: alpha | beta | gamma"


def test_instructions_question_quotes_effective_instructions() -> None:
    conv = make()
    conv.handle(
        {"type": "session.update", "session": {"type": "realtime", "instructions": "Be brief."}}
    )
    say(conv, "instructions?")
    assert text_of(reply(conv)) == "Instructions: Be brief."
    say(conv, "instructions?")
    assert text_of(reply(conv, instructions="Per response.")) == "Instructions: Per response."


def test_script_rules_first_match_wins() -> None:
    rules = (Rule(match=r"weather", reply="Sunny."), Rule(match=r".", reply="Other."))
    conv = make(rules=rules)
    say(conv, "What's the WEATHER?")
    assert text_of(reply(conv)) == "Sunny."


def test_function_call_round_trip() -> None:
    rule = Rule(match="weather", tool_call=ToolCall("get_weather", {"city": "Oslo"}))
    conv = make(rules=(rule,))
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    conv.handle({"type": "session.update", "session": {"type": "realtime", "tools": [tool]}})
    say(conv, "weather in Oslo?")
    events = reply(conv)
    assert "response.function_call_arguments.delta" in types(events)
    done = next(e for e in events if e["type"] == "response.function_call_arguments.done")
    assert (done["name"], done["arguments"]) == ("get_weather", '{"city":"Oslo"}')
    output = {"type": "function_call_output", "call_id": done["call_id"], "output": "12 C and rain"}
    conv.handle({"type": "conversation.item.create", "item": output})
    assert text_of(reply(conv)) == "The get_weather tool says: 12 C and rain."


def test_rule_naming_an_unknown_tool_replies_with_text() -> None:
    conv = make(rules=(Rule(match="weather", tool_call=ToolCall("get_weather")),))
    say(conv, "weather?")
    assert "not available" in text_of(reply(conv))


def test_out_of_band_response_stays_out_of_the_conversation() -> None:
    conv = make()
    say(conv, "hi")
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "side"}]}
    events = reply(conv, conversation="none", input=[item], metadata={"k": "v"})
    assert "conversation.item.added" not in types(events)
    assert text_of(events) == "You said: side."
    assert events[0]["response"]["metadata"] == {"k": "v"}
    assert len(conv.items) == 1


def test_cancel_truncate_and_errors() -> None:
    conv = make()
    say(conv, "one two three four five six")
    conv.handle({"type": "response.create"})
    sent = [conv.next_step() for _ in range(8)]
    item_id = sent[1].event["item"]["id"]  # type: ignore[union-attr]
    cancel = conv.handle({"type": "response.cancel"})
    assert types(cancel)[-1] == "response.done"
    status = cancel[-1]["response"]["status_details"]
    assert (
        cancel[-1]["response"]["status"] == "cancelled" and status["reason"] == "client_cancelled"
    )
    assert conv.next_step() is None
    [again] = conv.handle({"type": "response.cancel"})
    assert again["error"]["code"] == "response_cancel_not_active"
    truncate = {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0}
    [past] = conv.handle({**truncate, "audio_end_ms": 100_000})
    assert (past["error"]["code"], past["error"]["param"]) == ("invalid_value", "audio_end_ms")
    [ok] = conv.handle({**truncate, "audio_end_ms": 150})
    assert ok == {**truncate, "type": "conversation.item.truncated", "audio_end_ms": 150}
    [unknown] = conv.handle({**truncate, "item_id": "nope", "audio_end_ms": 1})
    assert unknown["error"]["param"] == "item_id"


@pytest.mark.parametrize(
    ("frame", "code", "param"),
    [
        ("{nope", "invalid_json", None),
        ("[1, 2]", "invalid_type", None),
        ('{"event_id": "x"}', "missing_required_parameter", "type"),
        ('{"type": 7}', "invalid_type", "type"),
        ('{"type": "response.fly"}', "invalid_value", "type"),
        ('{"type": "input_audio_buffer.append"}', "missing_required_parameter", "audio"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_type", "audio"),
        ('{"type": "input_audio_buffer.append", "audio": "***"}', "invalid_value", "audio"),
        ('{"type": "conversation.item.create"}', "missing_required_parameter", "item"),
        ('{"type": "conversation.item.create", "item": {"type": "message", "role": "user"}}', "missing_required_parameter", "item.content"),
        ('{"type": "conversation.item.create", "item": {"type": "message", "role": "robot", "content": []}}', "invalid_value", "item.role"),
        ('{"type": "conversation.item.create", "item": {"type": "message", "role": "user", "content": [{"type": "input_text", "text": 1}]}}', "invalid_type", "item.content[0].text"),
        ('{"type": "conversation.item.truncate", "item_id": "a", "content_index": 0}', "missing_required_parameter", "audio_end_ms"),
        ('{"type": "response.create", "response": "now"}', "invalid_type", "response"),
        ('{"type": "input_audio_buffer.commit"}', "input_audio_buffer_commit_empty", None),
    ],
)  # fmt: skip
def test_malformed_events_get_service_like_errors(frame: str, code: str, param: str | None) -> None:
    conv = make()
    [error] = conv.receive(frame)
    assert error["type"] == "error"
    assert error["error"]["type"] == "invalid_request_error"
    assert (error["error"]["code"], error["error"]["param"]) == (code, param)
    say(conv, "still here")
    assert text_of(reply(conv)) == "You said: still here."


def test_beta_dialect_is_converted_on_the_way_in() -> None:
    conv = Conversation(EmulatorConfig(), model="dep", beta=True)
    session = {"modalities": ["text"], "input_audio_format": "g711_ulaw", "voice": "verse"}
    [updated] = conv.handle({"type": "session.update", "session": session})
    ga = updated["session"]
    assert ga["output_modalities"] == ["text"]
    assert ga["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert ga["audio"]["output"]["voice"] == "verse"
    [error] = conv.handle({"type": "session.update", "session": {"input_audio_format": "mp3"}})
    assert error["error"]["param"] == "session.input_audio_format"


def tone_turn(conv: Conversation) -> list[Event]:
    """A loud 600 ms tone and 800 ms of silence: one spoken turn to the VAD."""
    t = np.arange(24 * 600) / 24000
    tone = (0.3 * 32767 * np.sin(2 * np.pi * 440 * t)).astype("<i2").tobytes()
    audio = base64.b64encode(tone + bytes(48 * 800)).decode()
    return conv.handle({"type": "input_audio_buffer.append", "audio": audio})


TRANSCRIBED = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}


def test_input_transcription_streams_a_delta_per_word_then_completes() -> None:
    conv = make()
    conv.handle({"type": "session.update", "session": TRANSCRIBED})
    events = tone_turn(conv)
    deltas = [e["delta"] for e in events if e["type"].endswith("transcription.delta")]
    [done] = [e for e in events if e["type"].endswith("transcription.completed")]
    assert len(deltas) == 3 and "".join(deltas) == done["transcript"]
    assert done["transcript"].startswith("[speech ")


def test_a_failing_transcription_is_reported_and_leaves_no_transcript() -> None:
    conv = Conversation(EmulatorConfig(), model="gpt-realtime", fail_transcription=True)
    conv.handle({"type": "session.update", "session": TRANSCRIBED})
    events = tone_turn(conv)
    [failed] = [e for e in events if e["type"].startswith("conversation.item.input_audio_tr")]
    assert failed["type"] == "conversation.item.input_audio_transcription.failed"
    assert failed["error"]["type"] == "transcription_error"
    [user] = [item for item in conv.items if item["role"] == "user"]
    assert user["content"][0]["transcript"] is None


def test_reply_audio_deltas_vary_in_length_when_asked() -> None:
    conv = make(audio_chunks_ms=(10, 60, 20))
    say(conv, "one two three")
    events = reply(conv)
    sizes = [
        len(base64.b64decode(e["delta"]))
        for e in events
        if e["type"] == "response.output_audio.delta"
    ]
    assert sizes[:6] == [480, 2880, 960, 480, 2880, 960]  # 10, 60, 20 ms of 24 kHz PCM16
    assert sum(sizes) == 2 * 5 * (24000 * 333 // 1000)
