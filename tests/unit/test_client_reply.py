"""ReplyCollector: one turn out of a stream of server frames, no event loop."""

from __future__ import annotations

import pytest

from rt_server.client import ReplyCollector, ServerError
from rt_server.client.reply import Incoming
from rt_server.dialects.realtime import ServerControl, TextDelta, Transcription


def delta(id: str, text: str) -> TextDelta:
    return TextDelta(type="text_delta", id=id, delta=text)


def done(id: str | None = None) -> ServerControl:
    if id is None:
        return ServerControl(type="control", action="text_done")
    return ServerControl(type="control", action="text_done", id=id)


def feed_all(collector: ReplyCollector, frames: list[Incoming], start: float = 10.0) -> list[bool]:
    return [collector.feed(frame, start + i) for i, frame in enumerate(frames)]


def test_text_and_audio_until_text_done_with_latencies() -> None:
    c = ReplyCollector(started=10.0)
    frames: list[Incoming] = [b"\0\0" * 4, delta("a-0", "You "), delta("a-0", "said."), done("a-0")]
    assert feed_all(c, frames, start=10.5) == [False, False, False, True]
    reply = c.reply(now=99.0)
    assert (reply.id, reply.text, reply.audio) == ("a-0", "You said.", b"\0\0" * 4)
    assert reply.first_audio == pytest.approx(0.5)
    assert reply.first_delta == pytest.approx(1.5)
    assert reply.total == pytest.approx(3.5)  # up to completion, not up to "now"
    assert reply.audio_seconds == pytest.approx(8 / 48000)


def test_deltas_of_other_ids_are_not_part_of_the_reply() -> None:
    c = ReplyCollector(started=0.0)
    feed_all(c, [delta("a-0", "one"), delta("b-0", "other"), done("b-0"), delta("a-0", " two")])
    assert not c.done
    assert c.feed(done("a-0"), 9.0)
    assert c.reply(9.0).text == "one two"


def test_a_reply_without_text_ends_at_any_text_done() -> None:
    c = ReplyCollector(started=0.0)
    assert c.feed(done("x-1"), 1.0)
    assert c.reply(1.0).id == "x-1"
    assert ReplyCollector(started=0.0).feed(done(), 1.0)


def test_a_spoken_turn_also_waits_for_the_transcription_in_any_order() -> None:
    speech = ServerControl(type="control", action="speech_started")
    heard = Transcription(type="transcription", id="u1", text="hello there")
    c = ReplyCollector(started=0.0, transcription=True)
    assert feed_all(c, [speech, delta("a-0", "Hi"), done("a-0"), heard], start=0.0) == [
        False,
        False,
        False,
        True,
    ]
    reply = c.reply(10.0)
    assert c.speech_started
    assert (reply.transcription, reply.text, reply.total) == ("hello there", "Hi", 3.0)

    early = ReplyCollector(started=0.0, transcription=True)
    assert feed_all(early, [heard, delta("a-0", "Hi"), done("a-0")])[-1]


def test_an_unfinished_turn_reports_time_so_far() -> None:
    c = ReplyCollector(started=1.0)
    c.feed(delta("a-0", "partial"), 2.0)
    reply = c.reply(now=5.0)
    assert (reply.text, reply.total, reply.first_audio) == ("partial", 4.0, None)


def test_an_error_message_raises_with_its_code() -> None:
    c = ReplyCollector(started=0.0)
    with pytest.raises(ServerError) as caught:
        c.feed(
            {
                "type": "error",
                "code": "backend_rate_limited",
                "message": "slow down",
                "retry_after": 2.0,
            },
            1.0,
        )
    assert (caught.value.code, caught.value.retry_after) == ("backend_rate_limited", 2.0)
    assert "slow down" in str(caught.value)


def test_partial_transcriptions_are_captions_not_the_turn() -> None:
    from rt_server.client.reply import ReplyCollector

    collector = ReplyCollector(0.0, transcription=True)
    collector.feed({"type": "transcription", "id": "in1", "text": "book", "partial": True}, 0.1)
    collector.feed({"type": "transcription", "id": "in1", "text": "book a table"}, 0.2)
    assert collector.user_text == "book a table"
