"""Records end to end: real sessions over real sockets (rt_server + emulator), read back
through the REST API, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.exc import OperationalError

from rt_server.config import Limits
from rt_server.emulator import EmulatorConfig, Faults, RunningEmulator, run_emulator
from rt_server.emulator.config import Rule
from rt_server.emulator.config import ToolCall as RuleToolCall
from rt_server.records.store import Started
from rt_server.tools import ToolRegistry
from tests.conftest import API_KEY, openai_settings
from tests.e2e.records.conftest import Live, records_server, with_records
from tests.support.harness import client, connected, final_transcription, is_type, send_json, until

WEATHER = Rule(
    match="weather", tool_call=RuleToolCall(name="get_weather", arguments={"city": "Oslo"})
)


def weather_tools() -> ToolRegistry:
    registry = ToolRegistry()

    @registry.tool(description="The weather in a city.")
    async def get_weather(city: str) -> dict[str, str]:
        return {"city": city, "sky": "clear"}

    return registry


async def say(url: str, *texts: str) -> None:
    async with client(url) as ws:
        await connected(ws)
        for text in texts:
            await send_json(ws, {"type": "user_message", "text": text})
            await until(ws, is_type("control", "text_done"))


async def conversations(live: Live, **params: Any) -> list[dict[str, Any]]:
    async with live.api() as api:
        response = await api.get("/api/conversations", params=params)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["conversations"]
    return found


async def detail(live: Live, id: str) -> dict[str, Any]:
    async with live.api() as api:
        response = await api.get(f"/api/conversations/{id}")
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


async def test_text_session_with_a_tool_is_recorded(database_url: str) -> None:
    async with run_emulator(EmulatorConfig(api_key=API_KEY, rules=(WEATHER,))) as emulator:
        settings = with_records(openai_settings(emulator.http_url), database_url)
        async with records_server(settings, tools=weather_tools()) as live:
            await say(live.ws_url, "hello there", "what is the weather?")
            await live.settle()
            [summary] = await conversations(live)
            talk = await detail(live, summary["id"])
            async with live.api() as api:
                markdown = await api.get(f"/api/conversations/{summary['id']}/transcript.md")
    assert summary["dialect"] == "realtime" and summary["backend"] == "openai"
    assert summary["profile"] == "default" and summary["close_code"] == 1000
    assert summary["ended_at"] >= summary["started_at"]
    replies = [t["text"] for t in talk["turns"] if t["role"] == "assistant"]
    assert "You said: hello there." in replies
    assert any("get_weather tool says" in text and "clear" in text for text in replies)
    [call] = talk["tool_calls"]
    assert call["name"] == "get_weather" and '"Oslo"' in call["arguments"]
    assert '"sky":"clear"' in call["output"].replace(" ", "")
    assert talk["usage"]["total_tokens"] == summary["total_tokens"] > 0
    assert len(talk["usage"]["responses"]) == 3
    assert talk["errors"] == []
    assert markdown.status_code == 200
    assert markdown.headers["content-type"].startswith("text/markdown")
    assert markdown.text.startswith(f"# Conversation {summary['id']}")
    assert "**Assistant**" in markdown.text and "Tool `get_weather`" in markdown.text


async def test_typed_user_turns_are_recorded(database_url: str, emulator: RunningEmulator) -> None:
    settings = with_records(openai_settings(emulator.http_url), database_url)
    async with records_server(settings) as live:
        await say(live.ws_url, "hello there")
        await live.settle()
        [summary] = await conversations(live)
        talk = await detail(live, summary["id"])
    assert [(t["role"], t["kind"], t["text"]) for t in talk["turns"]] == [
        ("user", "user_text", "hello there"),
        ("assistant", "assistant_text", "You said: hello there."),
    ]


async def test_a_message_the_backend_never_got_is_still_recorded(
    database_url: str, emulator: RunningEmulator
) -> None:
    """Sent while the backend is down, and it never comes back: the session ends, and the
    record still has what the user said (its note follows a send that did not complete)."""
    emulator.state.set_faults(Faults(handshake_status=503))  # every reconnect is refused
    emulator.state.set_faults_once(Faults(close_after_events=4))  # the first session drops
    limits = Limits(backend_connect_timeout=5.0, reconnect_attempts=2)
    settings = with_records(openai_settings(emulator.http_url, limits=limits), database_url)
    async with records_server(settings) as live:
        async with client(live.ws_url) as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": "hello"})
            error, _ = await until(ws, is_type("error"))
            assert isinstance(error, dict)
            assert error["code"] == "backend_closed"  # reconnecting: nothing reaches it now
            await send_json(ws, {"type": "user_message", "text": "are you there?"})
            error, _ = await until(ws, is_type("error"))
            assert isinstance(error, dict)
            assert error["code"] == "backend_closed"  # the reconnects are spent
            await ws.wait_closed()
        await live.settle()
        [summary] = await conversations(live)
        talk = await detail(live, summary["id"])
    assert summary["close_code"] == 1011
    said = [t["text"] for t in talk["turns"] if t["role"] == "user"]
    assert said == ["hello", "are you there?"]


@pytest.mark.audio
async def test_spoken_session_records_the_transcripts(
    database_url: str, emulator: RunningEmulator
) -> None:
    from tests.support.speech import speech_pcm16

    settings = with_records(
        openai_settings(emulator.http_url, limits=Limits(max_audio_realtime_factor=1000.0)),
        database_url,
    )
    speech = speech_pcm16("What is the weather like today?") + bytes(48 * 1500)
    async with records_server(settings) as live:
        async with client(live.ws_url) as ws:
            await connected(ws)
            for start in range(0, len(speech), 960):
                await ws.send(speech[start : start + 960])
            await until(ws, final_transcription)
            await until(ws, is_type("control", "text_done"))
        await live.settle()
        [summary] = await conversations(live)
        talk = await detail(live, summary["id"])
        found = await conversations(live, q="[speech")
    [heard] = [t for t in talk["turns"] if t["kind"] == "user_transcript"]
    assert heard["role"] == "user" and heard["text"].startswith("[speech ")
    reply = [t for t in talk["turns"] if t["role"] == "assistant"]
    assert reply and heard["text"] in reply[0]["text"]
    assert [c["id"] for c in found] == [summary["id"]]


async def test_filters_paging_and_delete(database_url: str, emulator: RunningEmulator) -> None:
    settings = with_records(openai_settings(emulator.http_url), database_url)
    async with records_server(settings) as live:
        for word in ("apple", "banana", "cherry", "100%_sure"):
            await say(live.ws_url, word)
        await live.settle()
        everything = await conversations(live)
        assert len(everything) == 4
        assert [c["started_at"] for c in everything] == sorted(
            (c["started_at"] for c in everything), reverse=True
        )
        assert len(await conversations(live, q="BANANA")) == 1
        assert len(await conversations(live, q="%_")) == 1  # LIKE wildcards are literal
        assert await conversations(live, q="durian") == []
        assert len(await conversations(live, dialect="realtime")) == 4
        assert await conversations(live, dialect="twilio") == []
        later = datetime.now(UTC) + timedelta(minutes=1)
        assert await conversations(live, since=later.isoformat()) == []
        assert len(await conversations(live, until=later.isoformat())) == 4
        pages, cursor = [], None
        async with live.api() as api:
            while True:
                params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
                page = (await api.get("/api/conversations", params=params)).json()
                pages.append([c["id"] for c in page["conversations"]])
                if not (cursor := page["next_cursor"]):
                    break
            by_offset = (await api.get("/api/conversations", params={"offset": 3})).json()
            gone = everything[0]["id"]
            assert (await api.delete(f"/api/conversations/{gone}")).status_code == 204
            assert (await api.get(f"/api/conversations/{gone}")).status_code == 404
            assert (await api.delete(f"/api/conversations/{gone}")).status_code == 404
    assert pages == [[c["id"] for c in everything[:3]], [everything[3]["id"]]]
    assert [c["id"] for c in by_offset["conversations"]] == [everything[3]["id"]]


async def test_records_survive_a_restart(database_url: str, emulator: RunningEmulator) -> None:
    settings = with_records(openai_settings(emulator.http_url), database_url)
    async with records_server(settings) as first:
        await say(first.ws_url, "remember me")
    # Shutdown wrote the queue; a new app on the same store reads it back.
    async with records_server(settings) as second:
        [summary] = await conversations(second)
        talk = await detail(second, summary["id"])
    assert "You said: remember me." in [t["text"] for t in talk["turns"]]


async def test_a_hundred_concurrent_sessions_lose_no_record(
    database_url: str, emulator: RunningEmulator
) -> None:
    settings = with_records(openai_settings(emulator.http_url), database_url)
    async with records_server(settings) as live:
        await asyncio.gather(*(say(live.ws_url, f"session number {n}") for n in range(100)))
        await live.settle()
        found = await conversations(live, limit=200)
        details = [await detail(live, c["id"]) for c in found]
        assert live.records.store is not None
        assert live.records.store.count("dropped") == 0
    assert len(found) == 100 and all(c["close_code"] == 1000 for c in found)
    turns = {t["text"] for talk in details for t in talk["turns"]}
    assert turns == {f"session number {n}" for n in range(100)} | {
        f"You said: session number {n}." for n in range(100)
    }


async def test_a_database_outage_mid_session_loses_no_record(
    database_url: str, emulator: RunningEmulator, request: pytest.FixtureRequest
) -> None:
    settings = with_records(openai_settings(emulator.http_url), database_url)
    async with records_server(settings) as live:
        store = live.records.store
        assert store is not None
        async with client(live.ws_url) as ws:
            await connected(ws)
            await send_json(ws, {"type": "user_message", "text": "before the outage"})
            await until(ws, is_type("control", "text_done"))
            await store.flush()
            async with _Outage(database_url, live, request):
                await send_json(ws, {"type": "user_message", "text": "during the outage"})
                await until(ws, is_type("control", "text_done"))  # the session goes on
                with pytest.raises(Exception):  # noqa: B017 (whatever the driver raises)
                    await store.flush()
                assert store.queued > 0
                assert store.count("write_failures") >= 1
                async with live.api() as api:
                    down = await api.get("/api/conversations")
                assert down.status_code == 503
                assert down.json()["error"]["code"] == "records_unavailable"
        await live.settle()  # the database is back: the queue is written
        [summary] = await conversations(live)
        talk = await detail(live, summary["id"])
    assert summary["close_code"] == 1000
    turns = [t["text"] for t in talk["turns"]]
    assert turns == [
        "before the outage",
        "You said: before the outage.",
        "during the outage",
        "You said: during the outage.",
    ]


class _Unavailable:
    """An injectable failure: every statement fails as if the disk were gone, on the
    engine (the REST API) and, for SQLite, on the writer's own connection too."""

    def __init__(self) -> None:
        self.on = True

    def __call__(self, *args: Any) -> None:
        if self.on:
            raise OperationalError("(injected)", None, Exception("disk I/O error"))

    def interrupt(self) -> int:
        """SQLite's progress handler: non-zero aborts the statement ("interrupted")."""
        return int(self.on)


class _Outage:
    def __init__(self, url: str, live: Live, request: pytest.FixtureRequest) -> None:
        self.url, self.live, self.request = url, live, request
        self.fail = _Unavailable()

    async def __aenter__(self) -> None:
        store = self.live.records.store
        assert store is not None
        if self.url.startswith("sqlite"):
            event.listen(store.engine.sync_engine, "before_cursor_execute", self.fail)
            assert store.sqlite is not None and store.sqlite.connection is not None
            store.sqlite.connection.set_progress_handler(self.fail.interrupt, 1)
        else:
            await asyncio.to_thread(self.request.getfixturevalue("pg_cluster").stop)

    async def __aexit__(self, *exc: object) -> None:
        store = self.live.records.store
        assert store is not None
        if self.url.startswith("sqlite"):
            event.remove(store.engine.sync_engine, "before_cursor_execute", self.fail)
            self.fail.on = False
        else:
            await asyncio.to_thread(self.request.getfixturevalue("pg_cluster").start)


async def test_retention_purges_old_conversations(database_url: str) -> None:
    from rt_server.records.store import RecordStore, create_engine

    store = RecordStore(create_engine(database_url), retention_days=30)
    now = datetime(2026, 6, 1)
    store.put(Started("old", now - timedelta(days=31), "realtime", "openai", "default", "?"))
    store.put(Started("new", now - timedelta(days=29), "realtime", "openai", "default", "?"))
    await store.flush()
    assert await store.purge(now) == 1
    forever = RecordStore(store.engine, retention_days=0)
    assert await forever.purge(now + timedelta(days=999)) == 0
    from rt_server.records import queries

    assert await queries.count_conversations(store.engine) == 1
    await store.close()


async def test_a_record_the_database_refuses_is_dropped_alone(database_url: str) -> None:
    from rt_server.records import queries
    from rt_server.records.store import Ended, Event, RecordStore, create_engine

    store = RecordStore(create_engine(database_url))
    now = datetime(2026, 6, 1, 12, 0, 0)
    store.put(Started("good", now, "realtime", "openai", "default", "?"))
    store.put(Started("bad", now, None, "openai", "default", "?"))  # type: ignore[arg-type]
    store.put(Event("good", 1, now, "user_text", "user", "hi", None))
    store.put(Event("good", 2, now, "usage", None, None, {"total_tokens": 7}))
    store.put(Event("gone", 1, now, "user_text", "user", "deleted meanwhile", None))
    store.put(Ended("good", now + timedelta(seconds=3), 1000, "session ended", 7))
    await store.flush()
    assert store.count("dropped") == 1  # the NOT NULL violation, nothing else
    assert store.queued == 0
    assert await queries.count_conversations(store.engine) == 1
    found = await queries.get_conversation(store.engine, "good")
    assert found is not None
    conversation, events = found
    assert (conversation.started_at, conversation.ended_at) == (now, now + timedelta(seconds=3))
    assert (conversation.close_code, conversation.total_tokens) == (1000, 7)
    assert [(e.seq, e.at, e.text, e.data) for e in events] == [
        (1, now, "hi", None),
        (2, now, None, {"total_tokens": 7}),
    ]
    await store.flush()  # written twice: nothing changes
    assert await queries.count_conversations(store.engine) == 1
    await store.close()
