"""The Twilio dialect, pure: Media Streams events in, Realtime events and Twilio messages out."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from rt_server.dialects.twilio import TwilioTranslator
from rt_server.profile import Profile
from rt_server.translate import Close, Outbox

SID = "MZ0123"


def frame(event: str, **fields: Any) -> str:
    return orjson.dumps(
        {"event": event, "streamSid": SID, "sequenceNumber": "1", **fields}
    ).decode()


def start(translator: TwilioTranslator, now: float = 0.0) -> Outbox:
    details = {
        "streamSid": SID,
        "callSid": "CA1",
        "accountSid": "AC1",
        "tracks": ["inbound"],
        "customParameters": {"caller": "+15550100"},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    }
    return translator.client_text(frame("start", start=details), now)


def media(translator: TwilioTranslator, timestamp: int, payload: str = "f39/fw==") -> Outbox:
    body = {"track": "inbound", "chunk": "1", "timestamp": str(timestamp), "payload": payload}
    return translator.client_text(frame("media", media=body), 0.0)


def delta(item_id: str, ms: int) -> dict[str, Any]:
    audio = base64.b64encode(b"\x7f" * (8 * ms)).decode()
    return {"type": "response.output_audio.delta", "item_id": item_id, "delta": audio}


def mark(translator: TwilioTranslator, name: str, now: float = 0.0) -> Outbox:
    return translator.client_text(frame("mark", mark={"name": name}), now)


@pytest.fixture
def translator() -> TwilioTranslator:
    t = TwilioTranslator(Profile())
    t.backend_event({"type": "session.updated"}, 0.0)
    return t


def test_the_backend_session_speaks_mulaw_both_ways(translator: TwilioTranslator) -> None:
    audio = translator.session_update()["session"]["audio"]
    assert audio["input"]["format"] == {"type": "audio/pcmu"}
    assert audio["output"]["format"] == {"type": "audio/pcmu"}
    assert translator.bytes_per_ms == 8


def test_connected_renders_nothing() -> None:
    t = TwilioTranslator(Profile(greeting="hello"))
    assert t.backend_event({"type": "session.updated"}, 0.0).client == []
    assert t.client_text('{"event":"connected","protocol":"Call","version":"1.0.0"}', 0.0) == (
        Outbox()
    )


def test_start_records_the_stream(translator: TwilioTranslator) -> None:
    assert start(translator) == Outbox()
    assert (translator.stream_sid, translator.call_sid) == (SID, "CA1")
    assert translator.parameters == {"caller": "+15550100"}


def test_caller_audio_is_forwarded_as_it_came(translator: TwilioTranslator) -> None:
    start(translator)
    out = media(translator, 40, payload="f39/fw==")
    assert out.backend == [{"type": "input_audio_buffer.append", "audio": "f39/fw=="}]
    assert translator.clock_ms == 40.0


def test_reply_audio_becomes_media_then_a_mark(translator: TwilioTranslator) -> None:
    start(translator)
    event = delta("item_a", 100)
    out = translator.backend_event(event, 0.0)
    assert out.client == [
        {"event": "media", "streamSid": SID, "media": {"payload": event["delta"]}},
        {"event": "mark", "streamSid": SID, "mark": {"name": "m1"}},
    ]
    assert translator.playback is not None and translator.playback.ms_sent == 100.0


@pytest.mark.parametrize(
    "raw",
    [
        "{not json",
        "[1, 2]",
        "{}",
        '{"event": 5}',
        '{"event": "media"}',
        '{"event": "media", "media": {"payload": 7}}',
        '{"event": "start", "start": {}}',
        b"\xff\xfe",
    ],
)
def test_malformed_frames_are_skipped_without_an_error(
    translator: TwilioTranslator, raw: str | bytes
) -> None:
    assert translator.client_text(raw, 0.0) == Outbox()


def test_unknown_events_are_ignored(translator: TwilioTranslator) -> None:
    assert translator.client_text(frame("transcription", text="hi"), 0.0) == Outbox()


def test_binary_frames_are_skipped(translator: TwilioTranslator) -> None:
    assert translator.client_audio(b"\x00\x01", 0.0) == Outbox()


def test_a_key_becomes_a_user_turn_that_is_answered(translator: TwilioTranslator) -> None:
    out = translator.client_text(frame("dtmf", dtmf={"digit": "5", "track": "inbound_track"}), 0.0)
    [item, reply] = out.backend
    assert item["item"]["content"] == [{"type": "input_text", "text": "The caller pressed 5"}]
    assert reply == {"type": "response.create"}
    [note] = out.notes
    assert (note.kind, dict(note.data)) == (
        "user_text",
        {"text": "The caller pressed 5", "dtmf": "5"},
    )


def test_keys_are_ignored_with_dtmf_ignore_and_unknown_keys_always() -> None:
    t = TwilioTranslator(Profile(), dtmf="ignore")
    assert t.client_text(frame("dtmf", dtmf={"digit": "5"}), 0.0) == Outbox()
    t = TwilioTranslator(Profile())
    assert t.client_text(frame("dtmf", dtmf={"digit": "x"}), 0.0) == Outbox()


def payloads(out: Outbox) -> list[int]:
    """Milliseconds of mu-law in each media frame of ``out``."""
    frames = [f for f in out.client if isinstance(f, dict) and f["event"] == "media"]
    return [len(base64.b64decode(f["media"]["payload"])) // 8 for f in frames]


def test_short_deltas_after_the_first_are_joined_into_frames_of_frame_ms(
    translator: TwilioTranslator,
) -> None:
    start(translator)
    sent = [payloads(translator.backend_event(delta("a1", ms), 0.0)) for ms in (10, 10, 20, 30, 60)]
    assert sent == [[10], [], [], [60], [60]]  # the first at once; 10+20+30; a long one as is
    assert payloads(translator.backend_event(delta("a1", 10), 0.0)) == []
    done = {"type": "response.output_audio.done", "item_id": "a1"}
    assert payloads(translator.backend_event(done, 0.0)) == [10]  # the rest, at the item's end
    assert translator.playback is not None and translator.playback.ms_sent == 140
    assert payloads(translator.backend_event(delta("a2", 5), 0.0)) == [5]  # a new item's first


def test_held_audio_goes_before_the_next_item_and_never_after_a_cut(
    translator: TwilioTranslator,
) -> None:
    start(translator)
    translator.backend_event({"type": "response.created"}, 0.0)
    translator.backend_event(delta("a1", 20), 0.0)
    assert payloads(translator.backend_event(delta("a1", 20), 0.0)) == []
    assert payloads(translator.backend_event(delta("a2", 20), 0.0)) == [20, 20]
    assert payloads(translator.backend_event(delta("a2", 20), 0.0)) == []
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    [truncate] = out.backend
    assert truncate["item_id"] == "a2" and truncate["audio_end_ms"] <= 20  # held audio not counted
    done = {"type": "response.done", "response": {"status": "cancelled"}}
    assert payloads(translator.backend_event(done, 0.0)) == []


def test_phone_frame_ms_zero_sends_every_delta_as_it_came() -> None:
    t = TwilioTranslator(Profile(), frame_ms=0)
    start(t)
    assert [payloads(t.backend_event(delta("a1", 10), 0.0)) for _ in range(3)] == [[10]] * 3


def test_stop_ends_the_session(translator: TwilioTranslator) -> None:
    start(translator)
    out = translator.client_text(frame("stop", stop={"accountSid": "AC1", "callSid": "CA1"}), 0.0)
    assert out.close == Close(1000, "call ended")


def test_reply_audio_before_start_is_held_then_sent(translator: TwilioTranslator) -> None:
    first, second = delta("welcome", 100), delta("welcome", 100)
    assert translator.backend_event(first, 0.0).client == []
    assert translator.backend_event(second, 0.0).client == []
    sent = [m for m in start(translator).client if not isinstance(m, bytes | str)]
    assert [m["event"] for m in sent] == ["media", "mark", "media", "mark"]
    assert all(m["streamSid"] == SID for m in sent)
    assert sent[0]["media"]["payload"] == first["delta"]


def test_held_audio_is_bounded(translator: TwilioTranslator) -> None:
    for _ in range(150):  # 15 s of audio; 10 s are kept
        translator.backend_event(delta("welcome", 100), 0.0)
    assert len(start(translator).client) == 2 * 100


def test_barge_in_clears_and_truncates_at_the_played_mark_plus_twilio_time(
    translator: TwilioTranslator,
) -> None:
    start(translator)
    media(translator, 1000)
    for _ in range(5):
        translator.backend_event(delta("item_a", 100), 0.0)  # 500 ms sent, marks m1..m5
    mark(translator, "m2")  # 200 ms played at media time 1000
    media(translator, 1060)  # 60 ms later on Twilio's clock
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 5.0)
    assert out.client == [{"event": "clear", "streamSid": SID}]
    [truncate] = [e for e in out.backend if e["type"] == "conversation.item.truncate"]
    assert truncate["item_id"] == "item_a"
    assert truncate["audio_end_ms"] == 260  # not 5 s of wall clock: Twilio's clock says 60 ms


def test_heard_never_passes_the_next_unplayed_mark(translator: TwilioTranslator) -> None:
    start(translator)
    media(translator, 0)
    translator.backend_event({"type": "response.created"}, 0.0)
    translator.backend_event(delta("item_a", 100), 0.0)
    translator.backend_event(delta("item_a", 100), 0.0)
    mark(translator, "m1")
    media(translator, 5000)  # the line's clock ran on, but m2 has not come back
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    [truncate] = [e for e in out.backend if e["type"] == "conversation.item.truncate"]
    assert truncate["audio_end_ms"] == 200


def test_before_any_mark_heard_is_the_time_since_the_reply_began(
    translator: TwilioTranslator,
) -> None:
    start(translator)
    media(translator, 100)
    translator.backend_event(delta("item_a", 100), 0.0)
    translator.backend_event(delta("item_a", 100), 0.0)
    media(translator, 140)
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    [truncate] = [e for e in out.backend if e["type"] == "conversation.item.truncate"]
    assert truncate["audio_end_ms"] == 40


def test_without_media_timestamps_the_monotonic_clock_is_used(
    translator: TwilioTranslator,
) -> None:
    start(translator)
    for _ in range(3):
        translator.backend_event(delta("item_a", 100), 10.0)
    mark(translator, "m1", now=10.1)
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 10.15)
    [truncate] = [e for e in out.backend if e["type"] == "conversation.item.truncate"]
    assert truncate["audio_end_ms"] == 150


def test_a_reply_queued_behind_another_has_not_been_heard(translator: TwilioTranslator) -> None:
    start(translator)
    media(translator, 0)
    translator.backend_event(delta("item_a", 100), 0.0)  # m1
    translator.backend_event({"type": "response.done", "response": {"status": "completed"}}, 0)
    translator.backend_event(delta("item_b", 100), 0.0)  # m2, still behind m1
    media(translator, 80)
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    [truncate] = [e for e in out.backend if e["type"] == "conversation.item.truncate"]
    assert (truncate["item_id"], truncate["audio_end_ms"]) == ("item_b", 0)


def test_the_next_reply_starts_when_the_last_mark_of_the_previous_returns(
    translator: TwilioTranslator,
) -> None:
    start(translator)
    media(translator, 0)
    translator.backend_event(delta("item_a", 100), 0.0)  # m1
    translator.backend_event({"type": "response.done", "response": {"status": "completed"}}, 0)
    translator.backend_event(delta("item_b", 100), 0.0)  # m2
    translator.backend_event(delta("item_b", 100), 0.0)  # m3
    media(translator, 100)
    mark(translator, "m1")
    media(translator, 130)
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    [truncate] = [e for e in out.backend if e["type"] == "conversation.item.truncate"]
    assert (truncate["item_id"], truncate["audio_end_ms"]) == ("item_b", 30)


def test_marks_echoed_after_a_clear_are_ignored(translator: TwilioTranslator) -> None:
    start(translator)
    translator.backend_event(delta("item_a", 100), 0.0)
    translator.backend_event(delta("item_a", 100), 0.0)
    translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    assert mark(translator, "m1") == Outbox() and mark(translator, "m2") == Outbox()
    # Audio of the truncated item that still arrives is not sent.
    assert translator.backend_event(delta("item_a", 100), 0.0).client == []
    # Nothing is queued at Twilio any more: the next barge-in sends no clear.
    again = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    assert again.client == []


def test_a_fully_played_finished_reply_is_not_truncated(translator: TwilioTranslator) -> None:
    start(translator)
    translator.backend_event({"type": "response.created"}, 0.0)
    translator.backend_event(delta("item_a", 100), 0.0)
    translator.backend_event({"type": "response.done", "response": {"status": "completed"}}, 0)
    mark(translator, "m1")
    out = translator.backend_event({"type": "input_audio_buffer.speech_started"}, 0.0)
    assert out.client == [] and out.backend == []


def test_text_transcripts_and_errors_render_nothing(translator: TwilioTranslator) -> None:
    start(translator)
    events: list[dict[str, Any]] = [
        {"type": "response.output_audio_transcript.delta", "item_id": "i", "delta": "hi"},
        {"type": "response.output_audio_transcript.done", "item_id": "i", "transcript": "hi"},
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "u",
            "transcript": "hello",
        },
        {"type": "error", "error": {"message": "bad"}},
    ]
    outs = [translator.backend_event(event, 0.0) for event in events]
    assert all(out.client == [] for out in outs)
    assert [note.kind for out in outs for note in out.notes] == [
        "assistant_text",
        "user_transcript",
        "error",
    ]


def test_schemas_list_every_event() -> None:
    client = TwilioTranslator.protocol.schema()
    assert set(client["discriminator"]["mapping"]) == {
        "connected",
        "start",
        "media",
        "mark",
        "dtmf",
        "stop",
    }
    server = orjson.dumps(TwilioTranslator.schema()["server"]).decode()
    assert all(kind in server for kind in ('"media"', '"mark"', '"clear"'))
