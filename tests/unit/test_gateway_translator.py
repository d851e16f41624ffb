"""The gateway translator on its own (no event loop, no socket): what passes through as it
arrived, what the server's policy refuses, what of a server tool the client never sees;
and the preview backend's beta events in the GA shape."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from rt_server.backends.preview import from_beta
from rt_server.dialects.gateway import GatewayTranslator
from rt_server.profile import Profile
from rt_server.translate import RawEvent, raw_event

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


def gateway(**profile: Any) -> GatewayTranslator:
    return GatewayTranslator(Profile(**profile), [WEATHER])


def sent(event: dict[str, Any]) -> str:
    return orjson.dumps(event).decode()


def from_backend(event: dict[str, Any]) -> RawEvent:
    """A GA backend's event, as its socket hands it on: with its own text."""
    return raw_event(event, orjson.dumps(event))


def test_an_event_with_nothing_to_change_is_forwarded_as_its_own_text() -> None:
    t = gateway()
    text = '{"type": "input_audio_buffer.clear",  "event_id": "e1"}'  # spacing kept
    [forwarded] = t.client_text(text, 0.0).backend
    assert isinstance(forwarded, RawEvent) and forwarded.raw == text.encode()
    delta = from_backend({"type": "response.output_text.delta", "item_id": "i", "delta": "Hi"})
    assert t.backend_event(delta, 0.0).client == [delta.raw.decode()]


def test_appended_audio_is_counted_without_decoding_and_forwarded_as_sent() -> None:
    t = gateway()
    audio = base64.b64encode(bytes(4800)).decode()  # 100 ms of PCM16 at 24 kHz
    text = sent({"type": "input_audio_buffer.append", "audio": audio})
    out = t.client_text(text, 0.0)
    [forwarded] = out.backend
    assert isinstance(forwarded, RawEvent) and forwarded.raw == text.encode()
    assert out.audio_in_ms == pytest.approx(100.0)


def test_a_client_chosen_input_format_changes_how_audio_is_counted() -> None:
    t = gateway()
    session = {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}
    t.backend_event({"type": "session.updated", "session": session}, 0.0)
    audio = base64.b64encode(bytes(800)).decode()  # 100 ms of G.711 at 8 kHz
    out = t.client_text(sent({"type": "input_audio_buffer.append", "audio": audio}), 0.0)
    assert out.audio_in_ms == pytest.approx(100.0)


@pytest.mark.parametrize(
    ("event", "param"),
    [
        ({"type": "session.update", "session": {"instructions": "x"}}, "session.instructions"),
        (
            {"type": "session.update", "session": {"audio": {"output": {"voice": "ash"}}}},
            "session.audio.output.voice",
        ),
        (
            {"type": "response.create", "response": {"instructions": "x"}},
            "response.instructions",
        ),
    ],
)
def test_a_locked_field_is_refused_and_nothing_is_forwarded(
    event: dict[str, Any], param: str
) -> None:
    t = gateway(gateway_locked=("instructions", "voice"))
    out = t.client_text(sent({**event, "event_id": "client_7"}), 0.0)
    assert out.backend == []
    [error] = out.client
    assert isinstance(error, dict)
    assert error["error"]["code"] == "locked_field"
    assert (error["error"]["param"], error["error"]["event_id"]) == (param, "client_7")
    assert [note.kind for note in out.notes] == ["error"]


def test_a_locked_parent_does_not_lock_a_sibling() -> None:
    t = gateway(gateway_locked=("voice",))
    update = {"type": "session.update", "session": {"audio": {"input": {"noise_reduction": None}}}}
    assert len(t.client_text(sent(update), 0.0).backend) == 1


def test_client_tools_are_sent_with_the_servers_and_may_not_take_their_names() -> None:
    t = gateway()
    mine = {"type": "function", "name": "look_up_order"}
    [update] = t.client_text(
        sent({"type": "session.update", "session": {"tools": [mine]}}), 0.0
    ).backend
    assert not isinstance(update, RawEvent)  # changed, so encoded again
    assert [tool["name"] for tool in update["session"]["tools"]] == ["look_up_order", "get_weather"]
    clash = t.client_text(sent({"type": "session.update", "session": {"tools": [WEATHER]}}), 0.0)
    assert clash.backend == []
    [error] = clash.client
    assert isinstance(error, dict) and error["error"]["param"] == "session.tools[0].name"


def test_malformed_events_and_binary_frames_get_errors_not_forwarded() -> None:
    t = gateway()
    for raw, code in (
        ("nope", "invalid_json"),
        ("[]", "not_an_object"),
        ("{}", "missing_type"),
        ('{"type": "conversation.item.create"}', "missing_field"),
        ('{"type": "session.update", "session": []}', "invalid_field"),
        ('{"type": "input_audio_buffer.append", "audio": 5}', "invalid_field"),
    ):
        out = t.client_text(raw, 0.0)
        [error] = out.client
        assert out.backend == []
        assert isinstance(error, dict) and error["error"]["code"] == code, raw
    out = t.client_text('{"type": "response.create", "response": 1}', 0.0)
    [error] = out.client
    assert isinstance(error, dict) and error["error"]["param"] == "response"
    out = t.client_audio(b"\x00\x01", 0.0)
    [error] = out.client
    assert isinstance(error, dict) and error["error"]["code"] == "invalid_audio"


def test_the_client_hears_session_created_with_the_configured_session_only() -> None:
    t = gateway(instructions="Be Contoso.")
    created = {"type": "session.created", "event_id": "b1", "session": {"instructions": "none"}}
    assert t.setup_event(created, 0.0).client == []
    session = {"instructions": "Be Contoso.", "tools": [WEATHER]}
    out = t.setup_event({"type": "session.updated", "event_id": "b2", "session": session}, 0.0)
    assert out.configured
    [hello] = out.client
    assert isinstance(hello, dict)
    assert (hello["type"], hello["event_id"]) == ("session.created", "b1")
    assert hello["session"] == {"instructions": "Be Contoso.", "tools": []}


def call_item(name: str) -> dict[str, Any]:
    return {"id": f"item_{name}", "type": "function_call", "name": name, "call_id": f"c_{name}"}


def test_a_server_tools_events_are_hidden_and_it_runs_on_the_server() -> None:
    t = gateway()
    item = call_item("get_weather")
    for event in (
        {"type": "response.output_item.added", "item": item},
        {"type": "conversation.item.added", "item": item},
        {"type": "response.function_call_arguments.delta", "item_id": item["id"], "delta": "{"},
        {"type": "response.function_call_arguments.done", "item_id": item["id"]},
        {"type": "response.output_item.done", "item": item},
    ):
        assert t.backend_event(from_backend(event), 0.0).client == [], event["type"]
    done = {
        "type": "response.done",
        "response": {"status": "completed", "output": [{**item, "arguments": "{}"}]},
    }
    out = t.backend_event(from_backend(done), 0.0)
    [call] = out.calls
    assert call.name == "get_weather"
    [shown] = out.client
    assert isinstance(shown, dict) and shown["response"]["output"] == []
    # Its output goes back to the model; the item it makes is hidden too.
    result = t.tool_result(call, '{"sky": "clear"}')
    assert [event["type"] for event in result.backend] == [
        "conversation.item.create",
        "response.create",
    ]
    output_item = {"id": "item_out", "type": "function_call_output", "call_id": call.call_id}
    added = {"type": "conversation.item.added", "item": output_item}
    assert t.backend_event(from_backend(added), 0.0).client == []


def test_the_clients_own_tool_call_reaches_it_and_is_noted() -> None:
    t = gateway()
    item = call_item("look_up_order")
    added = from_backend({"type": "response.output_item.added", "item": item})
    assert t.backend_event(added, 0.0).client == [added.raw.decode()]
    done = from_backend(
        {"type": "response.done", "response": {"status": "completed", "output": [item]}}
    )
    out = t.backend_event(done, 0.0)
    assert out.calls == []
    assert out.client == [done.raw.decode()]
    [note] = out.notes
    assert note.kind == "tool_call" and note.data["client"] is True


def test_show_tool_calls_hides_nothing() -> None:
    t = gateway(show_tool_calls=True)
    added = from_backend({"type": "response.output_item.added", "item": call_item("get_weather")})
    assert t.backend_event(added, 0.0).client == [added.raw.decode()]


def test_an_error_about_the_servers_own_request_is_not_forwarded() -> None:
    t = gateway()
    ours = {"type": "error", "error": {"message": "busy", "event_id": "rt_1"}}
    theirs = from_backend({"type": "error", "error": {"message": "bad", "event_id": "evt_1"}})
    assert t.backend_event(ours, 0.0).client == []
    assert t.backend_event(theirs, 0.0).client == [theirs.raw.decode()]


def test_preview_events_arrive_in_the_ga_shape() -> None:
    beta_session = {
        "id": "s1",
        "modalities": ["text", "audio"],
        "voice": "marin",
        "input_audio_format": "pcm16",
        "output_audio_format": "g711_ulaw",
        "turn_detection": {"type": "server_vad"},
        "max_response_output_tokens": 100,
    }
    session = from_beta({"type": "session.updated", "session": beta_session})["session"]
    assert session["output_modalities"] == ["audio"]
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert session["audio"]["output"] == {"voice": "marin", "format": {"type": "audio/pcmu"}}
    assert session["audio"]["input"]["turn_detection"] == {"type": "server_vad"}
    assert session["max_output_tokens"] == 100
    item = {"role": "assistant", "content": [{"type": "audio", "transcript": "hi"}]}
    added = from_beta({"type": "conversation.item.created", "item": item})
    assert added["type"] == "conversation.item.added"
    assert added["item"]["content"][0]["type"] == "output_audio"
    part = from_beta({"type": "response.content_part.added", "part": {"type": "text"}})
    assert part["part"]["type"] == "output_text"
    response = from_beta(
        {"type": "response.done", "response": {"modalities": ["text"], "output": [item]}}
    )["response"]
    assert response["output_modalities"] == ["text"]
    assert response["output"][0]["content"][0]["type"] == "output_audio"


def test_a_malformed_client_event_reaches_a_preview_backend_as_it_is() -> None:
    from rt_server.backends.azure import AzureBackend

    backend = AzureBackend(
        endpoint="http://127.0.0.1:1", deployment="d", api_key="k", api_version="2025-04-01"
    )
    bad = {"type": "session.update", "session": {"audio": {"input": {"format": "pcm16"}}}}
    assert backend.emit(bad) is bad  # the service answers it with an error event
    good = {"type": "session.update", "session": {"audio": {"output": {"voice": "ash"}}}}
    assert backend.emit(good)["session"] == {"voice": "ash"}


def test_a_ga_response_create_reaches_a_preview_backend_in_the_beta_shape() -> None:
    from rt_server.backends.preview import to_beta

    ga = {
        "output_modalities": ["text"],
        "audio": {"output": {"voice": "ash", "format": {"type": "audio/pcmu"}}},
        "max_output_tokens": 50,
        "input": [{"role": "assistant", "content": [{"type": "output_audio"}]}],
    }
    beta = to_beta({"type": "response.create", "response": ga})["response"]
    assert beta == {
        "modalities": ["text"],
        "voice": "ash",
        "output_audio_format": "g711_ulaw",
        "max_response_output_tokens": 50,
        "input": [{"role": "assistant", "content": [{"type": "audio"}]}],
    }


def test_the_audio_recording_stops_when_the_client_changes_the_format() -> None:
    t = GatewayTranslator(Profile(), record_audio=True)
    session = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 24000}}}}
    t.backend_event({"type": "session.updated", "session": session}, 0.0)
    assert t.record_audio
    session = {"audio": {"input": {"format": {"type": "audio/pcmu"}}}}
    t.backend_event({"type": "session.updated", "session": session}, 0.0)
    assert not t.record_audio
    audio = base64.b64encode(bytes(800)).decode()
    assert (
        t.client_text(sent({"type": "input_audio_buffer.append", "audio": audio}), 0.0).recorded
        == []
    )
