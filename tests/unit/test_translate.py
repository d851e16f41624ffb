"""The pure translation core: no event loop, no sockets."""

from __future__ import annotations

import base64

import pytest

from rt_server.context import message
from rt_server.dialects.conversation import ConversationTranslator
from rt_server.dialects.realtime import RealtimeTranslator
from rt_server.errors import BackendError, ClientError
from rt_server.profile import Profile
from rt_server.translate import Outbox


def audio_delta(item: str, pcm: bytes) -> dict[str, object]:
    return {
        "type": "response.output_audio.delta",
        "item_id": item,
        "content_index": 0,
        "delta": base64.b64encode(pcm).decode(),
    }


def test_session_update_configures_audio_transcription_vad_and_voice() -> None:
    session = RealtimeTranslator(Profile(voice="verse", instructions="Be brief.")).session_update()
    assert session["type"] == "session.update"
    body = session["session"]
    assert body["instructions"] == "Be brief."
    assert body["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    assert body["audio"]["output"] == {
        "format": {"type": "audio/pcm", "rate": 24000},
        "voice": "verse",
    }
    assert body["audio"]["input"]["transcription"]["model"] == "whisper-1"
    assert body["audio"]["input"]["turn_detection"]["type"] == "server_vad"


def test_connected_follows_the_first_session_updated_only() -> None:
    t = RealtimeTranslator(Profile(greeting="Hello there"))
    assert t.setup_event({"type": "session.created"}, 0.0) == Outbox()
    first = t.setup_event({"type": "session.updated"}, 0.0)
    assert first.client == [{"type": "control", "action": "connected", "greeting": "Hello there"}]
    assert first.configured
    again = t.setup_event({"type": "session.updated"}, 0.0)  # a reconnect
    assert again.client == [] and again.configured
    assert t.backend_event({"type": "session.updated"}, 0.0) == Outbox()


def test_a_refused_session_update_is_a_backend_error() -> None:
    refused = {"type": "error", "error": {"message": "bad voice"}}
    with pytest.raises(BackendError) as caught:
        RealtimeTranslator(Profile()).setup_event(refused, 0.0)
    assert caught.value.code == "backend_error"
    assert "bad voice" in caught.value.message


def test_user_message_becomes_item_and_response() -> None:
    out = RealtimeTranslator(Profile()).client_text('{"type":"user_message","text":"hello"}', 0.0)
    assert out.backend == [
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hello"}],
            },
        },
        {"type": "response.create"},
    ]
    assert out.client == []


def test_a_question_typed_over_an_answer_is_answered_after_it() -> None:
    t = RealtimeTranslator(Profile())
    first = t.client_text('{"type":"user_message","text":"one"}', 0.0)
    assert [e["type"] for e in first.backend] == ["conversation.item.create", "response.create"]
    # Before the backend even said response.created, a second question must not ask for a
    # second response: the Realtime API refuses one while another is active.
    second = t.client_text('{"type":"user_message","text":"two"}', 0.0)
    assert [e["type"] for e in second.backend] == ["conversation.item.create"]
    t.backend_event({"type": "response.created"}, 0.0)
    done = t.backend_event({"type": "response.done", "response": {"status": "completed"}}, 0.0)
    assert done.backend == [{"type": "response.create"}]
    assert t.responding
    last = t.backend_event({"type": "response.done", "response": {"status": "completed"}}, 0.0)
    assert last.backend == []


def test_a_reply_still_due_is_asked_for_on_a_fresh_backend() -> None:
    t = RealtimeTranslator(Profile())
    t.client_text('{"type":"user_message","text":"one"}', 0.0)
    t.client_text('{"type":"user_message","text":"two"}', 0.0)
    # The backend dropped before answering: the new one runs nothing yet.
    assert t.resume().backend == [{"type": "response.create"}]
    assert t.resume().backend == []


def test_audio_frames_are_appended_byte_exact() -> None:
    pcm = bytes(range(256)) * 4
    out = RealtimeTranslator(Profile()).client_audio(pcm, 0.0)
    assert out.backend == [
        {"type": "input_audio_buffer.append", "audio": base64.b64encode(pcm).decode()}
    ]


def appended(out: Outbox) -> bytes:
    events = [e for e in out.backend if e["type"] == "input_audio_buffer.append"]
    return b"".join(base64.b64decode(e["audio"]) for e in events)


def test_tiny_frames_are_joined_into_appends_of_at_least_coalesce_ms() -> None:
    t = RealtimeTranslator(Profile(), coalesce_ms=20)  # 960 bytes at 24 kHz PCM16
    frames = [bytes([n]) * 480 for n in range(5)]  # 10 ms each
    outs = [t.client_audio(frame, 0.0) for frame in frames]
    assert [len(out.backend) for out in outs] == [0, 1, 0, 1, 0]
    assert appended(outs[1]) == frames[0] + frames[1]
    assert appended(outs[3]) == frames[2] + frames[3]
    # Push-to-talk: the commit takes what is held with it, before the commit.
    commit = t.client_text('{"type":"control","action":"commit"}', 0.0)
    assert [e["type"] for e in commit.backend] == [
        "input_audio_buffer.append",
        "input_audio_buffer.commit",
    ]
    assert appended(commit) == frames[4]


def test_frames_of_coalesce_ms_or_more_go_at_once() -> None:
    t = RealtimeTranslator(Profile(), coalesce_ms=20)
    for size in (960, 1920, 962):
        assert appended(t.client_audio(b"\x05" * size, 0.0)) == b"\x05" * size
    assert [e["type"] for e in t.commit().backend] == ["input_audio_buffer.commit"]


def test_no_coalescing_appends_every_frame() -> None:
    t = RealtimeTranslator(Profile(), coalesce_ms=0)
    assert appended(t.client_audio(b"\x01\x02", 0.0)) == b"\x01\x02"


@pytest.mark.parametrize("pcm", [b"", b"\x01", b"\x01\x02\x03"])
def test_empty_or_odd_audio_frames_are_refused(pcm: bytes) -> None:
    with pytest.raises(ClientError) as caught:
        RealtimeTranslator(Profile()).client_audio(pcm, 0.0)
    assert caught.value.code == "invalid_audio"


def test_base64_audio_message_is_the_same_as_a_binary_frame() -> None:
    t = RealtimeTranslator(Profile())
    out = t.client_text('{"type":"audio","audio":"AAEC/w=="}', 0.0)
    assert out.backend == t.client_audio(b"\x00\x01\x02\xff", 0.0).backend
    with pytest.raises(ClientError) as caught:
        t.client_text('{"type":"audio","audio":"not base64!"}', 0.0)
    assert caught.value.code == "invalid_audio"


def test_text_and_transcript_deltas_share_one_id_per_content_part() -> None:
    t = RealtimeTranslator(Profile())
    delta = {"type": "response.output_audio_transcript.delta", "item_id": "it", "content_index": 1}
    out = t.backend_event({**delta, "delta": "Hi"}, 0.0)
    assert out.client == [{"type": "text_delta", "id": "it-1", "delta": "Hi"}]
    text = {"type": "response.output_text.delta", "item_id": "x", "content_index": 0, "delta": "a"}
    assert t.backend_event(text, 0.0).client == [{"type": "text_delta", "id": "x-0", "delta": "a"}]
    done = {"type": "response.output_audio_transcript.done", "item_id": "it", "content_index": 1}
    out = t.backend_event({**done, "transcript": "Hi there"}, 0.0)
    assert out.client == [{"type": "control", "action": "text_done", "id": "it-1"}]
    assert t.history.items == [message("assistant", "Hi there")]


def test_transcription_names_the_input_item() -> None:
    t = RealtimeTranslator(Profile())
    event = {
        "type": "conversation.item.input_audio_transcription.completed",
        "item_id": "in1",
        "content_index": 0,
        "transcript": "what time is it",
    }
    assert t.backend_event(event, 0.0).client == [
        {"type": "transcription", "id": "in1", "text": "what time is it"}
    ]
    assert t.history.items == [message("user", "what time is it")]


def test_audio_deltas_become_binary_frames() -> None:
    out = RealtimeTranslator(Profile()).backend_event(audio_delta("a1", b"\x01\x02" * 10), 0.0)
    assert out.client == [b"\x01\x02" * 10]


def test_barge_in_truncates_at_wall_clock_when_audio_is_ahead() -> None:
    t = RealtimeTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    t.backend_event(audio_delta("a1", bytes(48 * 2000)), 10.0)  # 2 s sent at once
    out = t.backend_event({"type": "input_audio_buffer.speech_started"}, 10.75)
    assert out.client == [{"type": "control", "action": "speech_started"}]
    [truncate] = out.backend
    assert truncate["type"] == "conversation.item.truncate"
    assert (truncate["item_id"], truncate["content_index"], truncate["audio_end_ms"]) == (
        "a1",
        0,
        750,
    )


def test_barge_in_never_truncates_past_the_audio_sent() -> None:
    t = RealtimeTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    t.backend_event(audio_delta("a1", bytes(48 * 300)), 10.0)  # 300 ms sent
    out = t.backend_event({"type": "input_audio_buffer.speech_started"}, 15.0)
    assert out.backend[0]["audio_end_ms"] == 300


def test_audio_after_barge_in_is_dropped_for_the_cut_item() -> None:
    t = RealtimeTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    t.backend_event(audio_delta("a1", bytes(4800)), 1.0)
    t.backend_event({"type": "input_audio_buffer.speech_started"}, 1.05)
    assert t.backend_event(audio_delta("a1", bytes(4800)), 1.06).client == []
    assert t.backend_event(audio_delta("a2", bytes(4800)), 1.07).client == [bytes(4800)]


def test_no_truncate_when_a_finished_reply_was_heard_in_full() -> None:
    t = RealtimeTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    t.backend_event(audio_delta("a1", bytes(48 * 100)), 1.0)
    t.backend_event({"type": "response.done"}, 1.0)
    out = t.backend_event({"type": "input_audio_buffer.speech_started"}, 5.0)
    assert out.backend == []
    assert out.client == [{"type": "control", "action": "speech_started"}]


def test_second_item_queues_behind_the_first_for_heard_time() -> None:
    t = RealtimeTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    t.backend_event(audio_delta("a1", bytes(48 * 1000)), 0.0)  # plays 0..1 s
    t.backend_event(audio_delta("a2", bytes(48 * 1000)), 0.1)  # plays 1..2 s
    out = t.backend_event({"type": "input_audio_buffer.speech_started"}, 1.25)
    assert out.backend[0]["item_id"] == "a2"
    assert out.backend[0]["audio_end_ms"] == 250


def test_interrupt_cancels_and_truncates() -> None:
    t = RealtimeTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    t.backend_event(audio_delta("a1", bytes(48 * 1000)), 0.0)
    out = t.client_text('{"type": "control", "action": "interrupt"}', 0.5)
    assert [e["type"] for e in out.backend] == ["response.cancel", "conversation.item.truncate"]
    assert out.backend[1]["audio_end_ms"] == 500


def test_backend_errors_reach_the_client_but_not_those_of_internal_events() -> None:
    t = RealtimeTranslator(Profile())
    error = {"type": "error", "error": {"message": "Bad thing", "code": "x", "event_id": "e1"}}
    assert t.backend_event(error, 0.0).client == [
        {"type": "error", "code": "backend_error", "message": "Bad thing"}
    ]
    internal = {"type": "error", "error": {"message": "No response", "event_id": "rt_3"}}
    assert t.backend_event(internal, 0.0).client == []


def test_unknown_backend_events_map_to_nothing() -> None:
    out = RealtimeTranslator(Profile()).backend_event({"type": "output_audio_buffer.started"}, 0.0)
    assert out.client == [] and out.backend == []


def test_restore_replays_the_conversation_after_the_session_config() -> None:
    t = RealtimeTranslator(Profile())
    t.client_text('{"type":"user_message","text":"my name is Ada"}', 0.0)
    done = {"type": "response.output_text.done", "item_id": "i", "content_index": 0}
    t.backend_event({**done, "text": "Hello Ada"}, 0.0)
    events = t.restore()
    assert events[0]["type"] == "session.update"
    assert [(e["item"]["role"], e["item"]["content"][0]) for e in events[1:]] == [
        ("user", {"type": "input_text", "text": "my name is Ada"}),
        ("assistant", {"type": "output_text", "text": "Hello Ada"}),
    ]


def test_interrupt_is_answered_by_the_cut_parts_done_then_interrupted() -> None:
    t = RealtimeTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    delta = {"type": "response.output_audio_transcript.delta", "item_id": "a1", "content_index": 0}
    t.backend_event({**delta, "delta": "Once upon "}, 0.0)
    t.backend_event(audio_delta("a1", bytes(48 * 1000)), 0.0)
    out = t.client_text('{"type": "control", "action": "interrupt"}', 0.5)
    assert out.client == [
        {"type": "control", "action": "text_done", "id": "a1-0"},
        {"type": "control", "action": "interrupted"},
    ]
    [cut] = [note for note in out.notes if note.kind == "assistant_text"]
    assert cut.data == {"item_id": "a1", "text": "Once upon ", "cut": True}
    # What the backend still sends of the cut part is not passed on, nor told twice.
    assert t.backend_event({**delta, "delta": "a time"}, 0.6).client == []
    done = {"type": "response.output_audio_transcript.done", "item_id": "a1", "content_index": 0}
    assert t.backend_event({**done, "transcript": "Once upon a time"}, 0.6).client == []
    assert t.backend_event({"type": "response.done", "response": {}}, 0.7).client == []


def test_interrupt_on_the_conversation_dialect_ends_with_response_done() -> None:
    t = ConversationTranslator(Profile())
    t.backend_event({"type": "response.created"}, 0.0)
    out = t.client_text('{"type": "control", "action": "interrupt"}', 0.5)
    assert out.client == [
        {"type": "response_done", "status": "cancelled", "message": "AI response cancelled"},
        {"type": "control", "action": "interrupted"},
    ]
    done = {"type": "response.done", "response": {"status": "cancelled"}}
    assert t.backend_event(done, 0.6).client == []
    # Nothing playing and nothing running: only the answer.
    assert t.client_text('{"type": "control", "action": "interrupt"}', 1.0).client == [
        {"type": "control", "action": "interrupted"}
    ]


def test_transcript_deltas_show_the_transcript_so_far_and_a_failure_is_an_error() -> None:
    t = RealtimeTranslator(Profile())
    delta = {"type": "conversation.item.input_audio_transcription.delta", "item_id": "in1"}
    assert t.backend_event({**delta, "delta": "book"}, 0.0).client == [
        {"type": "transcription", "id": "in1", "text": "book", "partial": True}
    ]
    assert t.backend_event({**delta, "delta": " a table"}, 0.0).client == [
        {"type": "transcription", "id": "in1", "text": "book a table", "partial": True}
    ]
    t.backend_event({"type": "input_audio_buffer.committed", "item_id": "in2"}, 0.0)
    failed = {
        "type": "conversation.item.input_audio_transcription.failed",
        "item_id": "in2",
        "error": {"message": "unintelligible"},
    }
    out = t.backend_event(failed, 0.0)
    [error] = out.client
    assert isinstance(error, dict) and error["code"] == "transcription_failed"
    assert t.restore()[1:] == []  # nothing to restore of either turn yet
