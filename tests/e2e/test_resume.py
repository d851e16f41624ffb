"""Resume on one instance (no REDIS_URL): ``connected`` hands out a token, a reconnect with
``?resume=`` takes the conversation up again with its context, and the Python client does
it by itself when its connection is lost. (Across instances: tests/e2e/test_scale_out.py.)"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from sqlalchemy import select

from rt_server.client import RtClient, is_text_done
from rt_server.records.schema import events
from rt_server.records.store import create_engine
from tests.support.harness import (
    RunningServer,
    client,
    connected,
    is_type,
    next_frame,
    running_server,
    send_json,
    text_of,
    until,
)


async def test_a_reconnect_with_the_token_goes_on_with_the_conversation(
    server: RunningServer,
) -> None:
    async with client(server.ws_url) as ws:
        token = (await connected(ws))["resume"]
        await send_json(ws, {"type": "user_message", "text": "my name is Ada"})
        await until(ws, is_type("control", "text_done"))
    async with client(f"{server.ws_url}?resume={token}") as ws:
        again = await connected(ws)
        assert again["resume"] == token
        assert await next_frame(ws) == {
            "type": "control",
            "action": "resumed",
            "interrupted": False,
        }
        await send_json(ws, {"type": "user_message", "text": "recap"})
        _, frames = await until(ws, is_type("control", "text_done"))
    assert "my name is Ada" in text_of(frames)  # the new backend session has the context


async def test_an_unknown_token_is_refused(server: RunningServer) -> None:
    async with client(f"{server.ws_url}?resume={'x' * 32}") as ws:
        error = await next_frame(ws)
        await ws.wait_closed()
    assert isinstance(error, dict) and error["code"] == "resume_expired"
    assert ws.close_code == 1008


async def test_the_python_client_resumes_by_itself_and_the_records_hold_one_conversation(
    server: RunningServer, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'records.sqlite3'}"
    settings = replace(server.settings, records_url=url)
    async with running_server(settings) as served:
        async with RtClient.connect(served.ws_url) as rt:
            await rt.reply("my name is Ada")
            rt.ws.transport.abort()  # the connection is lost (a network switch)
            resumed = await rt.receive()
            assert resumed == {"type": "control", "action": "resumed", "interrupted": False}
            await rt.send_text("recap")
            frames = await rt.receive_until(is_text_done)
            assert rt.resumes == 1
    assert "my name is Ada" in text_of(frames)  # type: ignore[arg-type]
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(select(events).order_by(events.c.seq))).all()
    finally:
        await engine.dispose()
    assert len({row.conversation_id for row in rows}) == 1  # one conversation, two parts
    users = [row.text for row in rows if row.role == "user"]
    assert users == ["my name is Ada", "recap"]  # each turn once
