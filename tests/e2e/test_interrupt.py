"""An ``interrupt`` is answered: the cut part's ``text_done`` (on ``/ws/conversation`` the
cut reply's ``response_done``), then ``interrupted``; nothing more of the cut reply follows."""

from __future__ import annotations

from rt_server.emulator import EmulatorConfig, run_emulator
from tests.conftest import API_KEY, openai_settings
from tests.support.harness import (
    Frame,
    client,
    connected,
    is_type,
    running_server,
    send_json,
    text_of,
    until,
)

STORY = "tell me " + "a long story " * 30


def has_text(frame: Frame) -> bool:
    return isinstance(frame, dict) and frame.get("type") == "text_delta"


async def test_interrupt_on_realtime_ends_the_cut_text_then_says_interrupted() -> None:
    config = EmulatorConfig(api_key=API_KEY, pace="realtime", words_per_second=15)
    async with run_emulator(config) as emulator:
        async with running_server(openai_settings(emulator.http_url)) as server:
            async with client(server.ws_url) as ws:
                await connected(ws)
                await send_json(ws, {"type": "user_message", "text": STORY})
                delta, _ = await until(ws, has_text)
                await until(ws, lambda f: isinstance(f, bytes))
                await send_json(ws, {"type": "control", "action": "interrupt"})
                done, _ = await until(ws, is_type("control", "text_done"))
                answer, between = await until(ws, is_type("control", "interrupted"))
                await send_json(ws, {"type": "user_message", "text": "short"})
                _, after = await until(ws, is_type("control", "text_done"))
    assert isinstance(delta, dict) and isinstance(done, dict)
    assert done["id"] == delta["id"]
    assert not [f for f in between if not isinstance(f, bytes)]  # audio in flight at most
    assert answer == {"type": "control", "action": "interrupted"}
    later = [f for f in after if isinstance(f, dict) and f.get("id") == delta["id"]]
    assert later == []  # the cut part's late deltas were dropped
    assert "You said: short" in text_of(after)


async def test_interrupt_on_the_conversation_dialect_ends_the_reply_once() -> None:
    config = EmulatorConfig(api_key=API_KEY, pace="realtime", words_per_second=15)
    async with run_emulator(config) as emulator:
        async with running_server(openai_settings(emulator.http_url)) as server:
            url = server.ws_url.replace("/realtime", "/ws/conversation")
            async with client(url) as ws:
                await until(ws, is_type("session_ready"))
                await send_json(ws, {"type": "text", "text": STORY})
                await until(ws, is_type("audio_delta"))
                await send_json(ws, {"type": "control", "action": "interrupt"})
                cut, _ = await until(ws, is_type("response_done"))
                answer, _ = await until(ws, is_type("control", "interrupted"))
                await send_json(ws, {"type": "text", "text": "short"})
                next_done, meanwhile = await until(ws, is_type("response_done"))
    assert isinstance(cut, dict) and cut["status"] == "cancelled"
    assert answer == {"type": "control", "action": "interrupted"}
    assert isinstance(next_done, dict) and next_done["status"] == "completed"
    assert "You said: short" in "".join(
        str(f["text"]) for f in meanwhile if isinstance(f, dict) and f["type"] == "text_delta"
    )
