"""The ``/logs`` dialect and an operator's changes to a translator: pure, no event loop."""

from __future__ import annotations

import pytest

from rt_server.dialects.logs import Configure, LogsTranslator, Reply, ToolOutput, render_event
from rt_server.dialects.twilio import TwilioTranslator
from rt_server.errors import ClientError
from rt_server.profile import Profile
from rt_server.translate import CallConfig

SERVER_TOOL = {"type": "function", "name": "get_weather", "parameters": {}}
OPERATOR_TOOL = {"type": "function", "name": "lookup_account", "parameters": {}}


def test_ga_events_are_rendered_by_beta_names_without_audio() -> None:
    audio = {"type": "response.output_audio.delta", "item_id": "i1", "delta": "AAAA"}
    assert render_event(audio) == {"type": "response.audio.delta", "item_id": "i1"}
    part = {"type": "response.content_part.added", "part": {"type": "output_audio"}}
    assert render_event(part)["part"] == {"type": "audio"}
    added = {
        "type": "conversation.item.added",
        "item": {"id": "i2", "content": [{"type": "output_text", "text": "hi"}]},
    }
    assert render_event(added) == {
        "type": "conversation.item.created",
        "item": {"id": "i2", "content": [{"type": "text", "text": "hi"}]},
    }
    same = {"type": "input_audio_buffer.speech_started", "item_id": "i3"}
    assert render_event(same) is same  # nothing to rename: not copied
    assert audio["delta"] == "AAAA"  # the session's own event is left alone


def test_the_console_messages_parse_into_operations() -> None:
    console = LogsTranslator()
    update = console.client_text(
        '{"type":"session.update","session":{"instructions":"Be brief","voice":"ash",'
        '"turn_detection":null,"tools":[{"type":"function","name":"f"}]}}'
    )
    assert isinstance(update, Configure)
    assert update.config.profile == {"instructions": "Be brief", "voice": "ash"}
    assert update.config.tools == [{"type": "function", "name": "f"}]
    assert update.refused == ("turn_detection",)
    output = console.client_text(
        '{"type":"conversation.item.create","item":'
        '{"type":"function_call_output","call_id":"c1","output":"{}"}}'
    )
    assert output == ToolOutput("c1", "{}")
    assert console.client_text('{"type":"response.create"}') == Reply()
    with pytest.raises(ClientError) as bad:
        console.client_text('{"type":"session.update","session":{"voice":"robot"}}')
    assert bad.value.code == "invalid_field"


def test_an_operator_configuration_keeps_the_server_s_audio_and_tools() -> None:
    call = TwilioTranslator(Profile(instructions="Server says"), [SERVER_TOOL])
    config = CallConfig({"instructions": "Operator says", "voice": None}, [OPERATOR_TOOL])
    update = call.configure(config).backend[0]["session"]
    assert update["instructions"] == "Operator says"
    assert update["audio"]["output"]["voice"] == "alloy"  # None: unchanged
    assert update["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert [t["name"] for t in update["tools"]] == ["get_weather", "lookup_account"]
    shadow = CallConfig({}, [{"type": "function", "name": "get_weather"}])
    call.adopt(shadow)  # a server tool's name stays the server's
    assert call.operator_tools == []


def test_saved_configurations_merge() -> None:
    first = CallConfig({"instructions": "A", "voice": "ash"}, [OPERATOR_TOOL])
    later = first.merged(CallConfig({"instructions": "B", "voice": None}))
    assert later == CallConfig({"instructions": "B", "voice": "ash"}, [OPERATOR_TOOL])


def test_an_operator_tool_call_is_left_to_the_operator() -> None:
    call = TwilioTranslator(Profile(), [SERVER_TOOL])
    call.adopt(CallConfig({}, [OPERATOR_TOOL]))
    call.backend_event({"type": "response.created"}, 0.0)
    done = {
        "type": "response.done",
        "response": {
            "status": "completed",
            "output": [
                {"type": "function_call", "call_id": "c1", "name": "lookup_account"},
                {"type": "function_call", "call_id": "c2", "name": "get_weather"},
            ],
        },
    }
    out = call.backend_event(done, 0.0)
    assert [c.name for c in out.calls] == ["get_weather"]  # the server runs only its own
    assert call.pending_calls == {"c1", "c2"}
    answered = call.operator_output("c1", '{"ok":true}')
    assert answered.backend[0]["item"]["call_id"] == "c1"
    assert answered.notes[0].data["name"] == "lookup_account"
    assert not [e for e in answered.backend if e["type"] == "response.create"]
    assert call.operator_reply().backend == []  # c2 is still running: asked for later
