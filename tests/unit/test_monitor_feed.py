"""The monitor's fan-out, without sockets: bounded feeds, drop counting, message shapes."""

from __future__ import annotations

import asyncio
from datetime import datetime

import orjson

from rt_server.monitor import Feed, Monitor
from rt_server.observe import SessionInfo
from rt_server.translate import Note

INFO = SessionInfo("abc123", "twilio", "openai", "default", 1_700_000_000.5, "127.0.0.1:5000")


async def drain(feed: Feed) -> list[dict[str, object]]:
    messages = []
    while feed.queue or feed.dropped:
        messages.append(orjson.loads(await feed.get()))
    return messages


async def test_a_feed_keeps_order_and_counts_what_it_drops() -> None:
    feed = Feed(limit=3)
    for n in range(5):
        feed.put(f'{{"n": {n}}}')
    assert feed.dropped == feed.dropped_total == 2
    assert [orjson.loads(await feed.get()) for _ in range(2)] == [{"n": 0}, {"n": 1}]
    feed.put('{"n": 5}')  # room again: first the notice, where the messages went missing
    messages = await drain(feed)
    assert messages[0] == {"n": 2}
    assert messages[1]["type"] == "dropped" and messages[1]["count"] == 2
    assert messages[2] == {"n": 5}
    assert feed.dropped == 0 and feed.dropped_total == 2


async def test_a_reader_that_catches_up_is_told_what_it_lost() -> None:
    feed = Feed(limit=1)
    feed.put('{"n": 0}')
    feed.put('{"n": 1}')
    assert await drain(feed) == [{"n": 0}, {"type": "dropped", "time": _any_time(), "count": 1}]


async def test_get_waits_for_the_next_message() -> None:
    feed = Feed(limit=2)
    waiting = asyncio.create_task(feed.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    feed.put('{"n": 0}')
    assert await waiting == '{"n": 0}'


async def test_every_feed_hears_every_session_event() -> None:
    monitor = Monitor(buffer=10)
    monitor.session_started(INFO)  # before anyone listens: only remembered as live
    first, second = monitor.subscribe(), monitor.subscribe()
    monitor.session_note(INFO, Note("user_transcript", {"item_id": "u1", "text": "hello"}))
    monitor.session_ended(INFO, 1000, "call ended")
    for feed in (first, second):
        hello, note, ended = await drain(feed)
        assert hello["type"] == "monitor" and hello["buffer"] == 10
        assert hello["sessions"] == [
            {
                "session": "abc123",
                "dialect": "twilio",
                "backend": "openai",
                "profile": "default",
                "peer": "127.0.0.1:5000",
                "started": "2023-11-14T22:13:20.500+00:00",
            }
        ]
        assert note == {
            "type": "user_transcript",
            "time": note["time"],
            "session": "abc123",
            "dialect": "twilio",
            "data": {"item_id": "u1", "text": "hello"},
        }
        assert ended["data"] == {"code": 1000, "reason": "call ended"}
        for message in (hello, note, ended):
            assert datetime.fromisoformat(str(message["time"])).tzinfo is not None
    assert monitor.live == {}


def test_without_feeds_nothing_is_serialised() -> None:
    monitor = Monitor()
    monitor.session_started(INFO)
    monitor.session_note(INFO, Note("error", {"code": "backend_error", "message": "x"}))
    assert list(monitor.live) == ["abc123"]


class _AnyTime(str):
    def __eq__(self, other: object) -> bool:
        return isinstance(other, str) and datetime.fromisoformat(other).tzinfo is not None

    def __hash__(self) -> int:
        return 0


def _any_time() -> str:
    return _AnyTime()
